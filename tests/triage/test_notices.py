"""Takedown notices (triage/notices.py) on a real SQLite store, with the shipped templates in
config/notices/: grouping, the DMCA 512(c)(3) elements, each platform's form, marking sent,
withdrawing, strangers' text and bad input."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from reelwatch.errors import InputError
from reelwatch.models import (
    AssetKind,
    AssetRef,
    Match,
    Notice,
    NoticeStatus,
    TriageStatus,
    WorkRef,
)
from reelwatch.settings import Settings
from tests.triage.factories import T0, make_match
from triage.notices import (
    ACCURACY,
    GOOD_FAITH,
    MAX_CAPTION,
    MAX_HANDLE,
    draft_notices,
    mark_sent,
    missing_contact,
    withdraw_notice,
    write_notice,
)
from triage.stores import open_store
from triage.stores.base import Store

CONTACT = {
    "rights_owner": "Example Studios LLC",
    "contact_name": "Jane Doe",
    "company": "Example Studios LLC",
    "address": "1 Studio Way, Burbank, CA 91505, USA",
    "email": "copyright@studio.example",
    "phone": "+1 555 0100",
}

UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def with_contact(settings: Settings) -> Settings:
    for name, value in CONTACT.items():
        setattr(settings.notices, name, value)
    return settings


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    with open_store(settings) as s:
        yield s


def land(store: Store, post_id: str, *, account: str = "fan", **fields: object) -> Match:
    platform = str(fields.get("platform", "tiktok"))
    values: dict[str, object] = {
        "account": account,
        "post_url": f"https://www.tiktok.com/@{account}/video/{post_id}",
        "created_at": T0,
        "views": 1200,
    }
    values.update(fields)
    values.pop("platform", None)
    match = make_match(post_id, platform=platform, **values)
    store.upsert_match(match)
    return match


# One notice per account and title, with every DMCA element -----------------------------------


@pytest.fixture
def crown_notice(settings: Settings, store: Store) -> tuple[Notice, list[Match]]:
    with_contact(settings)
    a = land(store, "7001")
    b = land(store, "7002")
    notices = draft_notices(settings, store, [a.id, b.id], actor="jane")
    assert len(notices) == 1
    return notices[0], [a, b]


def test_two_matches_of_one_account_make_one_notice_listing_both_urls(
    crown_notice: tuple[Notice, list[Match]], store: Store
) -> None:
    notice, (a, b) = crown_notice
    assert (notice.platform, notice.account, notice.title_id) == ("tiktok", "fan", "the-crown")
    assert notice.match_ids == [a.id, b.id]
    assert notice.urls == [a.post_url, b.post_url]
    assert notice.status == NoticeStatus.DRAFTED
    assert notice.created_by == "jane"
    assert store.get_notice(notice.id) == notice
    assert [n.id for n in store.list_notices(match_id=b.id)] == [notice.id]


# 17 U.S.C. 512(c)(3)(A): each element, checked on its own.
DMCA_ELEMENTS = {
    "i-signature": [
        "Physical or electronic signature of a person authorised to act on behalf of the owner",
        "this draft is unsigned",
        re.compile(r"^Signature: _{10,}$", re.M),
        "Capacity: authorised agent of the rights owner, for Example Studios LLC",
    ],
    "ii-copyrighted-work": [
        "Title: The Crown",
        "Copyright owner: Example Studios LLC",
        "  - crown-s1e1",  # the reference asset the posts matched
    ],
    "iii-infringing-material": [
        "Account: @fan on TikTok",
        "1. https://www.tiktok.com/@fan/video/7001\n",
        "2. https://www.tiktok.com/@fan/video/7002\n",
        "reelwatch match id: tiktok:7001:the-crown",
        "reelwatch match id: tiktok:7002:the-crown",
        "copy: 3.0–12.5 s of the post matches crown-s1e1 61.0–70.5 s (score 0.90)",
        "First detected: 2025-03-01 12:00 UTC; play count then: 1200",
    ],
    "iv-contact-information": [
        "Name: Jane Doe",
        "Company: Example Studios LLC",
        "Address: 1 Studio Way, Burbank, CA 91505, USA",
        "Telephone: +1 555 0100",
        "Email: copyright@studio.example",
    ],
    "v-good-faith-statement": [
        "I have a good faith belief that use of the material in the manner complained of is "
        "not authorized by the copyright owner, its agent, or the law."
    ],
    "vi-accuracy-and-authority": [
        "The information in this notification is accurate, and under penalty of perjury, I am "
        "authorized to act on behalf of the owner of an exclusive right that is allegedly "
        "infringed."
    ],
}


@pytest.mark.parametrize("element", DMCA_ELEMENTS)
def test_the_letter_holds_each_dmca_element(
    crown_notice: tuple[Notice, list[Match]], element: str
) -> None:
    text = crown_notice[0].text
    missing = [
        str(p)
        for p in DMCA_ELEMENTS[element]
        if not (p.search(text) if isinstance(p, re.Pattern) else p in text)
    ]
    assert missing == [], f"512(c)(3)(A)({element}) lacks {missing}"


def test_the_letter_is_not_signed_and_says_nothing_was_sent(
    crown_notice: tuple[Notice, list[Match]],
) -> None:
    notice = crown_notice[0]
    assert "Signature: Jane Doe" not in notice.text
    signature_fields = [v for k, v in notice.form.items() if "ignature" in k]
    assert signature_fields and all("Jane Doe" not in v for v in signature_fields)


def test_drafting_moves_new_and_confirmed_matches_to_notice_drafted(
    settings: Settings, store: Store
) -> None:
    new = land(store, "1")
    confirmed = land(store, "2")
    store.set_status(confirmed.id, "confirmed")
    rejected = land(store, "3")
    store.set_status(rejected.id, "rejected")
    [notice] = draft_notices(settings, store, [new.id, confirmed.id, rejected.id], actor="bo")
    for m in (new, confirmed):
        got = store.get_match(m.id)
        assert got is not None
        assert got.status == TriageStatus.NOTICE_DRAFTED
        assert got.enforcement.notice_id == notice.id
        assert got.enforcement.notice_drafted_at is not None
        assert got.history[-1].actor == "bo"
        assert notice.id in got.history[-1].note
    further = store.get_match(rejected.id)
    assert further is not None
    assert further.status == TriageStatus.REJECTED  # further along: keeps its status
    assert further.enforcement.notice_id == notice.id
    assert further.enforcement.notice_drafted_at is None


def test_matches_of_two_accounts_make_two_notices(settings: Settings, store: Store) -> None:
    a1 = land(store, "1", account="fan")
    b1 = land(store, "2", account="other")
    a2 = land(store, "3", account="fan")
    notices = draft_notices(settings, store, [a1.id, b1.id, a2.id])
    by_account = {n.account: n for n in notices}
    assert sorted(by_account) == ["fan", "other"]
    assert by_account["fan"].urls == [a1.post_url, a2.post_url]
    assert by_account["other"].urls == [b1.post_url]
    assert b1.post_url not in by_account["fan"].text
    assert a1.post_url not in by_account["other"].text
    assert len({n.id for n in notices}) == 2


def test_two_titles_of_one_account_make_two_notices(settings: Settings, store: Store) -> None:
    crown = land(store, "1")
    bridgerton = land(store, "1b", title_id="bridgerton")
    notices = draft_notices(settings, store, [crown.id, bridgerton.id])
    assert sorted(n.title_id for n in notices) == ["bridgerton", "the-crown"]


def test_drafting_again_adds_to_the_open_draft_of_that_group(
    settings: Settings, store: Store
) -> None:
    a = land(store, "1")
    [first] = draft_notices(settings, store, [a.id])
    b = land(store, "2")
    [again] = draft_notices(settings, store, [b.id])
    assert again.id == first.id
    assert again.urls == [a.post_url, b.post_url]
    assert [n.id for n in store.list_notices()] == [first.id]
    mark_sent(settings, store, first.id)
    c = land(store, "3")
    [fresh] = draft_notices(settings, store, [c.id])
    assert fresh.id != first.id  # a sent notice is never redrafted
    assert fresh.urls == [c.post_url]


def test_the_work_comes_from_the_match_as_it_was_matched(settings: Settings, store: Store) -> None:
    """Owner, description and reference assets are those the catalog gave when the match was
    made (kept on the match), so drafting needs no catalog; ``notices.rights_owner`` wins."""
    work = WorkRef(
        owner="Crown Pictures Ltd",
        description="A drama.",
        assets=[
            AssetRef(id="crown-s1e1", kind=AssetKind.VIDEO, name="s01e01.mp4", sha256="ab" * 32)
        ],
    )
    [notice] = draft_notices(settings, store, [land(store, "1", work=work).id])
    assert "Copyright owner: Crown Pictures Ltd" in notice.text
    assert "Description: A drama." in notice.text
    assert f"s01e01.mp4 (video; sha256 {'ab' * 32})" in notice.text
    assert not (settings.catalog_dir / "catalog.db").exists()  # no catalog was read or made
    settings.notices.rights_owner = "Crown Holdings"
    [again] = draft_notices(settings, store, [land(store, "2", work=work).id])
    assert "Copyright owner: Crown Holdings" in again.text


# Placeholders --------------------------------------------------------------------------------


def test_unset_contact_details_show_visible_placeholders(settings: Settings, store: Store) -> None:
    settings.notices.email = ""
    settings.notices.phone = "+1 555 0100"
    missing = missing_contact(settings)
    assert "notices.email" in missing
    assert "notices.phone" not in missing
    [notice] = draft_notices(settings, store, [land(store, "1").id])
    assert "Email: [CONTACT EMAIL — set notices.email]" in notice.text
    assert "Telephone: +1 555 0100" in notice.text
    assert "Copyright owner: [RIGHTS OWNER — set notices.rights_owner" in notice.text
    assert notice.form["Email address"] == "[CONTACT EMAIL — set notices.email]"


def test_missing_contact_is_empty_once_everything_is_set(settings: Settings) -> None:
    assert missing_contact(with_contact(settings)) == []


# Platform forms -------------------------------------------------------------------------------

TEMPLATES = Path(__file__).resolve().parents[2] / "config" / "notices"
FORM_URLS = {
    "tiktok": "https://www.tiktok.com/",
    "youtube": "https://www.youtube.com/",
    "instagram": "https://help.instagram.com/",
    "x": "https://help.x.com/",
}


@pytest.mark.parametrize("platform", ["tiktok", "youtube", "instagram", "x", "replica", "ytdlp"])
def test_each_platform_form_renders_with_every_field_filled(
    settings: Settings, store: Store, platform: str
) -> None:
    with_contact(settings)
    a = land(store, "1", platform=platform, post_url=f"https://{platform}.example/p/1")
    b = land(store, "2", platform=platform, post_url=f"https://{platform}.example/p/2")
    [notice] = draft_notices(settings, store, [a.id, b.id], platform=platform)
    spec = TEMPLATES / f"{platform}.yaml"
    own = yaml.safe_load(spec.read_text()) if spec.exists() else None
    if own and own.get("imitates"):
        own = yaml.safe_load((TEMPLATES / f"{own['imitates']}.yaml").read_text())
    expected = own or yaml.safe_load((TEMPLATES / "generic.yaml").read_text())
    assert list(notice.form) == [f["label"] for f in expected["fields"]]
    empty = [label for label, value in notice.form.items() if not value.strip()]
    assert empty == []
    unset = {k: v for k, v in notice.form.items() if "— set notices." in v or "{" in v}
    assert unset == {}
    values = "\n".join(notice.form.values())
    assert a.post_url in values and b.post_url in values
    assert GOOD_FAITH in values and ACCURACY in values
    assert CONTACT["email"] in values
    if platform in FORM_URLS:
        assert notice.form_url.startswith(FORM_URLS[platform])
    if platform == "replica":
        assert notice.form_url.startswith(FORM_URLS["tiktok"])
        assert "TikTok" in notice.text


def test_a_form_template_naming_an_unknown_value_is_one_error_and_drafts_nothing(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "notices"
    folder.mkdir()
    for f in TEMPLATES.iterdir():
        (folder / f.name).write_text(f.read_text())
    spec = yaml.safe_load((folder / "tiktok.yaml").read_text())
    spec["fields"].append({"label": "Typo", "value": "{{ sender.emial }}"})
    (folder / "tiktok.yaml").write_text(yaml.safe_dump(spec))
    settings.notices.templates_dir = folder
    m = land(store, "1")
    with pytest.raises(InputError, match=r"tiktok\.yaml field 'Typo'.*emial") as err:
        draft_notices(settings, store, [m.id])
    assert "\n" not in str(err.value)
    assert store.list_notices() == []
    got = store.get_match(m.id)
    assert got is not None and got.status == TriageStatus.NEW


# Marking sent, withdrawing ------------------------------------------------------------------


def test_marking_sent_moves_the_matches_to_notice_sent(
    crown_notice: tuple[Notice, list[Match]], settings: Settings, store: Store, tmp_path: Path
) -> None:
    notice, matches = crown_notice
    at = T0 + timedelta(days=2)
    sent = mark_sent(settings, store, notice.id, actor="jane", reference="TT-123", at=at)
    assert (sent.status, sent.sent_at, sent.sent_by, sent.reference) == (
        NoticeStatus.SENT,
        at,
        "jane",
        "TT-123",
    )
    assert store.get_notice(notice.id) == sent
    for m in matches:
        got = store.get_match(m.id)
        assert got is not None
        assert got.status == TriageStatus.NOTICE_SENT
        assert got.enforcement.notice_sent_at == at
        assert got.enforcement.notice_id == notice.id
        assert "TT-123" in got.history[-1].note
    assert {m.id for m in store.list_matches(status="notice_sent")} == {m.id for m in matches}
    page = write_notice(sent, tmp_path, templates_dir=settings.notice_templates_dir)[1].read_text()
    assert "Marked sent on 2025-03-03 12:00 UTC by jane, reference TT-123." in page
    assert "nothing has been sent" not in page


def test_marking_a_sent_notice_sent_again_changes_nothing(
    crown_notice: tuple[Notice, list[Match]], settings: Settings, store: Store
) -> None:
    notice, matches = crown_notice
    first = mark_sent(settings, store, notice.id, reference="TT-1", at=T0)
    before = store.get_match(matches[0].id)
    again = mark_sent(settings, store, notice.id, reference="TT-2", at=T0 + timedelta(days=1))
    assert again == first == store.get_notice(notice.id)
    assert store.get_match(matches[0].id) == before


def test_a_removed_match_stays_removed_when_its_notice_is_marked_sent(
    settings: Settings, store: Store
) -> None:
    up = land(store, "1")
    gone = land(store, "2")
    [notice] = draft_notices(settings, store, [up.id, gone.id])
    store.set_status(gone.id, "removed")
    mark_sent(settings, store, notice.id)
    assert store.get_match(gone.id).status == TriageStatus.REMOVED  # type: ignore[union-attr]
    assert store.get_match(up.id).status == TriageStatus.NOTICE_SENT  # type: ignore[union-attr]


def test_withdrawing_puts_the_matches_back_and_blocks_marking_sent(
    crown_notice: tuple[Notice, list[Match]], settings: Settings, store: Store
) -> None:
    notice, matches = crown_notice
    withdrawn = withdraw_notice(settings, store, notice.id, actor="jane")
    assert withdrawn.status == NoticeStatus.WITHDRAWN
    assert store.get_notice(notice.id) == withdrawn
    for m in matches:
        got = store.get_match(m.id)
        assert got is not None
        assert got.status == TriageStatus.CONFIRMED
        assert got.enforcement.notice_id is None
    with pytest.raises(InputError, match="was withdrawn"):
        mark_sent(settings, store, notice.id)
    assert withdraw_notice(settings, store, notice.id) == withdrawn


def test_unknown_notice_is_one_error(settings: Settings, store: Store) -> None:
    with pytest.raises(InputError, match="unknown notice 'n-404'"):
        mark_sent(settings, store, "n-404")
    with pytest.raises(InputError, match="unknown notice 'n-404'"):
        withdraw_notice(settings, store, "n-404")


# Bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unknown", r"unknown match 'tiktok:404:the-crown'"),
        ("dismissed", r"match 'tiktok:2:the-crown' is dismissed"),
        ("platform", r"match 'tiktok:1:the-crown' is on tiktok, not youtube"),
        ("empty", r"no match ids given"),
    ],
)
def test_bad_ids_are_one_error_and_nothing_is_drafted(
    settings: Settings, store: Store, case: str, message: str
) -> None:
    good = land(store, "1")
    dismissed = land(store, "2")
    store.set_status(dismissed.id, "dismissed")
    ids = {
        "unknown": [good.id, "tiktok:404:the-crown"],
        "dismissed": [good.id, dismissed.id],
        "platform": [good.id],
        "empty": [" "],
    }[case]
    with pytest.raises(InputError, match=message) as err:
        draft_notices(settings, store, ids, platform="youtube" if case == "platform" else None)
    assert "\n" not in str(err.value)
    assert store.list_notices() == []
    got = store.get_match(good.id)
    assert got is not None and got.status == TriageStatus.NEW and got.enforcement.notice_id is None


# Strangers' text -----------------------------------------------------------------------------

HOSTILE_CAPTION = (
    "nice\x1b[2J\x1b[31m clip\r\n\nI WITHDRAW THIS NOTICE.\u202egnp.exe\u2066 "
    "<script>alert(1)</script> " + "x" * 5000
)
HOSTILE_HANDLE = "evil\u202e\nSignature: Jane Doe\x07" + "h" * 500


def test_hostile_caption_and_handle_cannot_rewrite_the_notice(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    with_contact(settings)
    m = land(
        store,
        "1",
        account=HOSTILE_HANDLE,
        caption=HOSTILE_CAPTION,
        post_url="https://www.tiktok.com/@evil/video/1",
    )
    [notice] = draft_notices(settings, store, [m.id])
    files = write_notice(notice, tmp_path / "out", templates_dir=settings.notice_templates_dir)
    texts = [notice.text, *notice.form.values(), *(p.read_text() for p in files)]
    assert [UNSAFE.findall(t) for t in texts] == [[] for _ in texts]
    lines = notice.text.splitlines()
    assert not any(line.startswith(("I WITHDRAW", "Signature: Jane")) for line in lines)
    assert [ln for ln in lines if ln.startswith("Signature:")] == ["Signature: " + "_" * 30]
    caption_line = next(ln for ln in lines if "Caption as posted" in ln)
    assert "I WITHDRAW THIS NOTICE." in caption_line  # kept, inside the quoted caption
    assert len(caption_line) <= MAX_CAPTION + 40
    account_line = next(ln for ln in lines if ln.startswith("Account: "))
    assert len(account_line) <= MAX_HANDLE + 40
    html = (tmp_path / "out" / "notice.html").read_text()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_only_http_urls_become_links_in_the_html(settings: Settings, tmp_path: Path) -> None:
    notice = Notice(
        id="n-1",
        platform="tiktok",
        account="a",
        title_id="t",
        title="T",
        match_ids=["m"],
        urls=["javascript:alert(1)"],
        text='See javascript:alert(1) and https://ok.example/x?a=1&b="2"\n',
        form={"Links": '=HYPERLINK("http://bad")', "Plain": "-1+2", "Fine": "hello"},
        template="dmca.txt.j2",
    )
    out = tmp_path / "n-1"
    write_notice(notice, out, templates_dir=settings.notice_templates_dir)
    html = (out / "notice.html").read_text()
    assert 'href="javascript' not in html
    assert '<a href="https://ok.example/x?a=1&amp;b=">' in html
    rows = list(csv.reader((out / "form.csv").open(newline="")))
    assert rows == [
        ["label", "value"],
        ["Links", '\'=HYPERLINK("http://bad")'],
        ["Plain", "'-1+2"],
        ["Fine", "hello"],
    ]


# Files ---------------------------------------------------------------------------------------


def test_write_notice_writes_the_letter_a_printable_page_and_the_form(
    crown_notice: tuple[Notice, list[Match]], settings: Settings, tmp_path: Path
) -> None:
    notice, matches = crown_notice
    files = write_notice(notice, tmp_path / notice.id, templates_dir=settings.notice_templates_dir)
    assert [p.name for p in files] == ["notice.txt", "notice.html", "form.json", "form.csv"]
    txt, html, form_json, form_csv = files
    assert txt.read_text() == notice.text
    page = html.read_text()
    for m in matches:
        assert f'<a href="{m.post_url}">' in page
    assert "nothing has been sent" in page
    form = json.loads(form_json.read_text())
    assert form["notice_id"] == notice.id
    assert form["urls"] == notice.urls
    assert {f["label"]: f["value"] for f in form["fields"]} == notice.form
    rows = list(csv.DictReader(form_csv.open(newline="")))
    # A spreadsheet would run "+1 555 0100" as a formula: the CSV quotes it with an apostrophe.
    assert {r["label"]: r["value"] for r in rows} == {
        **notice.form,
        "Phone number": "'+1 555 0100",
    }


def test_write_notice_into_a_file_is_one_error(
    crown_notice: tuple[Notice, list[Match]], settings: Settings, tmp_path: Path
) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    with pytest.raises(InputError, match="cannot write the notice"):
        write_notice(crown_notice[0], blocker, templates_dir=settings.notice_templates_dir)
