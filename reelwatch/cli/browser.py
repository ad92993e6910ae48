"""``reelwatch browser login PLATFORM``: log in once in a visible Chromium, keep the session.

Instagram and X list hashtags and searches only to a logged-in reader, and TikTok flags
anonymous sessions sooner. This opens the platform's login page in a real window; the user
logs in as usual (passwords, two-factor codes and challenges stay between them and the
platform), and once the platform's session cookie appears (or the user presses Enter) the
browser's storage state is saved with mode 0600 where the source reads it:
``crawl.sources.<name>.storage_state`` when set, else ``<home>/browser/<name>.json``, which
Instagram and X read without any setting. Crawls write the file back, so the session lives on
until the platform ends it; a crawl that meets a login wall says to run this again.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from reelwatch.cli import console, err_console, settings_of

browser_app = typer.Typer(
    help="Browser sessions for sources that need a login (Instagram, X, TikTok).",
    no_args_is_help=True,
)


def _wait_for_enter(done: threading.Event) -> None:
    """Set ``done`` when the user presses Enter (end of input is not Enter)."""
    try:
        line = sys.stdin.readline()
    except (OSError, ValueError):
        return
    if line:
        done.set()


@browser_app.command("login")
def login(
    ctx: typer.Context,
    platform: Annotated[str, typer.Argument(help="The source to log in to (instagram, x...).")],
    state: Annotated[
        Path | None,
        typer.Option(
            help="Storage-state file to write (default: the source's storage_state setting, "
            "else <home>/browser/<platform>.json)."
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the login before giving up.")
    ] = 600.0,
    headless: Annotated[
        bool,
        typer.Option(
            "--headless", help="No window (tests; a person cannot log in to a hidden browser)."
        ),
    ] = False,
    fill: Annotated[
        str | None,
        typer.Option(
            hidden=True, help="USER:PASSWORD typed into the login form (tests, on the replica)."
        ),
    ] = None,
) -> None:
    """Open PLATFORM's login page; once you are logged in, save the session for crawls."""
    from crawler.sources import get_source
    from crawler.sources.logged_in import log_in, login_target
    from reelwatch.errors import InputError

    settings = settings_of(ctx)
    source = get_source(platform)(settings)
    target = login_target(source)
    if state is not None:
        path = state.expanduser()
        automatic = target.automatic and path.resolve() == target.path.resolve()
        target = dataclasses.replace(target, path=path, automatic=automatic)
    credentials: tuple[str, str] | None = None
    if fill is not None:
        user, sep, password = fill.partition(":")
        if not sep or not user or not password:
            raise InputError("--fill takes USER:PASSWORD")
        credentials = (user, password)
    if timeout <= 0:
        raise InputError("--timeout must be a positive number of seconds")

    done = threading.Event()
    threading.Thread(target=_wait_for_enter, args=(done,), daemon=True).start()
    err_console.print(
        f"opening {target.url} in Chromium: log in to {source.name} there; this waits for "
        f"its {target.cookie} cookie (or press Enter once you are logged in), "
        f"at most {timeout:g} s"
    )
    outcome = log_in(
        source, target, headless=headless, timeout_s=timeout, done=done, fill=credentials
    )
    if not outcome.cookie_seen:
        err_console.print(
            f"warning: {source.name} set no {target.cookie} cookie; if the login did not "
            "finish, crawls will meet its login wall: run this again"
        )
    if outcome.path is None:
        console.print(f"logged in to {source.name} in the profile {source.config.profile_dir}")
        return
    console.print(f"saved the {source.name} session to {outcome.path} (mode 0600)")
    if target.automatic:
        console.print(f"{source.name} crawls use it from there; no setting needed")
    else:
        env = source.env_name("storage_state")
        console.print(f"for {source.name} crawls to use it, set {env}={outcome.path}")
