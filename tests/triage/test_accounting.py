"""The accounting of a title: figures, CSV and printable HTML from a real SQLite store.

The store is seeded with real Match and Post records across three platforms and every kind of
outcome (removed at known times, still up after a notice, reinstated, dismissed, a post whose
record is gone), plus real PNG evidence files under the data home, so every figure asserted
here has one right answer worked out by hand in :data:`EXPECTED`.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from reelwatch.digest import sha256_file
from reelwatch.errors import InputError
from reelwatch.models import (
    AIFlag,
    EvidenceFile,
    Notice,
    NoticeStatus,
    PostStats,
    Segment,
    TriageStatus,
    WorkRef,
)
from reelwatch.settings import Settings
from tests.triage.factories import T0, make_match, make_post
from triage.accounting import (
    INSTANCE_COLUMNS,
    TitleAccounting,
    accounting_csv,
    accounting_html,
    accounting_summary_csv,
    human_duration,
    percentile,
    title_accounting,
)
from triage.stores import Store, open_store

TITLE = "the-crown"
HOSTILE_CAPTION = '<script>alert("caption")</script> =cmd|\' /C calc\'!A0 & "quotes"'
HOSTILE_ACCOUNT = "-2+3"
HOURS = 3600.0

# Removal times (notice sent -> removed), by platform: tiktok 1800, 3600, 10800; youtube
# 86400, 187200 (then reinstated). All five: median 10800, mean 289800 / 5 = 57960, p90
# (nearest rank: ceil(0.9 * 5) = 5th) 187200.
EXPECTED: dict[str, Any] = {
    "total": 9,
    "by_status": {
        "new": 1,
        "confirmed": 1,
        "notice_drafted": 0,
        "notice_sent": 1,
        "removed": 4,
        "rejected": 0,
        "reinstated": 1,
        "dismissed": 1,
    },
    # t1 1000 (post re-crawled after landing), t2 250 (landed after the post was seen),
    # t4 40, t5 10, y1 5000, y2 300, y3 7 (post record gone: the match's count); t3 and the
    # instagram post have no count.
    "views": 1000 + 250 + 40 + 10 + 5000 + 300 + 7,
    "views_unknown": 2,
}


def png(path: Path, seed: int) -> Path:
    """A real, distinct PNG at ``path``."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, size=(9, 16, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).resize((160, 90), Image.Resampling.NEAREST).save(path, "PNG")
    return path


def _segment(settings: Settings, post_id: str, *, tamper: bool = False) -> Segment:
    """A copy segment with two evidence images written and recorded; ``tamper`` changes the
    query frame after it was recorded, and names a third file that was never written."""
    paths = []
    files = []
    for i, role in enumerate(("q", "r")):
        relative = f"evidence/{TITLE}/{post_id}/{role}-0.png"
        full = png(settings.home / relative, seed=int(post_id) * 10 + i)
        paths.append(relative)
        files.append(
            EvidenceFile(path=relative, sha256=sha256_file(full), bytes=full.stat().st_size)
        )
    if tamper:
        png(settings.home / paths[0], seed=999)
        paths.append(f"evidence/{TITLE}/{post_id}/gone.png")
    return Segment(
        signal="copy",
        query_start=2.0,
        query_end=9.5,
        ref_asset="crown-s1e1",
        ref_start=40.0,
        ref_end=47.5,
        score=0.9,
        evidence=paths,
        evidence_files=files,
    )


def _land(
    store: Store,
    settings: Settings,
    post_id: str,
    platform: str,
    *,
    post_views: int | None,
    match_views: int | None,
    seen: datetime,
    landed: datetime,
    ai: bool = False,
    keep_post: bool = True,
    recrawled: datetime | None = None,
    **match_fields: Any,
) -> str:
    caption = match_fields.pop("caption", "best scene #thecrown")
    if keep_post:
        store.upsert_post(
            make_post(
                post_id,
                platform=platform,
                url=f"https://{platform}.example/v/{post_id}",
                caption=caption,
                stats=PostStats(views=post_views),
                posted_at=seen - timedelta(days=1),
                first_seen=seen,
                last_seen=recrawled or seen,
            )
        )
    match = make_match(
        post_id,
        TITLE,
        platform=platform,
        post_url=f"https://{platform}.example/v/{post_id}",
        caption=caption,
        views=match_views,
        created_at=landed,
        updated_at=landed,
        ai=AIFlag(is_ai=True, reasons=["platform label: AI-generated"]) if ai else AIFlag(),
        segments=[_segment(settings, post_id, tamper=post_id == "2")],
        **match_fields,
    )
    store.upsert_match(match)
    return match.id


def _remove(store: Store, match_id: str, after_s: float, notice: str) -> None:
    store.set_status(match_id, "confirmed", at=T0 - timedelta(hours=1))
    store.set_status(match_id, "notice_sent", at=T0, notice_id=notice)
    store.set_status(match_id, "removed", actor="re-check", at=T0 + timedelta(seconds=after_s))


def seed_accounting(store: Store, settings: Settings) -> dict[str, str]:
    """Nine instances of ``the-crown`` on three platforms and one of another title; the ids."""
    day = timedelta(days=1)
    ids = {
        # t1: landed with 900 views at T0, the post re-crawled a day later with 1000.
        "t1": _land(
            store,
            settings,
            "1",
            "tiktok",
            post_views=1000,
            match_views=900,
            seen=T0 - 5 * day,
            landed=T0 - 5 * day,
            recrawled=T0 - 4 * day,
            ai=True,
        ),
        # t2: the post seen with 200, the match landed later with 250.
        "t2": _land(
            store,
            settings,
            "2",
            "tiktok",
            post_views=200,
            match_views=250,
            seen=T0 - 4 * day,
            landed=T0 - 3 * day,
        ),
        "t3": _land(
            store,
            settings,
            "3",
            "tiktok",
            post_views=None,
            match_views=None,
            seen=T0 - 3 * day,
            landed=T0 - 3 * day,
        ),
        "t4": _land(
            store,
            settings,
            "4",
            "tiktok",
            post_views=40,
            match_views=40,
            seen=T0 - 2 * day,
            landed=T0 - 2 * day,
        ),
        "t5": _land(
            store,
            settings,
            "5",
            "tiktok",
            post_views=10,
            match_views=10,
            seen=T0 - 2 * day,
            landed=T0 - 2 * day,
        ),
        "y1": _land(
            store,
            settings,
            "6",
            "youtube",
            post_views=5000,
            match_views=5000,
            seen=T0 - 6 * day,
            landed=T0 - 6 * day,
            ai=True,
        ),
        "y2": _land(
            store,
            settings,
            "7",
            "youtube",
            post_views=300,
            match_views=300,
            seen=T0 - 1 * day,
            landed=T0 - 1 * day,
        ),
        # y3: its post record is gone; the match's own count and times stand in.
        "y3": _land(
            store,
            settings,
            "8",
            "youtube",
            post_views=None,
            match_views=7,
            seen=T0 + 1 * day,
            landed=T0 + 1 * day,
            keep_post=False,
        ),
        "i1": _land(
            store,
            settings,
            "9",
            "instagram",
            post_views=None,
            match_views=None,
            seen=T0 + 3 * day,
            landed=T0 + 3 * day,
            ai=True,
            caption=HOSTILE_CAPTION,
            account=HOSTILE_ACCOUNT,
        ),
    }
    _remove(store, ids["t1"], 1 * HOURS, "n-tiktok-1")
    _remove(store, ids["t2"], 3 * HOURS, "n-tiktok-1")
    store.set_status(ids["t3"], "confirmed", at=T0)
    store.set_status(ids["t4"], "notice_sent", at=T0, notice_id="n-tiktok-2")
    _remove(store, ids["t5"], 0.5 * HOURS, "n-tiktok-2")
    _remove(store, ids["y1"], 24 * HOURS, "n-youtube-1")
    _remove(store, ids["y2"], 52 * HOURS, "n-youtube-1")
    store.set_status(ids["y2"], "reinstated", actor="re-check", at=T0 + 4 * day)
    store.set_status(ids["y3"], "dismissed", note="parody", at=T0 + 3 * day)
    # Another title's match and notices must not count.
    store.upsert_match(make_match("1", "other-title", platform="tiktok", views=10**9))
    for nid, title, status in [
        ("n-tiktok-1", TITLE, NoticeStatus.SENT),
        ("n-youtube-1", TITLE, NoticeStatus.SENT),
        ("n-tiktok-3", TITLE, NoticeStatus.DRAFTED),
        ("n-other", "other-title", NoticeStatus.SENT),
    ]:
        store.upsert_notice(
            Notice(
                id=nid,
                platform="tiktok",
                account="fan",
                title_id=title,
                title=title,
                match_ids=[],
                urls=[],
                status=status,
            )
        )
    return ids


@pytest.fixture
def store(settings: Settings) -> Any:
    with open_store(settings) as s:
        yield s


@pytest.fixture
def seeded(store: Store, settings: Settings) -> tuple[TitleAccounting, dict[str, str]]:
    ids = seed_accounting(store, settings)
    return title_accounting(settings, store, TITLE, now=T0 + timedelta(days=10)), ids


# Figures -------------------------------------------------------------------------------------
def test_counts_by_status_and_platform(seeded: tuple[TitleAccounting, dict[str, str]]) -> None:
    acc, ids = seeded
    assert acc.title_id == TITLE and acc.title == "The Crown"
    assert acc.generated_at == T0 + timedelta(days=10)
    assert acc.total == EXPECTED["total"] == len(acc.instances)
    assert acc.by_status == EXPECTED["by_status"]
    assert list(acc.by_status) == [s.value for s in TriageStatus]  # lifecycle order
    assert list(acc.by_platform) == ["instagram", "tiktok", "youtube"]
    assert acc.by_platform["tiktok"] == {
        **dict.fromkeys(EXPECTED["by_status"], 0),
        "removed": 3,
        "confirmed": 1,
        "notice_sent": 1,
        "total": 5,
    }
    assert acc.by_platform["youtube"]["removed"] == 1
    assert acc.by_platform["youtube"]["reinstated"] == 1
    assert acc.by_platform["youtube"]["dismissed"] == 1
    assert acc.by_platform["youtube"]["total"] == 3
    assert acc.by_platform["instagram"]["new"] == acc.by_platform["instagram"]["total"] == 1
    assert {i.match_id for i in acc.instances} == set(ids.values())


def test_views_are_the_latest_counts_summed_and_unknowns_counted(
    seeded: tuple[TitleAccounting, dict[str, str]],
) -> None:
    acc, ids = seeded
    views = {i.match_id: i.views for i in acc.instances}
    assert views[ids["t1"]] == 1000  # the re-crawled post's count, newer than the match's 900
    assert views[ids["t2"]] == 250  # the match landed after the post was seen with 200
    assert views[ids["y3"]] == 7  # no post record: the match's count
    assert views[ids["t3"]] is None and views[ids["i1"]] is None
    assert acc.views == EXPECTED["views"] == 6607
    assert acc.views_unknown == EXPECTED["views_unknown"]


def test_removal_times_overall_and_per_platform(
    seeded: tuple[TitleAccounting, dict[str, str]],
) -> None:
    acc, ids = seeded
    r = acc.removal
    assert (r.count, r.median_s, r.mean_s, r.p90_s, r.max_s) == (
        5,
        10800.0,
        57960.0,
        187200.0,
        187200.0,
    )
    tiktok, youtube, instagram = (r.by_platform[p] for p in ("tiktok", "youtube", "instagram"))
    assert (tiktok.count, tiktok.median_s, tiktok.mean_s, tiktok.max_s) == (
        3,
        3600.0,
        5400.0,
        10800.0,
    )
    assert tiktok.p90_s == 10800.0
    assert (youtube.count, youtube.median_s, youtube.mean_s) == (2, 136800.0, 136800.0)
    assert (instagram.count, instagram.median_s, instagram.mean_s) == (0, None, None)
    # Notice sent: t1, t2, t4, t5, y1, y2; still up: t4 (no removal yet), y2 (reinstated).
    assert (r.noticed, r.still_up) == (6, 2)
    assert (tiktok.noticed, tiktok.still_up, youtube.noticed, youtube.still_up) == (4, 1, 2, 1)
    assert r.notices_sent == 2  # drafted ones and another title's do not count
    by_id = {i.match_id: i for i in acc.instances}
    assert by_id[ids["y2"]].removal_s == 187200.0  # kept through the reinstatement
    assert by_id[ids["t4"]].removal_s is None
    assert by_id[ids["t1"]].notice_id == "n-tiktok-1"
    assert by_id[ids["t1"]].status_times["notice_sent"] == T0
    assert by_id[ids["t1"]].status_times["removed"] == T0 + timedelta(hours=1)
    assert by_id[ids["t1"]].status_at == T0 + timedelta(hours=1)


def test_seen_times_ai_share_and_evidence(
    seeded: tuple[TitleAccounting, dict[str, str]],
) -> None:
    acc, ids = seeded
    day = timedelta(days=1)
    assert acc.first_seen == T0 - 6 * day  # y1's post
    assert acc.last_seen == T0 + 3 * day  # the instagram post; y3's match landed before it
    assert acc.first_posted == T0 - 7 * day
    assert acc.last_posted == T0 + 2 * day  # the instagram post
    assert acc.ai_count == 3 and acc.ai_share == pytest.approx(3 / 9)
    # Ordered by posting (or first sighting): y1 first, the instagram post last.
    assert acc.instances[0].match_id == ids["y1"] and acc.instances[-1].match_id == ids["i1"]
    t1 = next(i for i in acc.instances if i.match_id == ids["t1"])
    assert [e.path for e in t1.evidence] == [
        f"evidence/{TITLE}/1/q-0.png",
        f"evidence/{TITLE}/1/r-0.png",
    ]
    assert all(e.sha256 and re.fullmatch("[0-9a-f]{64}", e.sha256) for e in t1.evidence)
    assert t1.matched_times == "copy 2.0-9.5s"


def test_unknown_title_is_one_clear_line(store: Store, settings: Settings) -> None:
    with pytest.raises(InputError, match="no matches of title 'nope'") as empty:
        title_accounting(settings, store, "nope")
    seed_accounting(store, settings)
    with pytest.raises(InputError) as unknown:
        title_accounting(settings, store, "nope\nforged line")
    for exc in (empty.value, unknown.value):
        assert "\n" not in str(exc).replace("\\n", "")


def test_owner_is_the_setting_else_the_one_recorded_when_matched(
    store: Store, settings: Settings
) -> None:
    seed_accounting(store, settings)
    assert title_accounting(settings, store, TITLE).owner == ""
    first = store.list_matches(title_id=TITLE)[0]
    store.upsert_match(first.model_copy(update={"work": WorkRef(owner="Left Bank Pictures")}))
    assert title_accounting(settings, store, TITLE).owner == "Left Bank Pictures"
    settings.notices.rights_owner = "Sony Pictures Television"
    assert title_accounting(settings, store, TITLE).owner == "Sony Pictures Television"


# CSV -----------------------------------------------------------------------------------------
def test_csv_has_every_instance_and_neutralises_formulas(
    seeded: tuple[TitleAccounting, dict[str, str]],
) -> None:
    acc, ids = seeded
    rows = list(csv.DictReader(io.StringIO("".join(accounting_csv(acc)))))
    assert len(rows) == acc.total
    assert {r["match_id"] for r in rows} == set(ids.values())
    assert list(rows[0]) == list(INSTANCE_COLUMNS)
    by_id = {r["match_id"]: r for r in rows}
    hostile = by_id[ids["i1"]]
    assert hostile["caption"] == HOSTILE_CAPTION  # starts with "<": text already
    assert hostile["account"] == "'" + HOSTILE_ACCOUNT  # "-2+3" would be a formula
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
    t1 = by_id[ids["t1"]]
    assert (t1["views"], t1["status"], t1["time_to_removal_s"], t1["time_to_removal"]) == (
        "1000",
        "removed",
        "3600",
        "1 h",
    )
    assert t1["notice_sent_at"] == T0.isoformat()
    assert t1["evidence"].split("; ") == [
        f"evidence/{TITLE}/1/q-0.png",
        f"evidence/{TITLE}/1/r-0.png",
    ]
    assert all(re.fullmatch("[0-9a-f]{64}", h) for h in t1["evidence_sha256"].split("; "))
    assert by_id[ids["t2"]]["evidence_sha256"].split("; ")[2] == "-"  # named, never recorded
    assert by_id[ids["y2"]]["time_to_removal"] == "2 d 4 h"
    assert by_id[ids["t3"]]["views"] == ""


def test_formula_caption_is_text_in_the_csv(store: Store, settings: Settings) -> None:
    store.upsert_match(make_match("1", TITLE, caption='=HYPERLINK("http://x","y")'))
    acc = title_accounting(settings, store, TITLE)
    row = next(csv.DictReader(io.StringIO("".join(accounting_csv(acc)))))
    assert row["caption"] == '\'=HYPERLINK("http://x","y")'


def test_summary_csv_has_the_figures(seeded: tuple[TitleAccounting, dict[str, str]]) -> None:
    acc, _ = seeded
    rows = list(csv.reader(io.StringIO("".join(accounting_summary_csv(acc)))))
    figures = {(f, p, s): v for f, p, s, v in rows[1:]}
    assert figures[("instances", "", "")] == "9"
    assert figures[("instances", "tiktok", "removed")] == "3"
    assert figures[("instances", "", "notice_drafted")] == "0"
    assert figures[("views", "", "")] == "6607"
    assert figures[("views_unknown", "", "")] == "2"
    assert figures[("removal_median_s", "", "")] == "10800"
    assert figures[("removal_mean_s", "", "")] == "57960"
    assert figures[("removal_mean_s", "youtube", "")] == "136800"
    assert figures[("removal_median_s", "instagram", "")] == ""
    assert figures[("still_up_after_notice", "", "")] == "2"
    assert figures[("notices_sent", "", "")] == "2"
    assert float(figures[("ai_share", "", "")]) == pytest.approx(1 / 3, abs=1e-5)


# HTML ----------------------------------------------------------------------------------------
def test_html_lists_every_instance_with_its_evidence_embedded(
    seeded: tuple[TitleAccounting, dict[str, str]], settings: Settings
) -> None:
    acc, ids = seeded
    html = accounting_html(settings, acc)
    shown = re.findall(r'data-match-id="([^"]+)"', html)
    assert sorted(shown) == sorted(ids.values())
    # Every readable evidence image is in the page itself, byte for byte.
    import base64

    q = (settings.home / f"evidence/{TITLE}/6/q-0.png").read_bytes()
    assert f"data:image/png;base64,{base64.b64encode(q).decode()}" in html
    assert 'src="evidence/' not in html and "file://" not in html
    # The tampered frame and the file never written are called out.
    assert html.count("file differs from the recorded sha256") == 1
    assert ">missing<" in html
    assert html.count("file matches the recorded sha256") == 2 * 9 - 1
    # The figures are there, in words.
    assert "median 3 h, mean 16 h 6 min" in html
    assert "6,607" in html and "(plus 2 instances without a play count)" in html
    assert "33.3% (3 of 9)" in html
    assert "@media print" in html and "break-before: page" in html
    assert "<script" not in html  # no script of ours, and none of the stranger's


def test_html_escapes_strangers_text(store: Store, settings: Settings) -> None:
    store.upsert_match(
        make_match(
            "1",
            TITLE,
            caption=HOSTILE_CAPTION,
            account='"><img src=x onerror=alert(1)>',
            post_url="javascript:alert(document.cookie)",
            title="<b>Crown</b>",
            note="</td></tr></table><h1>forged</h1>",
        )
    )
    acc = title_accounting(settings, store, TITLE)
    html = accounting_html(settings, acc)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#34;caption&#34;)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<h1>forged</h1>" not in html and "<b>Crown</b>" not in html
    assert 'href="javascript:' not in html  # shown as text, never a link
    assert "javascript:alert(document.cookie)" in html


# Words ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (None, "-"),
        (0, "0 s"),
        (42.4, "42 s"),
        (90, "1 min 30 s"),
        (3599.7, "1 h"),
        (3660, "1 h 1 min"),
        (100800, "1 d 4 h"),
        (86399, "1 d"),
        (187200, "2 d 4 h"),
    ],
)
def test_human_duration(seconds: float | None, words: str) -> None:
    assert human_duration(seconds) == words


def test_percentile_is_nearest_rank() -> None:
    assert percentile([5.0], 0.9) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile([float(n) for n in range(1, 11)], 0.9) == 9.0
    assert percentile([float(n) for n in range(1, 12)], 0.9) == 10.0
