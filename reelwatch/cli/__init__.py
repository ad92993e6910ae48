"""The ``reelwatch`` command line: the product's face.

Expected errors (``ReelwatchError``) print one line on stderr and exit 1; anything else is a
bug and shows its traceback.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from reelwatch import redact
from reelwatch.errors import ReelwatchError
from reelwatch.settings import Settings, load_settings

app = typer.Typer(
    name="reelwatch",
    help="Find social videos that reuse your studio's IP: crawl, fingerprint, match, triage.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(markup=False, highlight=False, width=None if sys.stdout.isatty() else 160)
"""Markup is off: captions, handles and titles come from strangers and print as text."""
err_console = Console(stderr=True, markup=False, highlight=False)


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
    import reelwatch.cli.browser as browser
    import reelwatch.cli.posts as posts
    import reelwatch.cli.verify as verify
    from reelwatch.cli import board, catalog, crawling, demo, es, evaluate, kibana, matching, ops

    app.add_typer(catalog.app, name="catalog")
    app.add_typer(matching.matches_app, name="matches")
    app.add_typer(ops.watch_app, name="watch")
    app.add_typer(posts.posts_app, name="posts")
    app.add_typer(kibana.kibana_app, name="kibana")
    app.add_typer(es.es_app, name="es")
    app.add_typer(browser.browser_app, name="browser")
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
    try:
        app()
    except ReelwatchError as exc:
        message = redact.redact_text(" ".join(str(exc).split())) or type(exc).__name__
        print(f"reelwatch: error: {message}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
