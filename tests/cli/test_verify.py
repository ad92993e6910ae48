"""``reelwatch verify``: after a crawl of the replica lands matches, every stored media file and
evidence file matches its record; one flipped byte, one deleted file are reported, exactly
those, with exit status 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reelwatch.models import post_key
from reelwatch.settings import Settings
from tests.cli.conftest import Runner
from tests.workers.conftest import COPY_ID, TAG, replica, sink, world, world_settings
from triage.stores import open_store
from workers import tasks
from workers.app import configure
from workers.pipeline import Pipeline

__all__ = ["replica", "sink", "world", "world_settings"]  # fixtures used by name


@pytest.fixture
def landed(world_settings: Settings) -> Settings:
    configure(world_settings)
    tasks.crawl.delay("replica", TAG, None, "test").get()
    return world_settings


def _verify(run_cli: Runner, *args: str) -> tuple[int, dict]:
    done = run_cli("verify", "--json", *args)
    assert done.stderr == "", done.stderr
    return done.returncode, json.loads(done.stdout)


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def _assert_recorded(landed: Settings) -> None:
    """Downloads keep their sha256, size, capture time and source; evidence its hashes."""
    with open_store(landed) as store:
        post = store.get_post(post_key("replica", COPY_ID))
        assert post is not None and post.media_sha256
        media = store.get_media(post.media_sha256)
        [match] = store.list_matches(post_key=post.key)
    assert media is not None
    assert media.source_url == post.url
    assert media.first_post == post.key
    assert media.captured_at is not None and media.captured_at >= post.first_seen
    assert media.media_url and media.media_url.startswith("http://127.0.0.1:")
    stored = next((landed.media_dir / media.sha256[:2]).glob(f"{media.sha256}.*"))
    assert stored.stat().st_size == media.bytes
    files = [e for s in match.segments for e in s.evidence_files]
    assert files and all(len(e.sha256) == 64 and e.bytes > 0 for e in files)


def test_downloads_are_recorded_and_verify_reports_exactly_the_changed_files(
    landed: Settings, run_cli: Runner
) -> None:
    _assert_recorded(landed)
    stray = landed.evidence_dir / "ab" / "stray.jpg"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"not evidence")
    rc, clean = _verify(run_cli)
    assert rc == 0 and clean["ok"] is True and clean["differences"] == []
    assert clean["media_checked"] >= 3 and clean["evidence_checked"] >= 2
    # A file no record names is listed, not a difference.
    assert str(stray.relative_to(landed.home)) in clean["unrecorded"]

    with open_store(landed) as store:
        post = store.get_post(post_key("replica", COPY_ID))
        assert post is not None and post.media_sha256
        [match] = store.list_matches(post_key=post.key)
    media_file = next((landed.media_dir / post.media_sha256[:2]).glob(f"{post.media_sha256}.*"))
    evidence = sorted({e.path for s in match.segments for e in s.evidence_files})
    assert len(evidence) >= 2
    _flip(media_file, media_file.stat().st_size // 2)
    _flip(landed.home / evidence[0], 10)

    rc, found = _verify(run_cli)
    assert rc == 1 and found["ok"] is False
    shown_media = str(media_file.relative_to(landed.home))
    assert sorted((d["kind"], d["problem"], d["path"]) for d in found["differences"]) == [
        ("evidence", "sha256 differs", evidence[0]),
        ("media", "sha256 differs", shown_media),
    ]

    # Matching the post again reuses the changed evidence file; its record stays the first.
    pipeline = Pipeline(landed)
    try:
        pipeline.land(post.key, pipeline.match(post.key))
    finally:
        pipeline.close()
    with open_store(landed) as store:
        [rematched] = store.list_matches(post_key=post.key)
    assert rematched.updated_at > match.updated_at
    kept = {e.path: e for s in rematched.segments for e in s.evidence_files}
    assert (
        kept[evidence[0]]
        == {e.path: e for s in match.segments for e in s.evidence_files}[evidence[0]]
    )
    rc, again = _verify(run_cli, "--evidence")
    assert rc == 1
    assert [(d["problem"], d["path"]) for d in again["differences"]] == [
        ("sha256 differs", evidence[0])
    ]

    size = (landed.home / evidence[0]).stat().st_size
    with (landed.home / evidence[0]).open("ab") as f:
        f.write(b"\0")
    (landed.home / evidence[1]).unlink()
    media_file.unlink()
    rc, found = _verify(run_cli)
    assert rc == 1
    assert sorted((d["kind"], d["problem"], d["path"]) for d in found["differences"]) == [
        ("evidence", "missing", evidence[1]),
        ("evidence", "size differs", evidence[0]),
        ("media", "missing", f"media/{post.media_sha256[:2]}/{post.media_sha256}.*"),
    ]

    rc, only_evidence = _verify(run_cli, "--evidence")
    assert rc == 1 and only_evidence["media_checked"] == 0
    assert {d["kind"] for d in only_evidence["differences"]} == {"evidence"}
    grown = next(d for d in only_evidence["differences"] if d["path"] == evidence[0])
    assert grown["detail"] == f"recorded {size} bytes, found {size + 1}"

    text = run_cli("verify")
    assert text.returncode == 1
    last = text.stdout.strip().splitlines()[-1]
    assert last.startswith("verify: ") and "3 differ from their records" in last


def test_match_json_says_where_and_when_a_local_file_was_read(
    run_cli: Runner, reference_clip: Path, tmp_path: Path
) -> None:
    added = run_cli("catalog", "add", "--title", "Starfall Station", str(reference_clip))
    assert added.returncode == 0, added.stderr
    local = tmp_path / "my copy.mp4"
    local.write_bytes(reference_clip.read_bytes())
    done = run_cli("match", "--json", str(local))
    assert done.returncode == 0, done.stderr
    media = json.loads(done.stdout)["media"]
    assert media["source_url"] == local.resolve().as_uri()
    assert media["source_url"].startswith("file:///") and "my%20copy.mp4" in media["source_url"]
    assert media["captured_at"] and media["bytes"] == local.stat().st_size
