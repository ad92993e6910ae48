"""``reelwatch matches list``: the table names each match's id, which the enforcement commands
(``evidence export``, ``notice draft``) take."""

from __future__ import annotations

from reelwatch.settings import Settings
from tests.cli.conftest import Runner
from tests.triage.factories import make_match
from triage.stores import open_store


def test_the_table_shows_each_match_id(settings: Settings, run_cli: Runner) -> None:
    with open_store(settings) as store:
        store.upsert_match(make_match("7301234567890", title_id="bridgerton", account="fan"))
        store.upsert_match(make_match("7301234567891", title_id="the-crown", account="x"))
    done = run_cli("matches", "list", env={"COLUMNS": "250"})
    assert done.returncode == 0, done.stderr
    assert "tiktok:7301234567890:bridgerton" in done.stdout
    assert "tiktok:7301234567891:the-crown" in done.stdout
