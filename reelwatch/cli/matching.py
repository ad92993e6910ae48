"""``reelwatch match`` (score media now) and ``reelwatch matches`` (what landed for triage)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from reelwatch.cli import console, error_line, settings_of, terminal_safe
from reelwatch.errors import InputError, ReelwatchError
from reelwatch.models import Confidence, Match, Media, TriageStatus, utcnow
from reelwatch.settings import Settings

matches_app = typer.Typer(help="Matches landed for triage.", no_args_is_help=True)


def _resolve_input(settings: Settings, item: str) -> Path:
    if item.startswith(("http://", "https://")):
        from workers.download import download

        return download(settings, item).path
    path = Path(item)
    try:
        if path.is_dir():
            raise InputError(f"{item}: is a directory, not a media file")
        path.stat()
    except FileNotFoundError:
        raise InputError(f"{item}: no such file") from None
    except OSError as exc:  # a name too long, a folder that cannot be read...
        raise InputError(f"{item}: {exc.strerror or exc}") from None
    return path


def match(
    ctx: typer.Context,
    inputs: Annotated[list[str], typer.Argument(help="Media files or video URLs.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per input.")] = False,
    caption: Annotated[
        str, typer.Option(help="The post's caption, for the text signal and AI flags.")
    ] = "",
    hashtag: Annotated[
        list[str] | None, typer.Option(help="A hashtag of the post (repeatable).")
    ] = None,
    ai_label: Annotated[
        str | None, typer.Option(help="The platform's AI-generated label, if it shows one.")
    ] = None,
) -> None:
    """Score media against the catalog: every title with any evidence, best first.

    Each match lists its per-signal scores and segments (query and reference times, the
    audio offset, the talent a face belongs to) and the post's AI flags."""
    from matcher.engine import Matcher, QueryContext

    settings = settings_of(ctx)
    settings.ensure_home()
    matcher = Matcher(settings)
    context = QueryContext(
        caption=caption,
        hashtags=tuple(hashtag or ()),
        ai_label=ai_label,
        is_ai_labelled=ai_label is not None,
    )
    failures = 0
    for item in inputs:
        try:
            path = _resolve_input(settings, item)
            report = matcher.match_file(path, context=context)
            report.media = _read_from(report.media, item, path)
        except ReelwatchError as exc:
            failures += 1
            print(error_line(exc), file=sys.stderr)
            continue
        data: dict[str, Any] = report.to_json()
        data["input"] = item
        if as_json:
            typer.echo(json.dumps(data))
            continue
        _print_report(item, report)
    if failures:
        raise typer.Exit(1)


def _read_from(media: Media, item: str, path: Path) -> Media:
    """The report's media with where it was read from (the URL given, or the local file as a
    ``file://`` URL) and when, as ``match --json`` shows them."""
    is_url = item.startswith(("http://", "https://"))
    source = item if is_url else path.resolve().as_uri()
    return media.model_copy(update={"source_url": source, "captured_at": utcnow()})


def media_size(media: Any) -> str:
    """A media file's picture size as lists show it: ``1280x720``, or ``audio only``."""
    if media.width and media.height:
        return f"{media.width}x{media.height}"
    return "audio only" if media.audio_codec else "no picture"


def _print_report(item: str, report: Any) -> None:
    safe = terminal_safe
    console.print(
        f"{safe(item)}  sha256 {report.media.sha256[:12]}  "
        f"{report.media.duration or 0:.1f}s {media_size(report.media)}"
    )
    if report.ai.is_ai:
        console.print("  AI-generated: " + safe("; ".join(report.ai.reasons)))
    if not report.matches:
        console.print("  no match")
    for m in report.matches:
        signals = ", ".join(f"{k} {v:.2f}" for k, v in m.signals.items())
        console.print(
            f"  {safe(m.title)} ({safe(m.title_id)}): score {m.score:.2f}"
            f" [{m.confidence.value}]  {signals}"
        )
        for note in m.notes:
            console.print(f"    ! {safe(note)}")
        for s in m.segments:
            where = f"query {s.query_start:.1f}-{s.query_end:.1f}s" if s.timed else "caption"
            if s.ref_asset.startswith("title:"):
                ref = ""
            else:
                ref = f" ~ {s.ref_asset} {s.ref_start:.1f}-{s.ref_end:.1f}s"
            who = f" [{safe(s.talent)}]" if s.talent else ""
            note = f"  ({safe(s.note)})" if s.note else ""
            console.print(f"    {s.signal}: {where}{ref}{who}{note}")
    if report.signals_off:
        off = "; ".join(f"{k}: {v}" for k, v in report.signals_off.items())
        console.print(f"  signals off: {off}")


def _match_row(m: Match) -> dict[str, Any]:
    d = m.model_dump(mode="json")
    d["id"] = m.id
    return d


@matches_app.command("list")
def list_matches(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
    status: Annotated[TriageStatus | None, typer.Option(help="Only this triage status.")] = None,
    min_confidence: Annotated[
        Confidence | None, typer.Option(help="Only this tier or better.")
    ] = None,
    title: Annotated[str | None, typer.Option(help="Only this title id.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many.")] = None,
) -> None:
    """List landed matches, best first."""
    from triage.stores import open_store

    with open_store(settings_of(ctx)) as store:
        found = store.list_matches(
            status=status, min_confidence=min_confidence, title_id=title, limit=limit
        )
    if as_json:
        typer.echo(json.dumps([_match_row(m) for m in found], indent=2))
        return
    if not found:
        console.print("no matches")
        return
    table = Table("title", "platform", "account", "score", "tier", "status", "post")
    table.add_column("id (for evidence export, notice draft)", overflow="fold")
    for m in found:
        table.add_row(
            terminal_safe(m.title),
            m.platform,
            terminal_safe(f"@{m.account}"),
            f"{m.score:.2f}",
            m.confidence.value,
            m.status.value,
            terminal_safe(m.post_url),
            terminal_safe(m.id),
        )
    console.print(table)


@matches_app.command("set-status")
def set_status(
    ctx: typer.Context,
    match_id: Annotated[str, typer.Argument(help="Match id (platform:post_id:title_id).")],
    status: Annotated[TriageStatus, typer.Argument(help="New triage status.")],
    note: Annotated[str, typer.Option(help="Why.")] = "",
    actor: Annotated[str, typer.Option(help="Who decided.")] = "cli",
) -> None:
    """Record a triage decision on a match (kept in its history).

    When it brings the match's account to ledger.alert_threshold confirmed matches in the
    window, the repeat-infringer alert goes out (once per crossing)."""
    from triage.ledger import after_status_change
    from triage.stores import open_store

    settings = settings_of(ctx)
    with open_store(settings) as store:
        m = store.set_status(match_id, status, note=note, actor=actor)
        console.print(f"{terminal_safe(m.id)}: {m.status.value}")
        alert = after_status_change(settings, store, m)
    if alert is not None:
        state = alert.status.value + (f" ({alert.error})" if alert.error else "")
        console.print(
            terminal_safe(
                f"@{m.account.lstrip('@')} on {m.platform} crossed the repeat-infringer "
                f"threshold ({settings.ledger.alert_threshold} confirmed in "
                f"{settings.ledger.window_days:g} days): alert {state}"
            )
        )
