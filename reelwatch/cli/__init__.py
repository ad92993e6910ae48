"""The ``reelwatch`` command line: the product's face.

Expected errors (``ReelwatchError``) print one line on stderr and exit 1; anything else is a
bug and shows its traceback. Text from strangers (titles, names, captions, handles, URLs)
reaches the terminal only through :func:`terminal_safe`: every console here escapes control
characters (ANSI escapes, carriage returns) and bidi overrides, tables and error lines
escape newlines too, and an error line cuts an overlong word (a 200 KB URL) short.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text
from typer._click import exceptions as click  # Typer's own Click (vendored in Typer 0.2x)

from reelwatch import redact
from reelwatch.errors import ReelwatchError
from reelwatch.settings import Settings, load_settings

_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f"
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[{_CONTROLS}{_BIDI}]")
_UNSAFE_WITH_LINES = re.compile(f"[\n\t{_CONTROLS}{_BIDI}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    c = match.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def terminal_safe(text: Any, *, keep_newlines: bool = False) -> str:
    """``text`` as a terminal may show it: control characters (ANSI escape sequences,
    carriage returns, backspaces), newlines and tabs unless ``keep_newlines``, and the
    Unicode bidi controls that reorder what follows (RLO, LRI, RLM...) are written as
    escapes (``\\x1b``, ``\\n``, ``\\u202e``), so a caption or a title cannot rewrite the
    screen, fake a line or turn a URL around."""
    pattern = _UNSAFE if keep_newlines else _UNSAFE_WITH_LINES
    return pattern.sub(_escape, str(text))


MAX_ERROR_WORD = 160
"""Longest word (a URL, a file name) an error line shows whole."""
MAX_ERROR_LINE = 1000


def error_line(exc: BaseException) -> str:
    """The one line ``reelwatch: error: ...`` says for ``exc``: secrets masked, whitespace
    folded, stranger text escaped, overlong words and lines cut with how much was left out."""
    words = []
    for word in redact.redact_text(str(exc)).split():
        if len(word) > MAX_ERROR_WORD:
            cut = len(word) - MAX_ERROR_WORD + 40
            word = f"{word[:100]}…[{cut} characters]…{word[-20:]}"
        words.append(word)
    line = terminal_safe(" ".join(words)) or type(exc).__name__
    if len(line) > MAX_ERROR_LINE:
        line = f"{line[: MAX_ERROR_LINE - 40]}… [{len(line) - MAX_ERROR_LINE + 40} more characters]"
    return f"reelwatch: error: {line}"


class SafeConsole(Console):
    """A console that escapes control characters and bidi overrides in every string it
    renders (printed text and table cells alike); newlines stay, for our own lines."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(terminal_safe(text, keep_newlines=True), **kwargs)


app = typer.Typer(
    name="reelwatch",
    help="Find social videos that reuse your studio's IP: crawl, fingerprint, match, triage.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = SafeConsole(markup=False, highlight=False, width=None if sys.stdout.isatty() else 160)
"""Markup is off: captions, handles and titles come from strangers and print as text."""
err_console = SafeConsole(stderr=True, markup=False, highlight=False)


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(help="Data home (default $REELWATCH_HOME or ~/.local/share/reelwatch)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        for noisy in ("scrapy", "celery", "twisted", "faiss", "matplotlib"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        # The Elasticsearch transport logs every retry with a traceback; our errors say enough.
        logging.getLogger("elastic_transport").setLevel(logging.ERROR)
    ctx.obj = load_settings(home=home)
    # Every log record is masked of the settings' secrets and URL passwords from here on.
    redact.install(ctx.obj)


def settings_of(ctx: typer.Context) -> Settings:
    settings = ctx.obj
    if not isinstance(settings, Settings):
        settings = load_settings()
        ctx.obj = settings
    return settings


def _register() -> None:
    import reelwatch.cli.accounts as accounts
    import reelwatch.cli.browser as browser
    import reelwatch.cli.evidence as evidence
    import reelwatch.cli.notices as notices
    import reelwatch.cli.posts as posts
    import reelwatch.cli.removals as removals
    import reelwatch.cli.report as report
    import reelwatch.cli.verify as verify
    from reelwatch.cli import board, catalog, crawling, demo, es, evaluate, kibana, matching, ops

    app.add_typer(catalog.app, name="catalog")
    app.add_typer(matching.matches_app, name="matches")
    app.add_typer(ops.watch_app, name="watch")
    app.add_typer(posts.posts_app, name="posts")
    app.add_typer(kibana.kibana_app, name="kibana")
    app.add_typer(es.es_app, name="es")
    app.add_typer(browser.browser_app, name="browser")
    app.add_typer(evidence.evidence_app, name="evidence")
    app.add_typer(notices.notice_app, name="notice")
    app.add_typer(removals.removals_app, name="removals")
    app.add_typer(accounts.accounts_app, name="accounts")
    app.command("report")(report.report)
    app.command("match")(matching.match)
    app.add_typer(crawling.sources_app, name="sources")
    app.command("crawl")(crawling.crawl)
    app.command("worker")(ops.worker)
    app.command("beat")(ops.beat)
    app.command("demo")(demo.demo)
    app.command("board")(board.board)
    app.command("eval")(evaluate.evaluate)
    app.command("verify")(verify.verify)


_register()


def main() -> None:
    """The console entry point. Click's own errors (a bad option value, an unknown command)
    are one line too, exiting 2 as Click does; help and ``typer.Exit`` work as ever."""
    try:
        code = app(standalone_mode=False)
    except click.NoArgsIsHelpError as exc:  # bare ``reelwatch``: the help
        exc.show()
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        where = f"{ctx.command_path}: " if ctx is not None else ""
        hint = " (see --help)" if isinstance(exc, click.UsageError) else ""
        print(f"{error_line(_Said(where + exc.format_message()))}{hint}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except ReelwatchError as exc:
        print(error_line(exc), file=sys.stderr)
        sys.exit(1)
    except (KeyboardInterrupt, typer.Abort):
        err_console.print("interrupted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


class _Said(Exception):
    """A message to print as an error line."""
