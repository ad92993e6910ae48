"""``reelwatch accounts list|show`` and the repeat-infringer hook of ``matches set-status``,
through the real console entry point on a SQLite store."""

from __future__ import annotations

import json
from datetime import timedelta
from email import policy
from email.parser import BytesParser

from reelwatch.models import TriageStatus, utcnow
from reelwatch.settings import Settings
from tests.cli.conftest import Runner
from tests.triage.factories import make_match
from triage.stores import open_store


def seed(settings: Settings) -> None:
    """tiktok @Fan: 2 confirmed (one 10 days ago, one 100 days ago, out of the window), a
    notice sent; instagram fan: 1 new; tiktok other: 1 confirmed."""
    now = utcnow()
    with open_store(settings) as store:
        for post_id, account, platform, title in (
            ("1", "@Fan", "tiktok", "the-crown"),
            ("2", "fan", "tiktok", "bridgerton"),
            ("3", "fan", "tiktok", "the-crown"),
            ("4", "fan", "instagram", "the-crown"),
            ("5", "other", "tiktok", "the-crown"),
        ):
            store.upsert_match(
                make_match(post_id, title_id=title, account=account, platform=platform, views=500)
            )
        store.set_status("tiktok:1:the-crown", "confirmed", at=now - timedelta(days=10))
        store.set_status("tiktok:1:the-crown", "notice_sent", at=now - timedelta(days=9))
        store.set_status("tiktok:2:bridgerton", "confirmed", at=now - timedelta(days=100))
        store.set_status("tiktok:5:the-crown", "confirmed", at=now - timedelta(days=1))


def test_list_prints_every_platform_riskiest_first(settings: Settings, run_cli: Runner) -> None:
    seed(settings)

    out = run_cli("accounts", "list")

    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    header = next(line for line in lines if "platform" in line)
    for column in ("account", "risk", "confirmed 90d", "notices 90d", "removals 90d", "titles"):
        assert column in header
    rows = [line for line in lines if "@" in line]
    assert [r.split()[1] for r in rows] == ["tiktok", "tiktok", "instagram"]
    assert "@fan" in rows[0] and "Bridgerton, The Crown" in rows[0], "as most matches spell it"
    assert "instagram" in rows[0], "the same handle elsewhere is named"
    assert "@other" in rows[1]
    assert "@fan" in rows[2]

    listed = json.loads(run_cli("accounts", "list", "--json").stdout)
    assert [(x["platform"], x["account"]) for x in listed] == [
        ("tiktok", "fan"),
        ("tiktok", "other"),
        ("instagram", "fan"),
    ]
    fan = listed[0]
    assert (fan["confirmed"], fan["notices_sent"], fan["removals"], fan["matches"]) == (1, 1, 0, 3)
    assert fan["also_on"] == ["instagram"]
    assert fan["risk"] > listed[1]["risk"] > listed[2]["risk"]
    assert fan["window_days"] == 90
    assert len(json.loads(run_cli("accounts", "list", "--json", "--limit", "1").stdout)) == 1


def test_show_explains_the_risk_and_lists_the_matches(settings: Settings, run_cli: Runner) -> None:
    seed(settings)

    out = run_cli("accounts", "show", "tiktok", "@FAN")

    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "@fan on tiktok: risk" in text
    assert "in the last 90 days: 1 confirmed, 1 with a notice sent, 0 removed, 0 reinstated" in text
    assert "1 confirmed match in the last 90 days (+10)" in text
    assert "also on: instagram (same handle; may be another person)" in text
    for match_id in ("tiktok:1:the-crown", "tiktok:2:bridgerton", "tiktok:3:the-crown"):
        assert match_id in text
    assert text.index("tiktok:1:the-crown") < text.index("tiktok:3:the-crown"), (
        "the confirmation in the window first"
    )

    data = json.loads(run_cli("accounts", "show", "tiktok", "fan", "--json").stdout)
    assert data["confirmed"] == 1
    assert data["match_list"][0]["id"] == "tiktok:1:the-crown"
    assert data["match_list"][0]["status"] == "notice_sent"
    assert data["risk_reasons"] and isinstance(data["risk"], float)


def test_an_unknown_account_is_one_error_line(settings: Settings, run_cli: Runner) -> None:
    seed(settings)
    out = run_cli("accounts", "show", "youtube", "@fan")
    assert out.returncode == 1
    assert out.stderr.strip() == "reelwatch: error: no match names @fan on youtube"
    assert "Traceback" not in out.stderr


def test_an_empty_store_says_so_and_hostile_handles_print_inert(
    settings: Settings, run_cli: Runner
) -> None:
    assert "no accounts" in run_cli("accounts", "list").stdout
    with open_store(settings) as store:
        store.upsert_match(make_match("1", account="\x1b[2J\x1b]0;pwned\x07evil\u202e"))

    out = run_cli("accounts", "list")

    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout and "\u202e" not in out.stdout
    assert "\\x1b[2J" in out.stdout


def test_set_status_sends_the_repeat_infringer_alert_when_the_account_crosses(
    settings: Settings, run_cli: Runner
) -> None:
    with open_store(settings) as store:
        for n in range(3):
            store.upsert_match(make_match(str(n), account="fan"))
    env = {"REELWATCH_LEDGER__ALERT_THRESHOLD": "3"}

    said = [
        run_cli("matches", "set-status", f"tiktok:{n}:the-crown", "confirmed", env=env)
        for n in range(3)
    ]

    assert [r.returncode for r in said] == [0, 0, 0], [r.stderr for r in said]
    assert said[0].stdout.strip() == "tiktok:0:the-crown: confirmed"
    assert "crossed" not in said[1].stdout
    assert (
        "@fan on tiktok crossed the repeat-infringer threshold (3 confirmed in 90 days): "
        "alert sent" in said[2].stdout
    )
    (eml,) = settings.outbox_dir.glob("*.eml")
    mail = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
    assert (
        str(mail["Subject"])
        == "[reelwatch] repeat infringer @fan on tiktok (3 confirmed in 90 days)"
    )

    again = run_cli("matches", "set-status", "tiktok:2:the-crown", "notice_sent", env=env)
    assert again.returncode == 0 and "crossed" not in again.stdout
    assert len(list(settings.outbox_dir.glob("*.eml"))) == 1
    with open_store(settings) as store:
        assert store.get_match("tiktok:2:the-crown").status == TriageStatus.NOTICE_SENT  # type: ignore[union-attr]
