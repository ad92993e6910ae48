"""``reelwatch evidence export`` and ``evidence verify`` as a user runs them, on matches a
crawl of the replica landed: one pack per match, paths printed, a changed byte and a bad id
each reported in one line, exit status 1."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from crawler.replica.server import ReplicaServer
from reelwatch.models import post_key
from reelwatch.settings import Settings
from tests.cli.conftest import Runner
from tests.cli.test_verify import landed
from tests.workers.conftest import COPY_ID, HOSTILE_ID, replica, sink, world, world_settings
from triage.packs import pack_name
from triage.stores import open_store

__all__ = ["landed", "replica", "sink", "world", "world_settings"]  # fixtures used by name


def test_export_and_verify_from_the_command_line(
    landed: Settings, replica: ReplicaServer, run_cli: Runner, tmp_path: Path
) -> None:
    with open_store(landed) as store:
        [copy] = store.list_matches(post_key=post_key("replica", COPY_ID))
        [hostile] = store.list_matches(post_key=post_key("replica", HOSTILE_ID))
    replica.stop()  # packs come from what was stored: the platform is not asked again
    out = tmp_path / "packs"

    done = run_cli("evidence", "export", copy.id, hostile.id, "--out", str(out))
    assert done.returncode == 0, done.stderr
    folders = [out / pack_name(copy.id), out / pack_name(hostile.id)]
    assert done.stdout.splitlines() == [str(p) for p in folders]
    assert all((p / "manifest.json").is_file() for p in folders)

    done = run_cli("evidence", "verify", *map(str, folders))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("OK  ") for line in lines)

    done = run_cli("evidence", "export", copy.id, "--out", str(out), "--zip", "--json")
    assert done.returncode == 0, done.stderr
    [row] = json.loads(done.stdout)
    zipped = out / f"{pack_name(copy.id)}.zip"
    assert row == {"match_id": copy.id, "path": str(zipped)}

    # One byte of the media changed inside the zip: verify names it and exits 1.
    with zipfile.ZipFile(zipped) as zf:
        [info] = [i for i in zf.infolist() if "/media/" in i.filename]
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data = bytearray(zipped.read_bytes())
    data[start + info.file_size // 2] ^= 0x01
    zipped.write_bytes(bytes(data))
    media = info.filename.split("/", 1)[1]
    done = run_cli("evidence", "verify", str(zipped), str(folders[0]), "--json")
    assert done.returncode == 1
    bad, good = json.loads(done.stdout)
    assert bad["ok"] is False and good["ok"] is True
    assert bad["problems"] and all(p.startswith(f"{media}:") for p in bad["problems"])
    done = run_cli("evidence", "verify", str(zipped))
    assert done.returncode == 1
    assert done.stdout.startswith(f"FAILED  {zipped}")
    assert f"  {media}: its bytes changed (the zip's CRC-32 check fails)" in done.stdout

    # An unknown id is one error line; the other match is still packed.
    again = tmp_path / "again"
    done = run_cli(
        "evidence", "export", "replica:nope:starfall-station", copy.id, "--out", str(again)
    )
    assert done.returncode == 1
    assert done.stderr == (
        "reelwatch: error: no match 'replica:nope:starfall-station' "
        "(see `reelwatch matches list`)\n"
    )
    assert done.stdout.splitlines() == [str(again / pack_name(copy.id))]

    # An existing pack is never written into.
    done = run_cli("evidence", "export", copy.id, "--out", str(out))
    assert done.returncode == 1
    assert done.stderr.startswith("reelwatch: error: ") and "already exists" in done.stderr
    assert done.stderr.count("\n") == 1

    done = run_cli("evidence", "verify", str(tmp_path / "nothing-here"))
    assert done.returncode == 1 and "no such pack folder or zip" in done.stdout
