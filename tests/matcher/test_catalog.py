from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from matcher.catalog import AssetsRefused, Catalog
from reelwatch.demo.content import DemoContent
from reelwatch.errors import InputError
from reelwatch.models import AssetKind
from reelwatch.settings import Settings


def test_add_title_merges_on_re_add(settings: Settings) -> None:
    cat = Catalog(settings)
    t = cat.add_title(
        "Starfall Station", owner="Northlight", aliases=["Starfall"], hashtags=["#Starfall"]
    )
    assert t.id == "starfall-station"
    assert t.hashtags == ["starfall"]
    t2 = cat.add_title("Starfall Station", aliases=["SFS"], hashtags=["starfall", "sfs"])
    assert t2.owner == "Northlight"
    assert t2.aliases == ["Starfall", "SFS"]
    assert t2.hashtags == ["starfall", "sfs"]
    assert [x.id for x in cat.titles()] == ["starfall-station"]
    assert cat.get_title("Starfall Station") == t2
    assert cat.get_title("nope") is None


def test_assets_are_content_addressed_indexed_incrementally_and_persist(
    settings: Settings, demo: DemoContent, tmp_path: Path
) -> None:
    cat = Catalog(settings)
    assert cat.is_empty()
    cat.add_title("Starfall Station")
    first, second = demo.titles[0].references
    [a] = cat.add_assets("starfall-station", [first])
    assert a.kind == AssetKind.VIDEO
    assert Path(a.path).is_file() and a.sha256 in a.path
    assert Path(a.path).is_relative_to(settings.catalog_dir)
    n1 = len(cat.index("copy"))
    assert n1 > 0 and not cat.is_empty()

    assert cat.add_assets("starfall-station", [first]) == [a]  # no-op
    assert len(cat.index("copy")) == n1

    [b] = cat.add_assets("starfall-station", [second])
    n2 = len(cat.index("copy"))
    assert n1 < n2

    still = tmp_path / "poster.png"
    Image.fromarray(_poster()).save(still)
    [c] = cat.add_assets("starfall-station", [still])
    assert c.kind == AssetKind.IMAGE
    assert len(cat.index("copy")) > n2

    reopened = Catalog(settings)
    assert [x.id for x in reopened.assets("starfall-station")] == [a.id, b.id, c.id]
    assert len(reopened.index("copy")) == len(cat.index("copy"))
    counts = reopened.build()
    assert counts["titles"] == 1 and counts["assets"] == 3
    assert counts["copy"] == len(cat.index("copy"))
    assert counts["text"] == 1  # one title card
    assert counts["audio"] > 0  # the soundtracks of the two clips; the still has none


def _poster() -> np.ndarray:
    from reelwatch.demo.media import load_photo

    return load_photo("rocket")


def test_bad_assets_are_refused_one_by_one_and_leave_nothing(
    settings: Settings, demo: DemoContent, tmp_path: Path
) -> None:
    cat = Catalog(settings)
    cat.add_title("The Roastery")
    text = tmp_path / "notes.txt"
    text.write_text("not a video")
    with pytest.raises(InputError, match=r"notes\.txt: not a video"):
        cat.add_assets("the-roastery", [text])
    with pytest.raises(AssetsRefused, match=r"no file added: .*no such file.*notes\.txt") as err:
        cat.add_assets("the-roastery", [tmp_path / "missing.mp4", text])
    assert [r.path.name for r in err.value.refused] == ["missing.mp4", "notes.txt"]
    with pytest.raises(InputError, match="no title"):
        cat.add_assets("unknown-title", [demo.titles[1].references[0]])
    assert cat.is_empty()
    assert not (settings.catalog_dir / "files").exists()

    good = demo.titles[1].references[0]
    added = cat.add_assets("the-roastery", [good, tmp_path / "missing.mp4"])
    assert [a.name for a in added] == [good.name]
    [refusal] = added.refused
    assert refusal.path.name == "missing.mp4" and "no such file" in refusal.reason


def test_a_file_that_probes_but_does_not_decode_is_not_added(
    settings: Settings, demo: DemoContent, tmp_path: Path
) -> None:
    """A web-style (index first) MP4 cut short opens fine and fails only while decoding."""
    import av

    good = demo.titles[1].references[0]
    fast = tmp_path / "fast.mp4"
    with (
        av.open(str(good)) as src,
        av.open(str(fast), "w", options={"movflags": "faststart"}) as dst,
    ):
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(fast.read_bytes()[: fast.stat().st_size // 3])

    cat = Catalog(settings)
    cat.add_title("The Roastery")
    added = cat.add_assets("the-roastery", [cut, good])
    [refusal] = added.refused
    assert refusal.path == cut and "truncated" in refusal.reason
    [asset] = cat.assets("the-roastery")
    assert added == [asset] and asset.name == good.name
    assert len(list((settings.catalog_dir / "files").rglob("*.*"))) == 1  # no copy of cut.mp4
    assert cat.add_assets("the-roastery", [good]) == [asset]
    assert len(Catalog(settings).index("copy")) == len(cat.index("copy")) > 0


def test_remove_title_drops_assets_index_entries_and_files(
    settings: Settings, demo: DemoContent
) -> None:
    cat = Catalog(settings)
    for t in demo.titles[1:]:
        cat.add_title(t.name)
        cat.add_assets(t.id, t.references)
    total = len(cat.index("copy"))
    [roastery] = cat.assets("the-roastery")
    assert cat.remove_title("the-roastery") == 1
    assert cat.get_title("the-roastery") is None
    assert not Path(roastery.path).exists()
    assert 0 < len(cat.index("copy")) < total
    assert len(Catalog(settings).index("copy")) == len(cat.index("copy"))
    with pytest.raises(InputError):
        cat.remove_title("the-roastery")


def test_stale_signal_version_triggers_a_rebuild(settings: Settings, demo: DemoContent) -> None:
    cat = Catalog(settings)
    cat.add_title("Whiskers of Bridgemoor")
    cat.add_assets("whiskers-of-bridgemoor", demo.titles[2].references)
    n = len(cat.index("copy"))
    manifest = settings.catalog_dir / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"copy-v', '"copy-old-v'))
    fresh = Catalog(settings)
    assert len(fresh.index("copy")) == n
    assert '"copy-v' in manifest.read_text()


def test_data_home_can_move(settings: Settings, demo: DemoContent, tmp_path: Path) -> None:
    import shutil

    from matcher.engine import Matcher
    from reelwatch.settings import load_settings

    cat = Catalog(settings)
    cat.add_title("Starfall Station")
    reference = demo.titles[0].references[0]
    cat.add_assets("starfall-station", [reference])
    moved = tmp_path / "moved-home"
    shutil.move(str(settings.home), moved)
    new_settings = load_settings(home=moved)
    [asset] = Catalog(new_settings).assets()
    assert Path(asset.path).is_file() and Path(asset.path).is_relative_to(moved)
    assert Catalog(new_settings).build()
    report = Matcher(new_settings).match_file(reference)
    assert report.matches[0].title_id == "starfall-station"
