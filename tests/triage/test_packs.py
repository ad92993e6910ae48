"""Evidence packs (triage/packs.py) of real matches: the replica's posts crawled, downloaded,
matched and landed once for the module, then packed, verified, tampered with and packed
again after the post is gone from the platform."""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from crawler.replica.server import ReplicaServer
from crawler.replica.site import SITE_FILE
from crawler.sources import ReplicaSource
from reelwatch.errors import InputError
from reelwatch.models import Match, post_key
from reelwatch.settings import Settings, load_settings
from tests.workers.conftest import COPY_ID, HOSTILE_CAPTION, HOSTILE_ID, TAG, World, world
from triage.packs import MANIFEST, MANIFEST_HASH, export_pack, pack_name, verify_pack
from triage.stores import open_store

__all__ = ["world"]  # fixture used by name


@dataclass(frozen=True)
class Landed:
    settings: Settings
    replica: ReplicaServer
    site: Path
    copy: Match
    hostile: Match


@pytest.fixture(scope="module")
def landed(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Landed]:
    """The world's posts crawled from a replica and landed once, on a home of this module.

    The replica serves a copy of the world's site, so a test here may delete posts from it
    without touching the session's site."""
    from matcher.catalog import Catalog
    from workers import tasks
    from workers.app import configure

    root = tmp_path_factory.mktemp("packs")
    site = root / "site"
    shutil.copytree(world.site, site)
    home = root / "home"
    with pytest.MonkeyPatch.context() as mp, ReplicaServer(site) as replica:
        mp.setenv("REELWATCH_HOME", str(home))
        settings = load_settings(home=home)
        settings.download.allow_private_hosts = True
        settings.ensure_home()
        ReplicaSource.set_base_url(settings, replica.base_url)
        catalog = Catalog(settings)
        title = catalog.add_title("Starfall Station", owner="Northlight", hashtags=[TAG])
        catalog.add_assets(title.id, [world.reference])
        configure(settings)
        tasks.crawl.delay("replica", TAG, None, "test").get()
        with open_store(settings) as store:
            [copy] = store.list_matches(post_key=post_key("replica", COPY_ID))
            [hostile] = store.list_matches(post_key=post_key("replica", HOSTILE_ID))
        yield Landed(settings, replica, site, copy, hostile)


def _export(landed: Landed, match: Match, out: Path, *, as_zip: bool = False) -> Path:
    with open_store(landed.settings) as store:
        return export_pack(landed.settings, store, match.id, out, as_zip=as_zip)


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def _manifest(pack: Path) -> dict:
    return json.loads((pack / MANIFEST).read_text())


def test_a_pack_holds_the_capture_and_verifies(landed: Landed, tmp_path: Path) -> None:
    match = landed.copy
    pack = _export(landed, match, tmp_path)
    assert pack == tmp_path / pack_name(match.id)
    assert pack.name == f"replica_{COPY_ID}_starfall-station"
    check = verify_pack(pack)
    assert check.ok, check.problems
    manifest = _manifest(pack)
    listed = {f["path"]: f for f in manifest["files"]}
    assert check.files == len(listed)
    assert manifest["match_id"] == match.id and manifest["format"] == 1
    # The media is the stored file, named by its sha256, which is the recorded one.
    assert match.media_sha256
    [media] = [p for p in listed if p.startswith("media/")]
    assert media.startswith(f"media/{match.media_sha256}.")
    stored = next((landed.settings.media_dir / match.media_sha256[:2]).glob("*"))
    assert (pack / media).read_bytes() == stored.read_bytes()
    # Every evidence file of every segment, as recorded on its segment.
    recorded = {e.sha256 for s in match.segments for e in s.evidence_files}
    packed = {f["sha256"] for p, f in listed.items() if p.startswith("evidence/")}
    assert recorded and packed == recorded
    platform = json.loads((pack / "capture" / "platform.json").read_text())
    assert platform["raw"]["id"] == COPY_ID
    assert platform["status"] == 200 and platform["user_agent"]
    assert platform["source_url"].startswith(landed.replica.base_url)
    assert platform["captured_at"]
    reference = json.loads((pack / "reference.json").read_text())
    assert reference["title"]["name"] == "Starfall Station"
    assets = {s.ref_asset for s in match.segments if not s.ref_asset.startswith("title:")}
    assert assets and {a["id"] for a in reference["assets"]} == assets
    assert reference["not_recorded"] == []  # every asset named as it was matched
    assert all(len(a["sha256"]) == 64 for a in reference["assets"])
    stored_match = json.loads((pack / "match.json").read_text())
    assert stored_match["signals"] == match.signals and stored_match["status"] == "new"
    assert json.loads((pack / "post.json").read_text())["post_id"] == COPY_ID
    assert json.loads((pack / "media.json").read_text())["sha256"] == match.media_sha256
    summary = (pack / "summary.html").read_text()
    assert "@media print" in summary and "Starfall Station" in summary
    for rel in listed:  # every image the summary shows is a file of the pack
        if rel.startswith("evidence/"):
            assert f'src="{rel}"' in summary
    digest = (pack / MANIFEST_HASH).read_text().split()[0]
    assert hashlib.sha256((pack / MANIFEST).read_bytes()).hexdigest() == digest
    # Writing into an existing pack is refused, not mixed.
    with pytest.raises(InputError, match="already exists"):
        _export(landed, match, tmp_path)


def test_one_changed_byte_of_the_media_fails_the_folder_pack(
    landed: Landed, tmp_path: Path
) -> None:
    pack = _export(landed, landed.copy, tmp_path)
    [media] = list((pack / "media").iterdir())
    _flip(media, media.stat().st_size // 2)
    check = verify_pack(pack)
    rel = f"media/{media.name}"
    assert not check.ok
    assert any(p.startswith(f"{rel}: sha256") for p in check.problems), check.problems
    assert any(p.startswith(f"{rel}: its content is not") for p in check.problems)
    assert all(p.startswith(rel) for p in check.problems), check.problems


def test_one_changed_byte_of_the_media_fails_the_zip_pack(landed: Landed, tmp_path: Path) -> None:
    pack = _export(landed, landed.copy, tmp_path, as_zip=True)
    assert pack.name == f"{pack_name(landed.copy.id)}.zip"
    assert verify_pack(pack).ok, verify_pack(pack).problems
    with zipfile.ZipFile(pack) as zf:
        [info] = [i for i in zf.infolist() if "/media/" in i.filename]
        assert info.compress_type == zipfile.ZIP_STORED
        offset = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    rel = info.filename.split("/", 1)[1]
    _flip(pack, offset + info.file_size // 2)
    check = verify_pack(pack)
    assert not check.ok
    assert check.problems == [f"{rel}: its bytes changed (the zip's CRC-32 check fails)"]


def test_an_edited_manifest_and_an_extra_file_are_reported(landed: Landed, tmp_path: Path) -> None:
    pack = _export(landed, landed.copy, tmp_path)
    manifest = _manifest(pack)
    manifest["files"] = [f for f in manifest["files"] if f["path"] != "post.json"]
    (pack / MANIFEST).write_text(json.dumps(manifest))
    (pack / "evidence" / "planted.jpg").write_bytes(b"not evidence")
    check = verify_pack(pack)
    assert not check.ok
    assert f"{MANIFEST}: its sha256 is not the one in {MANIFEST_HASH} (the manifest changed)" in (
        check.problems
    )
    assert "evidence/planted.jpg: not in the manifest" in check.problems
    assert "post.json: not in the manifest" in check.problems


def test_the_pack_builds_after_the_post_is_deleted_from_the_platform(
    landed: Landed, tmp_path: Path
) -> None:
    match = landed.copy
    site_file = landed.site / SITE_FILE
    site = json.loads(site_file.read_text())
    site["items"] = [i for i in site["items"] if i["id"] != COPY_ID]
    site_file.write_text(json.dumps(site))
    (landed.site / "videos" / f"{COPY_ID}.mp4").unlink()
    # The platform no longer has it: its page answers 404.
    page = f"{landed.replica.base_url}/@mirror.king/video/{COPY_ID}"
    with pytest.raises(urllib.error.HTTPError) as gone:
        urllib.request.urlopen(page, timeout=30)
    assert gone.value.code == 404
    for as_zip in (False, True):
        pack = _export(landed, match, tmp_path, as_zip=as_zip)
        check = verify_pack(pack)
        assert check.ok, check.problems
        assert check.files >= 9
    # And with the platform away altogether.
    landed.replica.stop()
    pack = _export(landed, match, tmp_path / "offline")
    assert verify_pack(pack).ok


def test_a_changed_stored_media_file_is_refused_not_packed(landed: Landed, tmp_path: Path) -> None:
    sha = landed.hostile.media_sha256
    assert sha
    stored = next((landed.settings.media_dir / sha[:2]).glob(f"{sha}.*"))
    original = stored.read_bytes()
    _flip(stored, len(original) // 2)
    try:
        with pytest.raises(InputError, match=rf"{stored.name}: its sha256 is .* not the"):
            _export(landed, landed.hostile, tmp_path)
        assert list(tmp_path.iterdir()) == []  # nothing half-written left behind
    finally:
        stored.write_bytes(original)


def test_an_unknown_match_is_one_clear_error(landed: Landed, tmp_path: Path) -> None:
    with (
        open_store(landed.settings) as store,
        pytest.raises(InputError, match="no match 'replica:nope:starfall-station'"),
    ):
        export_pack(landed.settings, store, "replica:nope:starfall-station", tmp_path)
    assert not tmp_path.joinpath(pack_name("replica:nope:starfall-station")).exists()


def test_a_hostile_caption_is_escaped_in_the_summary(landed: Landed, tmp_path: Path) -> None:
    pack = _export(landed, landed.hostile, tmp_path)
    assert verify_pack(pack).ok
    summary = (pack / "summary.html").read_text()
    assert "<script>alert(1)</script>" not in summary
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in summary
    assert "<b>evil</b>" not in summary and "&lt;b&gt;evil&lt;/b&gt;" in summary
    assert (
        HOSTILE_CAPTION.split("\r\n")[0] in json.loads((pack / "post.json").read_text())["caption"]
    )


def test_a_manifest_path_leaving_the_pack_is_refused(landed: Landed, tmp_path: Path) -> None:
    pack = _export(landed, landed.copy, tmp_path / "packs")
    outside = tmp_path / "packs" / "x"
    outside.write_bytes(b"secret")
    manifest = _manifest(pack)
    manifest["files"].append({"path": "../x", "sha256": "0" * 64, "bytes": 6})
    data = json.dumps(manifest).encode()
    (pack / MANIFEST).write_bytes(data)
    (pack / MANIFEST_HASH).write_text(f"{hashlib.sha256(data).hexdigest()}  {MANIFEST}\n")
    check = verify_pack(pack)
    assert check.problems == [f"{MANIFEST}: path '../x' leaves the pack: refused"]


def test_a_zip_member_leaving_the_pack_is_refused(landed: Landed, tmp_path: Path) -> None:
    pack = _export(landed, landed.copy, tmp_path / "deep" / "packs", as_zip=True)
    with zipfile.ZipFile(pack, "a") as zf:
        zf.writestr(zipfile.ZipInfo("../../x"), b"planted")
    check = verify_pack(pack)
    assert check.problems == ["zip member '../../x' leaves the pack: refused"]
    assert not (tmp_path / "x").exists()  # nothing was extracted


def test_not_a_pack(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    assert verify_pack(tmp_path / "notes.txt").problems[0].startswith("notes.txt: not a zip")
    gone = tmp_path / "gone"
    assert verify_pack(gone).problems == [f"{gone}: no such pack folder or zip"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert verify_pack(empty).problems == [f"{MANIFEST}: missing"]


def test_the_page_screenshot_goes_in_the_capture_folder(landed: Landed, tmp_path: Path) -> None:
    """A browser crawl stores a screenshot of the post page (``provenance.screenshot``, relative
    to the home); the replica's HTTP crawl takes none, so one is put where a browser crawl
    puts it (crawler/sources/captured.py) and named on the post."""
    from PIL import Image

    shot = landed.settings.home / "captures" / "replica" / f"{HOSTILE_ID}.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), (200, 30, 30)).save(shot)
    key = post_key("replica", HOSTILE_ID)
    with open_store(landed.settings) as store:
        post = store.get_post(key)
        assert post is not None and post.provenance.screenshot is None
        post.provenance.screenshot = str(shot.relative_to(landed.settings.home))
        store.upsert_post(post)
    try:
        pack = _export(landed, landed.hostile, tmp_path / "with-shot")
        assert verify_pack(pack).ok
        packed = pack / "capture" / f"{HOSTILE_ID}.png"
        assert packed.read_bytes() == shot.read_bytes()
        assert f'<img src="capture/{HOSTILE_ID}.png"' in (pack / "summary.html").read_text()
        assert f"capture/{HOSTILE_ID}.png" in {f["path"] for f in _manifest(pack)["files"]}
        # A screenshot the post names but that is gone is refused, not silently left out.
        shot.unlink()
        with pytest.raises(InputError, match="screenshot missing"):
            _export(landed, landed.hostile, tmp_path / "shot-gone")
    finally:
        with open_store(landed.settings) as store:
            post = store.get_post(key)
            assert post is not None
            post.provenance.screenshot = None
            store.upsert_post(post)


def test_pack_names_are_plain_file_names_for_any_id() -> None:
    assert pack_name("replica:7300:starfall-station") == "replica_7300_starfall-station"
    hostile = ["x:../../etc/passwd:t", "x:a/b:t", "x:a\nb:t", "x:..:t", "x:" + "9" * 400 + ":t"]
    names = [pack_name(i) for i in hostile]
    assert len(set(names)) == len(names)
    for name in names:
        assert "/" not in name and "\n" not in name and not name.startswith(".")
        assert len(name) <= 161
    # Two ids that differ only where characters were replaced do not share a name.
    assert pack_name("x:a/b:t") != pack_name("x:a\\b:t")


def test_a_link_inside_a_pack_folder_is_refused(landed: Landed, tmp_path: Path) -> None:
    """A file of the pack replaced by a link to a file elsewhere is not followed."""
    pack = _export(landed, landed.copy, tmp_path / "packs")
    outside = tmp_path / "elsewhere.json"
    shutil.copy(pack / "post.json", outside)
    (pack / "post.json").unlink()
    (pack / "post.json").symlink_to(outside)
    assert verify_pack(pack).problems == ["post.json: a link, refused"]
