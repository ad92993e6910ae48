"""Takedown notices: drafted from templates in ``config/notices/``, marked sent by a reviewer.

A notice goes to one platform about one account's copies of one title, so
:func:`draft_notices` groups the matches it is given by (platform, account, title) and drafts
one notice per group, listing every URL. The letter (``dmca.txt.j2``) carries every element
17 U.S.C. 512(c)(3)(A) asks of a notification: (i) a signature line the reviewer completes,
(ii) the copyrighted work, (iii) the infringing material with each URL and what matched in it,
(iv) the sender's contact details, (v) the good-faith statement and (vi) the accuracy
statement with authority to act, under penalty of perjury. Each platform's YAML
(``tiktok.yaml``...) names its copyright report form and that form's fields, whose values are
filled in from the same data, so a reviewer can paste them in.

Drafting never sends anything. A reviewer submits the letter or the form, then marks the
notice sent (:func:`mark_sent`), which moves its matches to ``notice_sent`` and starts the
re-checks of their posts.

Handles, captions and URLs come from strangers: before they reach a notice, control
characters and bidi overrides are removed, line breaks folded and lengths bounded
(:func:`clean_text`), so a caption cannot add lines to a legal letter or reorder its text.
The HTML version is autoescaped; the CSV's cells cannot start a spreadsheet formula.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape
from pydantic import BaseModel, Field, ValidationError

from reelwatch.errors import InputError
from reelwatch.models import Match, Notice, NoticeStatus, Segment, TriageStatus, slugify, utcnow
from reelwatch.settings import Settings, load_settings
from triage.cells import spreadsheet_cell
from triage.stores.base import Store, apply_status, as_utc

# Stranger text --------------------------------------------------------------------------------

MAX_HANDLE = 100
MAX_CAPTION = 300
MAX_NAME = 200
"""Titles, asset names, matcher notes."""
MAX_URL = 2048
MAX_REFERENCE = 200
MAX_SEGMENTS = 6
"""Matched stretches listed per URL; the rest are counted."""

_REMOVED = re.compile("[\u061c\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
"""Bidi controls and invisible marks: dropped (they reorder or hide text)."""
_SPACED = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""Control characters, line and paragraph separators: become a space."""


def clean_text(text: object, limit: int = MAX_NAME) -> str:
    """``text`` as a notice may quote it: bidi overrides and invisible marks removed, control
    characters and line breaks turned to spaces, runs of whitespace folded, and cut to
    ``limit`` characters (an ellipsis says it was cut)."""
    folded = " ".join(_SPACED.sub(" ", _REMOVED.sub("", str(text))).split())
    if len(folded) > limit:
        folded = folded[: limit - 1].rstrip() + "…"
    return folded


def clean_url(url: str) -> str:
    """A post URL as a notice lists it: :func:`clean_text` without spaces (a URL has none)."""
    return clean_text(url, MAX_URL).replace(" ", "%20")


# Settings --------------------------------------------------------------------------------------

CONTACT_FIELDS: dict[str, str] = {
    "contact_name": "CONTACT NAME",
    "company": "COMPANY",
    "address": "POSTAL ADDRESS",
    "phone": "PHONE",
    "email": "CONTACT EMAIL",
    "authority": "AUTHORITY TO ACT",
}
"""The ``settings.notices`` fields the DMCA elements need, with their placeholder words."""


def placeholder(field: str) -> str:
    """What a notice shows for an unset contact field: ``[CONTACT EMAIL — set notices.email]``."""
    return f"[{CONTACT_FIELDS[field]} — set notices.{field}]"


OWNER_PLACEHOLDER = "[RIGHTS OWNER — set notices.rights_owner or the title's owner in the catalog]"
SIGNATURE_LINE = "______________________________"
SIGNATURE_PROMPT = "[SIGNATURE — the person filing types their full name here]"
"""A form's signature field as drafted: reelwatch never signs for anyone."""


def missing_contact(settings: Settings) -> list[str]:
    """The ``notices.*`` settings the DMCA elements need that are empty (``notices.email``...);
    a notice drafted without them shows a visible placeholder in their place."""
    values = settings.notices.model_dump()
    return [f"notices.{f}" for f in CONTACT_FIELDS if not str(values.get(f) or "").strip()]


GOOD_FAITH = (
    "I have a good faith belief that use of the material in the manner complained of is not "
    "authorized by the copyright owner, its agent, or the law."
)
"""17 U.S.C. 512(c)(3)(A)(v), in the words platforms' forms use."""
ACCURACY = (
    "The information in this notification is accurate, and under penalty of perjury, I am "
    "authorized to act on behalf of the owner of an exclusive right that is allegedly infringed."
)
"""17 U.S.C. 512(c)(3)(A)(vi)."""


# Platform forms --------------------------------------------------------------------------------


class FormField(BaseModel):
    label: str
    """The field as the platform's form words it."""
    value: str
    """A Jinja template filled in from the notice (see :func:`_context` for the names)."""
    kind: str = "text"
    """``text``, ``textarea``, ``choice``, ``checkbox`` or ``file``: how the form takes it."""
    help: str = ""


class PlatformForm(BaseModel):
    """One ``config/notices/<platform>.yaml``: where the platform takes copyright reports."""

    platform: str
    name: str
    form_name: str = ""
    form_url: str = ""
    recipient: str
    """Who the letter is addressed to (the copyright team through its form, or the
    designated agent)."""
    letter: str = "dmca"
    """The letter templates: ``<letter>.txt.j2`` and ``<letter>.html.j2``."""
    imitates: str | None = None
    """Another platform whose form this one uses (the replica imitates TikTok)."""
    note: str = ""
    sources: list[str] = Field(default_factory=list)
    """Where the form and its fields were read from."""
    fields: list[FormField] = Field(default_factory=list)


GENERIC = "generic"


def load_form(settings: Settings, platform: str) -> PlatformForm:
    """The form spec for ``platform`` from the templates folder: ``<platform>.yaml``, or
    ``generic.yaml`` (the designated agent) for a platform without one. A spec that
    ``imitates`` another takes that one's form, keeping its own name, recipient and note."""
    folder = settings.notice_templates_dir
    path = folder / f"{slugify(platform)}.yaml"
    if not path.is_file():
        path = folder / f"{GENERIC}.yaml"
    spec = _read_form(path)
    if spec.imitates:
        base = _read_form(folder / f"{slugify(spec.imitates)}.yaml")
        own = spec.model_dump(exclude_unset=True, exclude={"fields", "imitates", "platform"})
        spec = base.model_copy(update={**own, "platform": spec.platform, "imitates": spec.imitates})
        if not spec.fields:
            raise InputError(f"{path}: imitates {spec.imitates!r}, which names no form fields")
    return spec


def _read_form(path: Path) -> PlatformForm:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such notice template (see config/notices/)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read it: {exc}") from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{path}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of platform, name, recipient, fields")
    try:
        return PlatformForm.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(f"{path}: {where}: {first['msg']}") from None


# Templates -------------------------------------------------------------------------------------


def _environment(folder: Path, *, html: bool) -> jinja2.Environment:
    """Templates are config, the values strangers': a sandbox and StrictUndefined (a name the
    template misspells is an error, not a blank in a legal letter); only HTML autoescapes."""
    env = SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(folder),
        undefined=jinja2.StrictUndefined,
        autoescape=html,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["linkify"] = linkify
    return env


def _render(what: str, render: Callable[[], str]) -> str:
    try:
        return render()
    except jinja2.TemplateNotFound as exc:
        raise InputError(f"{what}: no template {exc.name!r} (see config/notices/)") from None
    except jinja2.TemplateError as exc:
        line = getattr(exc, "lineno", None)
        at = f", line {line}" if line else ""
        raise InputError(f"{what}{at}: {type(exc).__name__}: {exc}") from None


_URL = re.compile(r"https?://[^\s<>\"']+")
_PLACEHOLDER = re.compile(r"\[[A-Z][A-Z ']+ — [^\]]+\]")


def linkify(text: object) -> Markup:
    """Escaped ``text`` with its http(s) URLs as links and its unset-setting placeholders
    marked (a Jinja filter of the HTML notice); any other scheme stays plain text."""
    out: list[str] = []
    raw = str(text)
    pos = 0
    for m in re.finditer(f"{_URL.pattern}|{_PLACEHOLDER.pattern}", raw):
        out.append(str(escape(raw[pos : m.start()])))
        token = m.group()
        if token.startswith("["):
            out.append(f'<mark class="placeholder">{escape(token)}</mark>')
        else:
            out.append(f'<a href="{escape(token)}">{escape(token)}</a>')
        pos = m.end()
    out.append(str(escape(raw[pos:])))
    return Markup("".join(out))


# Drafting --------------------------------------------------------------------------------------

DRAFTS_FROM = (TriageStatus.NEW, TriageStatus.CONFIRMED)
"""Matches that drafting moves to ``notice_drafted``; others keep their status."""
SENDS_FROM = (
    TriageStatus.NEW,
    TriageStatus.CONFIRMED,
    TriageStatus.NOTICE_DRAFTED,
    TriageStatus.REJECTED,
    TriageStatus.REINSTATED,
)
"""Matches that marking a notice sent moves to ``notice_sent``. A removed post stays removed,
one already under another sent notice keeps that notice's time, a dismissed one stays
dismissed."""


def new_notice_id(platform: str, when: datetime) -> str:
    """``n-20250301-tiktok-1f2e3d4c``: sortable, readable, safe as a folder name."""
    return f"n-{when:%Y%m%d}-{slugify(platform)[:24]}-{secrets.token_hex(4)}"


def draft_notices(
    settings: Settings,
    store: Store,
    match_ids: list[str],
    *,
    platform: str | None = None,
    actor: str = "",
) -> list[Notice]:
    """Draft one notice per (platform, account, title) among ``match_ids``, listing every URL
    of that group, store it, and record it on its matches: ``new`` and ``confirmed`` ones move
    to ``notice_drafted``; those further along keep their status and only point at the notice.

    A group that already has a drafted (unsent) notice gets that notice redrafted with the new
    URLs added, rather than a second notice. An unknown id, a dismissed match or one on
    another platform than ``platform`` -> :class:`InputError`, and nothing is drafted.
    Nothing is sent.
    """
    ids = list(dict.fromkeys(i.strip() for i in match_ids if i.strip()))
    if not ids:
        raise InputError("no match ids given")
    matches: list[Match] = []
    for mid in ids:
        m = store.get_match(mid)
        if m is None:
            raise InputError(f"unknown match {mid!r}")
        if m.status == TriageStatus.DISMISSED:
            raise InputError(f"match {mid!r} is dismissed; set another status before a notice")
        if platform is not None and m.platform != platform:
            raise InputError(f"match {mid!r} is on {m.platform}, not {platform}")
        matches.append(m)
    groups: dict[tuple[str, str, str], list[Match]] = {}
    for m in matches:
        groups.setdefault((m.platform, m.account, m.title_id), []).append(m)

    now = utcnow()
    work_of = _WorkLookup(settings)
    drafts: list[Notice] = []
    for (plat, account, title_id), group in groups.items():
        previous = _open_draft(store, plat, account, title_id)
        if previous is not None:
            group = _with_previous(store, previous, group)
        notice = Notice(
            id=previous.id if previous else new_notice_id(plat, now),
            platform=plat,
            account=account,
            title_id=title_id,
            title=group[0].title,
            match_ids=[m.id for m in group],
            urls=[m.post_url for m in group],
            created_at=previous.created_at if previous else now,
            created_by=previous.created_by if previous else actor,
        )
        drafts.append(_fill(settings, notice, group, work_of, now))

    for notice in drafts:
        store.upsert_notice(notice)
        for mid in notice.match_ids:
            store.update_match(mid, _drafted(notice.id, actor, now))
    return drafts


def _with_previous(store: Store, previous: Notice, group: list[Match]) -> list[Match]:
    """The matches of a redrafted notice: those it named before (in their order, less any
    dismissed or deleted since), then the new ones."""
    given = {m.id: m for m in group}
    out = []
    for mid in previous.match_ids:
        m = given.pop(mid, None) or store.get_match(mid)
        if m is not None and m.status != TriageStatus.DISMISSED:
            out.append(m)
    return out + list(given.values())


def _open_draft(store: Store, platform: str, account: str, title_id: str) -> Notice | None:
    found = store.list_notices(status=NoticeStatus.DRAFTED, platform=platform, account=account)
    return next((n for n in found if n.title_id == title_id), None)


def _drafted(notice_id: str, actor: str, when: datetime) -> Callable[[Match], object]:
    def change(m: Match) -> None:
        if m.status == TriageStatus.DISMISSED:
            return  # dismissed by someone else since it was read: left as they decided
        if m.status in DRAFTS_FROM:
            apply_status(
                m,
                TriageStatus.NOTICE_DRAFTED,
                note=f"notice {notice_id} drafted",
                actor=actor,
                at=when,
                notice_id=notice_id,
            )
        else:
            m.enforcement.notice_id = notice_id

    return change


def _fill(
    settings: Settings, notice: Notice, matches: list[Match], work_of: _WorkLookup, now: datetime
) -> Notice:
    """``notice`` with its letter, subject and form fields rendered from the templates."""
    form = load_form(settings, notice.platform)
    context = _context(settings, notice, matches, form, work_of, now)
    folder = settings.notice_templates_dir
    text_env = _environment(folder, html=False)
    letter = f"{form.letter}.txt.j2"
    text = _render(str(folder / letter), lambda: text_env.get_template(letter).render(context))
    fields: dict[str, str] = {}
    for field in form.fields:
        where = f"{folder / (form.imitates or form.platform)}.yaml field {field.label!r}"
        fields[field.label] = _render(
            where, partial(_render_string, text_env, field.value, context)
        )
    return notice.model_copy(
        update={
            "template": letter,
            "subject": context["subject"],
            "text": text,
            "form_url": form.form_url,
            "form": fields,
        }
    )


def _render_string(env: jinja2.Environment, source: str, context: dict[str, Any]) -> str:
    return env.from_string(source).render(context).strip()


def _context(
    settings: Settings,
    notice: Notice,
    matches: list[Match],
    form: PlatformForm,
    work_of: _WorkLookup,
    now: datetime,
) -> dict[str, Any]:
    """What templates see: ``notice``, ``platform`` (the YAML), ``work``, ``items`` (one per
    URL), ``urls``/``urls_text``, ``evidence_text``, ``sender``, ``statements``, ``subject``,
    ``date``, ``count``. Every stranger's string in it is already cleaned."""
    s = settings.notices
    sender: dict[str, Any] = {}
    for f in CONTACT_FIELDS:
        value = clean_text(getattr(s, f), MAX_NAME * 2)
        sender[f] = value or placeholder(f)
    sender["name"] = sender["contact_name"]
    sender["missing"] = missing_contact(settings)
    work = work_of(notice.title_id, notice.title, matches)
    items = [_item(i, m, work_of) for i, m in enumerate(matches, 1)]
    account = clean_text(notice.account, MAX_HANDLE)
    handle = f"@{account.lstrip('@')}" if account else "(account not known)"
    urls = [it["url"] for it in items]
    count = f"{len(urls)} post{'s' if len(urls) != 1 else ''}"
    subject = (
        f"DMCA takedown notice: {work['title']} on {form.name}, {handle} ({count}) [{notice.id}]"
    )
    return {
        "notice": {
            "id": notice.id,
            "platform": notice.platform,
            "account": account,
            "handle": handle,
            "title_id": clean_text(notice.title_id, MAX_NAME),
            "created_by": clean_text(notice.created_by, MAX_NAME),
        },
        "platform": form.model_dump(),
        "work": work,
        "items": items,
        "urls": urls,
        "urls_text": "\n".join(urls),
        "evidence_text": "\n".join(f"{it['url']} — {it['summary']}" for it in items),
        "count": count,
        "sender": sender,
        "statements": {"good_faith": GOOD_FAITH, "accuracy": ACCURACY},
        "signature_line": SIGNATURE_LINE,
        "signature_prompt": SIGNATURE_PROMPT,
        "subject": subject,
        "date": f"{now:%d %B %Y}",
    }


def _item(n: int, m: Match, work_of: _WorkLookup) -> dict[str, Any]:
    segments = [_segment_line(s, work_of.asset_names) for s in m.segments[:MAX_SEGMENTS]]
    if len(m.segments) > MAX_SEGMENTS:
        segments.append(f"and {len(m.segments) - MAX_SEGMENTS} more matched stretches")
    signals = ", ".join(f"{clean_text(k, 40)} {v:.2f}" for k, v in m.signals.items())
    summary = f"score {m.score:.2f} ({m.confidence.value})" + (f"; {signals}" if signals else "")
    first_seen = f"{as_utc(m.created_at):%Y-%m-%d %H:%M} UTC"
    return {
        "n": n,
        "url": clean_url(m.post_url),
        "match_id": clean_text(m.id, MAX_URL),
        "account": clean_text(m.account, MAX_HANDLE),
        "caption": clean_text(m.caption, MAX_CAPTION),
        "score": f"{m.score:.2f}",
        "confidence": m.confidence.value,
        "signals": signals,
        "summary": summary,
        "segments": segments,
        "first_seen": first_seen,
        "views": m.views,
        "detected": first_seen + (f"; play count then: {m.views}" if m.views is not None else ""),
        "ai": clean_text("; ".join(m.ai.reasons), MAX_NAME) if m.ai.is_ai else "",
    }


def _segment_line(s: Segment, asset_names: dict[str, str]) -> str:
    signal = clean_text(s.signal, 40)
    if not s.timed:
        return f"{signal}: {clean_text(s.note or 'the post text names the title', MAX_NAME)}"
    ref = clean_text(asset_names.get(s.ref_asset, s.ref_asset), MAX_NAME)
    who = f" [{clean_text(s.talent, MAX_NAME)}]" if s.talent else ""
    return (
        f"{signal}: {s.query_start:.1f}–{s.query_end:.1f} s of the post matches "
        f"{ref} {s.ref_start:.1f}–{s.ref_end:.1f} s{who} (score {s.score:.2f})"
    )


class _WorkLookup:
    """The copyrighted work as the matches recorded it when they were made (the catalog's
    owner, description and the reference assets they matched: :class:`WorkRef`), so a
    notice needs no catalog; ``notices.rights_owner`` wins over the recorded owner."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.asset_names: dict[str, str] = {}

    def __call__(self, title_id: str, title: str, matches: Iterable[Match]) -> dict[str, Any]:
        matches = list(matches)
        works = [m.work for m in matches if m.work is not None]
        owner = self.settings.notices.rights_owner or next((w.owner for w in works if w.owner), "")
        description = next((w.description for w in works if w.description), "")
        assets = {a.id: a for w in works for a in w.assets}
        used = {s.ref_asset for m in matches for s in m.segments if s.timed}
        lines = []
        for a in sorted(assets.values(), key=lambda a: a.id):
            name = clean_text(a.name or a.id, MAX_NAME)
            self.asset_names[a.id] = name
            length = f", {a.duration:.0f} s" if a.duration else ""
            lines.append(f"{name} ({a.kind.value}{length}; sha256 {a.sha256})")
        lines += [clean_text(a, MAX_NAME) for a in sorted(used - assets.keys())]
        return {
            "title": clean_text(title, MAX_NAME),
            "title_id": clean_text(title_id, MAX_NAME),
            "owner": clean_text(owner, MAX_NAME) or OWNER_PLACEHOLDER,
            "owner_set": bool(owner.strip()),
            "description": clean_text(description, MAX_CAPTION * 2),
            "assets": lines,
            "assets_text": "\n".join(lines),
        }


def get_notice(store: Store, notice_id: str) -> Notice:
    notice = store.get_notice(notice_id)
    if notice is None:
        raise InputError(f"unknown notice {notice_id!r}")
    return notice


def mark_sent(
    settings: Settings,
    store: Store,
    notice_id: str,
    *,
    actor: str = "",
    reference: str = "",
    at: datetime | None = None,
) -> Notice:
    """Record that a reviewer sent the notice (``reference``: the platform's case number):
    the notice becomes ``sent`` and its matches ``notice_sent`` as of ``at``, so their posts'
    re-checks start (see :data:`SENDS_FROM` for which matches move). Marking a sent notice
    sent again changes nothing; a withdrawn one -> :class:`InputError`."""
    notice = get_notice(store, notice_id)
    if notice.status == NoticeStatus.SENT:
        return notice
    if notice.status == NoticeStatus.WITHDRAWN:
        raise InputError(f"notice {notice_id} was withdrawn; draft a new one")
    when = as_utc(at) if at is not None else utcnow()
    ref = clean_text(reference, MAX_REFERENCE)
    note = f"notice {notice.id} sent" + (f" (reference {ref})" if ref else "")

    def change(m: Match) -> None:
        if m.status in SENDS_FROM:
            apply_status(
                m, TriageStatus.NOTICE_SENT, note=note, actor=actor, at=when, notice_id=notice.id
            )

    # Matches first: should this stop half way, the notice is still a draft and marking it
    # sent again finishes the job.
    _each_match(store, notice, change)
    sent = notice.model_copy(
        update={
            "status": NoticeStatus.SENT,
            "sent_at": when,
            "sent_by": actor,
            "reference": ref,
        }
    )
    store.upsert_notice(sent)
    return sent


def withdraw_notice(settings: Settings, store: Store, notice_id: str, *, actor: str = "") -> Notice:
    """Withdraw a notice: it is kept, as ``withdrawn``, and its matches that it had moved
    (``notice_drafted`` or ``notice_sent`` under this notice) go back to ``confirmed``,
    which stops their re-checks. Withdrawing a withdrawn notice changes nothing."""
    notice = get_notice(store, notice_id)
    if notice.status == NoticeStatus.WITHDRAWN:
        return notice
    when = utcnow()

    def change(m: Match) -> None:
        if m.enforcement.notice_id != notice.id:
            return  # a later notice names it now
        if m.status in (TriageStatus.NOTICE_DRAFTED, TriageStatus.NOTICE_SENT):
            apply_status(
                m,
                TriageStatus.CONFIRMED,
                note=f"notice {notice.id} withdrawn",
                actor=actor,
                at=when,
            )
        m.enforcement.notice_id = None

    _each_match(store, notice, change)
    withdrawn = notice.model_copy(update={"status": NoticeStatus.WITHDRAWN})
    store.upsert_notice(withdrawn)
    return withdrawn


def _each_match(store: Store, notice: Notice, change: Callable[[Match], object]) -> None:
    for mid in notice.match_ids:
        if store.get_match(mid) is not None:  # a match deleted since is no longer tracked
            store.update_match(mid, change)


# Files -----------------------------------------------------------------------------------------

NOTICE_FILES = ("notice.txt", "notice.html", "form.json", "form.csv")


def write_notice(notice: Notice, out_dir: Path, *, templates_dir: Path | None = None) -> list[Path]:
    """Write ``notice.txt`` (the letter as drafted), ``notice.html`` (the same letter to print
    or save as PDF, with the form's fields), ``form.json`` and ``form.csv`` (the platform
    form's fields, label and value) into ``out_dir``; the paths written.

    The HTML comes from ``<letter>.html.j2`` in ``templates_dir`` (default: the settings'
    ``notice_templates_dir``)."""
    folder = templates_dir or load_settings().notice_templates_dir
    letter = notice.template or "dmca.txt.j2"
    html_name = letter.removesuffix(".txt.j2") + ".html.j2"
    env = _environment(folder, html=True)
    fields = [{"label": k, "value": v} for k, v in notice.form.items()]
    paragraphs = [p.split("\n") for p in re.split(r"\n\s*\n", notice.text.strip("\n")) if p]
    html = _render(
        str(folder / html_name),
        lambda: env.get_template(html_name).render(
            notice=notice, paragraphs=paragraphs, fields=fields
        ),
    )
    form = {
        "notice_id": notice.id,
        "platform": notice.platform,
        "account": clean_text(notice.account, MAX_HANDLE),
        "title": clean_text(notice.title, MAX_NAME),
        "status": notice.status.value,
        "form_url": notice.form_url,
        "urls": [clean_url(u) for u in notice.urls],
        "fields": fields,
    }
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        written = [
            _write(out_dir / "notice.txt", notice.text),
            _write(out_dir / "notice.html", html),
            _write(out_dir / "form.json", json.dumps(form, indent=2, ensure_ascii=False) + "\n"),
            _write(out_dir / "form.csv", _csv(fields)),
        ]
    except OSError as exc:
        raise InputError(f"{out_dir}: cannot write the notice: {exc.strerror or exc}") from None
    return written


def _csv(fields: list[dict[str, str]]) -> str:
    """Label and value per row; a cell a spreadsheet would run as a formula starts with an
    apostrophe instead."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(["label", "value"])
    for f in fields:
        writer.writerow([spreadsheet_cell(c) for c in f.values()])
    return buf.getvalue()


def _write(path: Path, text: str) -> Path:
    """Write whole or not at all: a reader never sees half a notice."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
