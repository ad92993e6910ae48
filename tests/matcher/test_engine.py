from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import matcher.engine
import matcher.fingerprint
from matcher.catalog import Catalog
from matcher.engine import Matcher, MatchReport, QueryContext
from matcher.fingerprint import fingerprint_file
from reelwatch.demo import media
from reelwatch.demo.content import DemoContent
from reelwatch.errors import InputError
from reelwatch.models import Confidence, TitlePolicy
from reelwatch.settings import Settings


@pytest.fixture(scope="module")
def reports(demo: DemoContent, demo_matcher: Matcher) -> dict[str, MatchReport]:
    return {p.id: demo_matcher.match_file(p.path) for p in demo.posts}


def test_every_copy_matches_its_title_at_high_confidence(
    demo: DemoContent, reports: dict[str, MatchReport]
) -> None:
    for p in demo.copies:
        best = reports[p.id].best
        assert best is not None, p.transform
        assert best.title == p.expected_title, p.transform
        assert best.confidence == Confidence.HIGH, (p.transform, best.score)
        assert best.signals["copy"] >= 0.45, (p.transform, best.signals)
        assert best.score >= max(best.signals.values())


def test_no_unrelated_post_and_no_wrong_title_above_low(
    demo: DemoContent, reports: dict[str, MatchReport]
) -> None:
    for p in demo.posts:
        for m in reports[p.id].matches:
            if m.title != p.expected_title:
                assert m.confidence == Confidence.LOW, (p.transform, m.title, m.score)


def test_copy_segments_point_at_the_excerpted_footage(
    demo: DemoContent, reports: dict[str, MatchReport], demo_catalog: Catalog
) -> None:
    """The demo copies excerpts (start, duration) of known reference clips."""
    from reelwatch.demo.content import COPIES

    copies = demo.copies
    assert len(copies) == len(COPIES)
    for p, spec in zip(copies, COPIES, strict=True):
        best = reports[p.id].best
        assert best is not None
        seg = max(best.segments, key=lambda s: s.query_end - s.query_start)
        ref = demo.title(p.expected_title or "").references[spec.clip]
        asset = next(a for a in demo_catalog.assets(best.title_id) if a.id == seg.ref_asset)
        assert asset.name == ref.name
        assert seg.ref_start == pytest.approx(spec.start, abs=2.0), p.transform
        assert seg.ref_end == pytest.approx(spec.start + spec.duration, abs=2.0), p.transform


def test_mirrored_cropped_reencode_is_matched_with_the_right_times(
    demo: DemoContent, demo_matcher: Matcher, tmp_path: Path
) -> None:
    ref = demo.title("The Roastery").references[0]
    post = media.transform_file(
        ref,
        tmp_path / "mirror-crop.mp4",
        [media.mirror, lambda c: media.crop(c, 0.82), lambda c: media.shrink(c, 360, 20)],
        start=7.0,
        duration=8.0,
        crf=34,
    )
    report = demo_matcher.match_file(post)
    best = report.best
    assert best is not None and best.title == "The Roastery"
    assert best.confidence == Confidence.HIGH
    [seg] = [s for s in best.segments if s.signal == "copy"]
    assert seg.query_start == pytest.approx(0.0, abs=2.0)
    assert seg.query_end == pytest.approx(8.0, abs=2.0)
    assert seg.ref_start == pytest.approx(7.0, abs=2.0)
    assert seg.ref_end == pytest.approx(15.0, abs=2.0)


def test_a_warm_rematch_with_a_known_sha_does_no_file_or_catalog_work_again(
    demo: DemoContent, demo_matcher: Matcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker holds one Matcher: fingerprints, indexes, the asset table and evidence are
    all cached, so re-matching a post whose sha256 is known reads neither the file (no hash,
    no decode, no frame grab) nor the catalog's indexes and asset table again."""
    post = demo.copies[3].path  # a 12 s letterboxed post, the most work
    first = demo_matcher.match_file(post)

    def forbid(owner: object, name: str) -> None:
        def refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError(f"{name} called on a warm re-match")

        monkeypatch.setattr(owner, name, refuse)

    forbid(matcher.fingerprint, "sha256_file")
    forbid(matcher.fingerprint, "decode")
    forbid(matcher.engine, "grab_frames")
    forbid(demo_matcher.catalog, "_asset_rows")
    for signal in demo_matcher.catalog.signals:
        forbid(signal, "load_index")
    again = demo_matcher.match_file(post, sha256=first.media.sha256)
    assert again.best is not None and again.best.confidence == Confidence.HIGH
    assert again.to_json() == first.to_json()


def test_a_long_lived_matcher_sees_what_another_process_adds(
    settings: Settings, demo: DemoContent
) -> None:
    writer = Catalog(settings)  # e.g. `reelwatch catalog add` while a worker runs
    roastery, starfall = demo.title("The Roastery"), demo.title("Starfall Station")
    writer.add_title(roastery.name)
    writer.add_assets(roastery.id, roastery.references)
    worker = Matcher(settings)
    starfall_post = next(p for p in demo.copies if p.expected_title == starfall.name)
    before = worker.match_file(starfall_post.path)
    assert all(m.title_id != starfall.id for m in before.matches)

    writer.add_title(starfall.name)
    writer.add_assets(starfall.id, starfall.references)
    after = worker.match_file(starfall_post.path)
    assert after.best is not None and after.best.title_id == starfall.id
    assert after.best.confidence == Confidence.HIGH


def test_report_json_has_the_architecture_shape(
    demo: DemoContent, reports: dict[str, MatchReport], demo_settings: Settings
) -> None:
    p = demo.copies[0]
    data = json.loads(json.dumps(reports[p.id].to_json()))
    assert data["input"] == str(p.path)
    assert set(data["media"]) >= {"sha256", "duration", "width", "height"}
    [m] = data["matches"]
    assert set(m) >= {"title", "title_id", "score", "confidence", "signals", "segments"}
    assert m["title_id"] == "starfall-station" and m["confidence"] == "high"
    assert 0.0 <= m["score"] <= 1.0 and set(m["signals"]) >= {"copy", "audio"}
    assert set(data["ai"]) == {"is_ai", "reasons"}
    seg = next(s for s in m["segments"] if s["signal"] == "copy")
    assert set(seg) >= {"signal", "query_start", "query_end", "ref_asset", "ref_start", "ref_end"}
    audio = next(s for s in m["segments"] if s["signal"] == "audio")
    assert "offset" in audio["note"]
    # Evidence, small files under the data home named by their role: the audio segment's
    # picture of both soundtracks; the copy segment's query and reference frames and its
    # similarity strip.
    assert [Path(p).name[:2] for p in audio["evidence"]] == ["s-"]
    assert [Path(p).name.split("-")[0] for p in seg["evidence"]] == ["q", "r", "st"]
    for rel in [*audio["evidence"], *seg["evidence"]]:
        path = demo_settings.home / rel
        assert path.suffix in {".jpg", ".png"} and 0 < path.stat().st_size < 60_000
    assert reports[demo.unrelated[0].id].to_json()["matches"] == []


def test_fingerprints_are_cached_by_content(demo: DemoContent, settings: Settings) -> None:
    p = demo.posts[5].path
    first = fingerprint_file(p, settings)
    assert first.decoded is not None  # a fresh data home: computed, not cached
    cached = fingerprint_file(p, settings, sha256=first.media.sha256)
    assert cached.decoded is None
    assert cached.media == first.media
    assert (cached.signals["copy"]["hashes"] == first.signals["copy"]["hashes"]).all()


def test_fingerprinting_several_files_at_once_equals_one_by_one(
    demo: DemoContent, settings: Settings, tmp_path: Path
) -> None:
    from reelwatch import timing

    settings.matcher.signals = ["copy", "descriptor", "audio"]
    good = [demo.posts[1].path, demo.posts[6].path]
    cut = tmp_path / "cut.mp4"
    data = good[0].read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    timing.reset()
    together = matcher.fingerprint.fingerprint_files(
        [(good[0], None), (cut, None), (good[1], None)], settings
    )
    calls = timing.totals()
    # Each file decoded once; each signal called once for both readable files.
    assert calls["decode"].calls == 3
    assert {calls[f"signal.{n}"].calls for n in settings.matcher.signals} == {1}
    first, error, second = together
    assert isinstance(error, InputError) and "truncated" in str(error)
    # One by one, and the signals one after another (above they ran in two threads).
    assert settings.matcher.signal_threads == 2
    alone = settings.model_copy(update={"home": tmp_path / "alone"}, deep=True)
    alone.matcher.signal_threads = 1
    alone.ensure_home()
    for batched, path in ((first, good[0]), (second, good[1])):
        assert not isinstance(batched, InputError)
        single = fingerprint_file(path, alone)
        assert single.decoded is not None  # computed afresh in another data home
        assert batched.media.sha256 == single.media.sha256
        assert batched.signals.keys() == single.signals.keys() == {"copy", "descriptor", "audio"}
        for name, fp in single.signals.items():
            for key, arr in fp.items():
                got = batched.signals[name][key]
                if name == "descriptor" and key == "descriptors":
                    # Batched with another file's images: the same up to float rounding.
                    assert np.allclose(got.astype(np.float32), arr, atol=2e-3)
                else:
                    assert np.array_equal(got, arr), (name, key)


def test_rematching_from_the_cache_gives_the_same_report(
    demo: DemoContent, demo_matcher: Matcher, reports: dict[str, MatchReport]
) -> None:
    p = demo.copies[2]
    again = demo_matcher.match_file(p.path)
    assert again.to_json() == reports[p.id].to_json()


def test_empty_catalog_is_an_input_error(settings: Settings, demo: DemoContent) -> None:
    with pytest.raises(InputError, match="the catalog is empty: add titles with"):
        Matcher(settings).match_file(demo.posts[0].path)


def test_bad_query_files_are_input_errors(
    demo_matcher: Matcher, demo: DemoContent, tmp_path: Path
) -> None:
    text = tmp_path / "clip.mp4"
    text.write_text("hello")
    with pytest.raises(InputError, match=r"clip\.mp4: not a video"):
        demo_matcher.match_file(text)
    with pytest.raises(InputError, match="no such file"):
        demo_matcher.match_file(tmp_path / "gone.mp4")
    data = demo.posts[0].path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        demo_matcher.match_file(cut)


def test_a_caption_naming_a_title_is_text_evidence_never_high_alone(
    demo: DemoContent, demo_matcher: Matcher
) -> None:
    post = demo.unrelated[0]
    context = QueryContext(caption="Starfall Station is back!!", hashtags=("#starfallstation",))
    report = demo_matcher.match_file(post.path, context=context)
    [m] = report.matches
    assert m.title == "Starfall Station" and set(m.signals) == {"text"}
    assert m.confidence != Confidence.HIGH
    [seg] = m.segments
    assert seg.ref_asset == "title:starfall-station" and seg.evidence == []
    assert "Starfall Station" in seg.note
    # Without the words, the same video matches nothing.
    assert demo_matcher.match_file(post.path).matches == []


def test_a_title_policy_changes_the_tier_and_says_why(
    demo: DemoContent, settings: Settings
) -> None:
    t = demo.titles[1]
    catalog = Catalog(settings)
    catalog.add_title(t.name)
    catalog.add_assets(t.id, t.references)
    matcher = Matcher(settings, catalog)
    post = next(p for p in demo.copies if p.expected_title == t.name and p.transform == "text")
    assert matcher.match_file(post.path).best.confidence == Confidence.HIGH  # type: ignore[union-attr]

    catalog.set_policy(t.id, TitlePolicy(min_matched_s=30.0))
    best = matcher.match_file(post.path).best
    assert best is not None and best.confidence == Confidence.LOW
    assert "policy not met" in best.notes[0] and "at least 30 s" in best.notes[0]

    catalog.set_policy(t.id, TitlePolicy(signals=["audio"], hold_for_review=True))
    best = matcher.match_file(post.path).best
    assert best is not None and set(best.signals) >= {"copy", "audio"}
    assert best.score == best.signals["audio"]
    assert best.confidence != Confidence.HIGH
    assert any("not counted by the title's policy: copy" in n for n in best.notes)
    with pytest.raises(InputError, match="unknown signal"):
        catalog.set_policy(t.id, TitlePolicy(signals=["smell"]))
