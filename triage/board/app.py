"""The board's FastAPI app: the queue, match pages, notices, accounts, reports, exports.

Pages are rendered on the server with Jinja2 (autoescape on: captions, handles, hashtags, notes
and even post ids come from strangers and always print as text). The only script is a static
file that seeks the clip and copies a notice's text; the Content-Security-Policy forbids any
other. Routes stay thin: packs, notices, the ledger and the accounting are the libraries'
(:mod:`triage.packs`, :mod:`triage.notices`, :mod:`triage.ledger`, :mod:`triage.accounting`).

Stored files reach the browser through three routes only: ``/evidence/...`` serves images under
``settings.evidence_dir`` (evidence paths in a Match are relative to ``settings.home``),
``/media/<sha256>`` serves ``settings.media_dir/<sha[:2]>/<sha>.<ext>`` and
``/thumbs/<sha256>.jpg`` a poster frame of such a file (:mod:`triage.board.files`). They resolve
the path and refuse anything outside their folder, so a crafted segment or URL cannot read
other files. An evidence pack is built for each download in a temporary folder.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

import anyio
import jinja2
from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, Form, Query, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from reelwatch.errors import InputError
from reelwatch.models import Match, NoticeStatus, Segment, TriageStatus, utcnow
from reelwatch.text import one_line
from triage.accounting import accounting_csv, human_duration, title_accounting
from triage.board.files import (
    IMAGE_SUFFIXES,
    PLACEHOLDER_URL,
    evidence_url,
    poster_for,
    thumbnail_url,
)
from triage.board.queries import (
    QueueFilters,
    csv_rows,
    facets,
    lifecycle,
    same_account_and_title,
    select_matches,
)
from triage.board.security import (
    BOARD_TOKEN_ENV,
    SESSION_COOKIE,
    Session,
    SessionSigner,
    bearer_token,
    board_token,
    host_without_port,
    is_loopback_host,
    safe_next,
    same_secret,
)
from triage.cells import matched_times
from triage.files import media_file, resolve_under
from triage.ledger import account_ledger, after_status_changes, ledger_of
from triage.ledger import account_matches as ledger_matches
from triage.notices import draft_notices, mark_sent, missing_contact, withdraw_notice
from triage.packs import export_pack, pack_name
from triage.stores import open_store
from triage.stores.base import Store, parse_enum
from workers.retry import (
    FailedFilter,
    parse_since,
    put_back,
    select_failed,
    settings_digest,
    stale,
    start_chains,
)

if TYPE_CHECKING:
    from reelwatch.settings import Settings

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
PER_PAGE = 50
MAX_NOTE_CHARS = 5000
MAX_REFERENCE_CHARS = 200
MAX_ACTOR_CHARS = 100
MAX_CAPTION_PREVIEW = 160

STATUS_ACTIONS: tuple[tuple[TriageStatus, str], ...] = (
    (TriageStatus.CONFIRMED, "Confirm"),
    (TriageStatus.DISMISSED, "Dismiss"),
    # For a notice sent outside reelwatch (a letter, a call): the re-checks start all the same.
    (TriageStatus.NOTICE_SENT, "Notice sent elsewhere"),
    (TriageStatus.REMOVED, "Removed"),
    (TriageStatus.REJECTED, "Rejected"),
    (TriageStatus.REINSTATED, "Reinstated"),
    (TriageStatus.NEW, "Reopen"),
)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'self'; "
        "script-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
"""Clicking through to a post must not tell the platform the board's address (no referrer)."""


class AnyTextConvertor(PathConvertor):
    """Like ``path``, but also across line breaks: ids are made of platform post ids, which are
    strangers' data, and a match must stay reachable whatever they contain."""

    regex = r"[\s\S]*"


register_url_convertor("anytext", AnyTextConvertor())


@dataclass
class BoardState:
    settings: Settings
    store: Store
    signer: SessionSigner
    token: str | None
    templates: Jinja2Templates


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["seconds"] = _seconds
    env.filters["duration"] = human_duration
    env.filters["percent"] = lambda v: "-" if v is None else f"{v:.1%}"
    env.filters["label"] = _label
    env.filters["web_url"] = _web_url
    env.filters["path_part"] = lambda v: quote(str(v), safe=":@")
    env.filters["preview"] = _preview
    env.globals["status_actions"] = STATUS_ACTIONS
    env.globals["statuses"] = [s.value for s in TriageStatus]
    env.globals["matched_times"] = matched_times
    return Jinja2Templates(env=env)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _label(value: Any) -> str:
    return str(getattr(value, "value", value)).replace("_", " ")


def _web_url(value: str | None) -> str | None:
    """``value`` if it is an http(s) URL fit for an ``href``, else None (shown as text)."""
    if not value:
        return None
    parts = urlsplit(value.strip())
    if parts.scheme in ("http", "https") and parts.netloc:
        return value.strip()
    return None


def _preview(value: str, limit: int = MAX_CAPTION_PREVIEW) -> str:
    return one_line(value, limit)


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    """The board over ``store`` (or the store the settings name, opened for the app's life).

    A store passed in belongs to the caller and is not closed by the app. The access token is
    read once here (:func:`~triage.board.security.board_token`).
    """
    owns_store = store is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_store:
            state.store.close()

    state = BoardState(
        settings=settings,
        store=store if store is not None else open_store(settings),
        signer=SessionSigner(),
        token=board_token(settings),
        templates=_templates(),
    )
    app = FastAPI(
        title="reelwatch board",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.board = state
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.middleware("http")(_guard)
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.include_router(_routes())
    return app


class ScratchFileResponse(FileResponse):
    """A file from a temporary folder, removed once the answer is over: sent whole, or cut
    short by a client that went away (a background task would not run then)."""

    def __init__(self, path: Path, *, scratch: Path, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.scratch = scratch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await anyio.to_thread.run_sync(partial(shutil.rmtree, self.scratch, ignore_errors=True))


# Request guard: host check, authentication, session cookie, security headers ----------------
async def _guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    state: BoardState = request.app.state.board
    session = state.signer.load(request.cookies.get(SESSION_COOKIE))
    fresh = session is None
    if session is None:
        session = state.signer.new()
    bearer = bearer_token(request.headers.get("authorization"))
    by_bearer = bool(state.token and bearer and same_secret(bearer, state.token))
    request.state.session = session
    request.state.by_bearer = by_bearer
    request.state.csrf = state.signer.csrf_token(session)

    response: Response
    if state.token is None and not is_loopback_host(host_without_port(request.url.netloc)):
        response = PlainTextResponse(
            "This board answers only on a loopback address unless a token is configured "
            f"({BOARD_TOKEN_ENV}).",
            status_code=400,
        )
    elif state.token and not (session.authenticated or by_bearer) and not _public(request):
        response = _login_required(request)
    else:
        response = await call_next(request)
    if fresh and not by_bearer and SESSION_COOKIE not in _set_cookies(response):
        _set_session(response, state.signer, session)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _public(request: Request) -> bool:
    """What a signed-out browser may fetch: the login form and the stylesheet."""
    path = request.url.path
    return path == "/login" or path.startswith("/static/")


def _login_required(request: Request) -> Response:
    if request.method in ("GET", "HEAD") and "text/html" in request.headers.get("accept", ""):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    return PlainTextResponse(
        "authentication required: log in on /login or send Authorization: Bearer <token>",
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="reelwatch board"'},
    )


def _set_cookies(response: Response) -> str:
    return " ".join(v for k, v in response.headers.items() if k.lower() == "set-cookie")


def _set_session(response: Response, signer: SessionSigner, session: Session) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        signer.dump(session),
        httponly=True,
        samesite="strict",
        path="/",
    )


def _input_error(request: Request, exc: Exception) -> Response:
    return _error_page(request, 400, " ".join(str(exc).split()))


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return _error_page(request, exc.status_code, str(exc.detail))


def _error_page(request: Request, status_code: int, message: str) -> Response:
    state: BoardState = request.app.state.board
    return state.templates.TemplateResponse(
        request,
        "error.html",
        _context(request, status_code=status_code, message=message),
        status_code=status_code,
    )


def _context(request: Request, **values: Any) -> dict[str, Any]:
    state: BoardState = request.app.state.board
    return {
        "csrf": request.state.csrf,
        "token_required": state.token is not None,
        "signed_in": request.state.session.authenticated,
        **values,
    }


def _not_found(what: str) -> StarletteHTTPException:
    return StarletteHTTPException(404, f"{what} not found")


# CSRF --------------------------------------------------------------------------------------
def require_csrf(request: Request, csrf: Annotated[str, Form()] = "") -> None:
    """Refuse a form post that does not carry this session's CSRF token."""
    if request.state.by_bearer:
        return
    state: BoardState = request.app.state.board
    if not state.signer.check_csrf(request.state.session, csrf):
        raise StarletteHTTPException(
            403, "the form expired or did not come from this board; reload the page and retry"
        )


def queue_filters(
    title: str = "",
    platform: str = "",
    status: str = "",
    tier: str = "",
    hashtag: str = "",
    account: str = "",
    ai: str = "",
) -> QueueFilters:
    return QueueFilters(
        title=title,
        platform=platform,
        status=status,
        tier=tier,
        hashtag=hashtag,
        account=account,
        ai=ai,
    )


Filters = Annotated[QueueFilters, Depends(queue_filters)]


@dataclass(frozen=True)
class Picture:
    label: str
    url: str | None
    path: str


@dataclass(frozen=True)
class SegmentView:
    segment: Segment
    pictures: list[Picture]


EVIDENCE_LABELS = {
    "q": "query {noun}",
    "r": "reference {noun}",
    "s": "soundtracks at the offset (post above, reference below)",
    "st": "similarity along the segment",
}
"""Evidence file names start with their role (see ``matcher.engine``): the label to show."""


def evidence_label(path: str, signal: str, i: int) -> str:
    """What an evidence file shows, from the role its name starts with."""
    role = Path(path).name.split("-", 1)[0]
    if role not in EVIDENCE_LABELS:  # named otherwise: the first two are the frame pair
        role = ("q", "r")[i] if i < 2 else ""
    label = EVIDENCE_LABELS.get(role)
    if label is None:
        return f"evidence {i + 1}"
    return label.format(noun="face" if signal == "face" else "frame")


def segment_views(settings: Settings, match: Match) -> list[SegmentView]:
    views = []
    for segment in match.segments:
        pictures = [
            Picture(
                label=evidence_label(path, segment.signal, i),
                url=evidence_url(settings, path),
                path=path,
            )
            for i, path in enumerate(segment.evidence)
        ]
        views.append(SegmentView(segment, pictures))
    return views


def clip_start(match: Match) -> float:
    """Where the clip starts playing: the earliest matched moment of the post."""
    return min((s.query_start for s in match.segments if s.timed), default=0.0)


# Routes ------------------------------------------------------------------------------------
def _routes() -> APIRouter:
    router = APIRouter()

    @router.get("/", response_class=HTMLResponse)
    @router.get("/matches", response_class=HTMLResponse)
    def queue(
        request: Request,
        filters: Filters,
        page: Annotated[int, Query(ge=1)] = 1,
    ) -> Response:
        state: BoardState = request.app.state.board
        result = select_matches(state.store, filters, page=page, per_page=PER_PAGE)
        return state.templates.TemplateResponse(
            request,
            "queue.html",
            _context(
                request,
                filters=filters,
                result=result,
                facets=facets(state.store),
                thumbs={m.id: thumbnail_url(state.settings, m) for m in result.matches},
            ),
        )

    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/") -> Response:
        state: BoardState = request.app.state.board
        if state.token is None or request.state.session.authenticated:
            return RedirectResponse(safe_next(next), status_code=303)
        return state.templates.TemplateResponse(
            request, "login.html", _context(request, next=safe_next(next), failed=False)
        )

    @router.post("/login", dependencies=[Depends(require_csrf)])
    def login(
        request: Request,
        token: Annotated[str, Form()] = "",
        next: Annotated[str, Form()] = "/",
    ) -> Response:
        state: BoardState = request.app.state.board
        if state.token is None:
            return RedirectResponse(safe_next(next), status_code=303)
        if not same_secret(token.strip(), state.token):
            return state.templates.TemplateResponse(
                request,
                "login.html",
                _context(request, next=safe_next(next), failed=True),
                status_code=401,
            )
        response = RedirectResponse(safe_next(next), status_code=303)
        _set_session(response, state.signer, state.signer.new(authenticated=True))
        return response

    @router.post("/logout", dependencies=[Depends(require_csrf)])
    def logout(request: Request) -> Response:
        state: BoardState = request.app.state.board
        response = RedirectResponse("/login" if state.token else "/", status_code=303)
        _set_session(response, state.signer, state.signer.new())
        return response

    @router.post("/matches/{match_id:anytext}/status", dependencies=[Depends(require_csrf)])
    def set_status(
        request: Request,
        background: BackgroundTasks,
        match_id: str,
        status: Annotated[str, Form()],
        note: Annotated[str, Form()] = "",
        actor: Annotated[str, Form()] = "",
    ) -> Response:
        state: BoardState = request.app.state.board
        if state.store.get_match(match_id) is None:
            raise _not_found("match")
        if len(note) > MAX_NOTE_CHARS:
            raise InputError(f"the note is longer than {MAX_NOTE_CHARS} characters")
        state.store.set_status(match_id, status, note=note.strip(), actor=_actor(actor))
        background.add_task(_after_changes, state.settings, state.store, [match_id])
        return RedirectResponse(_match_href(match_id), status_code=303)

    @router.get("/matches/{match_id:anytext}/evidence-pack")
    def evidence_pack(request: Request, match_id: str) -> Response:
        """The match's evidence pack as a zip (:func:`triage.packs.export_pack`), made in a
        temporary folder that is removed once the download is over (or failed)."""
        state: BoardState = request.app.state.board
        if state.store.get_match(match_id) is None:
            raise _not_found("match")
        # Under the data home, beside the media it copies: a pack is the size of its video, too
        # big for a RAM-backed /tmp.
        packs_tmp = state.settings.home / "tmp"
        packs_tmp.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="reelwatch-pack-", dir=packs_tmp))
        try:
            pack = export_pack(state.settings, state.store, match_id, scratch, as_zip=True)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        return ScratchFileResponse(
            pack,
            scratch=scratch,
            media_type="application/zip",
            filename=pack.name,
            headers={"Cache-Control": "no-store"},
        )

    @router.post("/matches/{match_id:anytext}/notice", dependencies=[Depends(require_csrf)])
    def draft_notice(
        request: Request,
        background: BackgroundTasks,
        match_id: str,
        scope: Annotated[str, Form()] = "match",
        actor: Annotated[str, Form()] = "",
    ) -> Response:
        """Draft a notice for this match, or (``scope=account``) for it and every confirmed
        match of the same account and title; nothing is sent."""
        state: BoardState = request.app.state.board
        match = state.store.get_match(match_id)
        if match is None:
            raise _not_found("match")
        if scope not in ("match", "account"):
            raise InputError(f"unknown notice scope {scope!r}; use one of: match, account")
        ids = [match.id]
        if scope == "account":
            ids += [m.id for m in same_account_and_title(state.store, match)]
        drafts = draft_notices(state.settings, state.store, ids, actor=_actor(actor))
        background.add_task(
            _after_changes, state.settings, state.store, [i for n in drafts for i in n.match_ids]
        )
        target = _notice_href(drafts[0].id) if len(drafts) == 1 else "/notices?status=drafted"
        return RedirectResponse(target, status_code=303)

    @router.get("/matches/{match_id:anytext}", response_class=HTMLResponse)
    def match_page(request: Request, match_id: str) -> Response:
        state: BoardState = request.app.state.board
        match = state.store.get_match(match_id)
        if match is None:
            raise _not_found("match")
        post = state.store.get_post(match.post_key)
        sha = match.media_sha256
        has_media = bool(sha and media_file(state.settings, sha))
        return state.templates.TemplateResponse(
            request,
            "match.html",
            _context(
                request,
                match=match,
                post=post,
                segments=segment_views(state.settings, match),
                lifecycle=lifecycle(match),
                notices=state.store.list_notices(match_id=match.id),
                siblings=same_account_and_title(state.store, match),
                clip_url=f"/media/{sha}#t={clip_start(match):.2f}" if has_media else None,
                clip_start=clip_start(match),
            ),
        )

    @router.get("/posts/failed", response_class=HTMLResponse)
    def failed_posts(
        request: Request,
        reason: str = "",
        since: str = "",
        platform: str = "",
        retried: int | None = None,
    ) -> Response:
        state: BoardState = request.app.state.board
        which = _failed_filter(reason, since, platform)
        posts = select_failed(state.store, which, limit=MAX_FAILED_SHOWN)
        digest = settings_digest(state.settings)
        return state.templates.TemplateResponse(
            request,
            "failed.html",
            _context(
                request,
                posts=posts,
                stale={p.key for p in posts if stale(p, digest)},
                reason=reason,
                since=since,
                platform=platform,
                retried=retried,
                queued=not state.settings.eager,
                limit=MAX_FAILED_SHOWN,
            ),
        )

    @router.post("/posts/retry", dependencies=[Depends(require_csrf)])
    def retry_posts(
        request: Request,
        background: BackgroundTasks,
        key: Annotated[list[str] | None, Form()] = None,
        reason: Annotated[str, Form()] = "",
        since: Annotated[str, Form()] = "",
        platform: Annotated[str, Form()] = "",
    ) -> Response:
        """Retry one post (``key``) or every failed post the filters show; the chains run
        after the answer (in this process without a broker, else on the workers)."""
        state: BoardState = request.app.state.board
        keys = tuple(key or ())
        which = _failed_filter(reason, since, platform, keys)
        limit = None if keys else MAX_FAILED_SHOWN
        moved = put_back(state.store, select_failed(state.store, which, limit=limit))
        if moved:
            background.add_task(_run_retried, state.settings, moved)
        query = urlencode(
            {k: v for k, v in (("reason", reason), ("since", since), ("platform", platform)) if v}
        )
        target = "/posts/failed?" + (query + "&" if query else "") + f"retried={len(moved)}"
        return RedirectResponse(target, status_code=303)

    @router.get("/accounts", response_class=HTMLResponse)
    def accounts(request: Request) -> Response:
        state: BoardState = request.app.state.board
        return state.templates.TemplateResponse(
            request,
            "accounts.html",
            _context(
                request,
                accounts=account_ledger(state.settings, state.store),
                threshold=state.settings.ledger.alert_threshold,
                window_days=state.settings.ledger.window_days,
            ),
        )

    @router.get("/accounts/{platform}/{account:anytext}", response_class=HTMLResponse)
    def account_page(request: Request, platform: str, account: str) -> Response:
        state: BoardState = request.app.state.board
        ledger = ledger_of(state.settings, state.store, platform, account)
        if ledger is None:
            raise _not_found("account")
        matches = ledger_matches(state.store, ledger)
        return state.templates.TemplateResponse(
            request,
            "account.html",
            _context(
                request,
                platform=platform,
                account=ledger.account,
                ledger=ledger,
                matches=matches,
                thumbs={m.id: thumbnail_url(state.settings, m) for m in matches},
                threshold=state.settings.ledger.alert_threshold,
            ),
        )

    @router.get("/notices", response_class=HTMLResponse)
    def notices(request: Request, status: str = "", platform: str = "") -> Response:
        state: BoardState = request.app.state.board
        status = status.strip()
        if status:
            parse_enum(NoticeStatus, status, "notice status")
        found = state.store.list_notices(status=status or None, platform=platform.strip() or None)
        return state.templates.TemplateResponse(
            request,
            "notices.html",
            _context(
                request,
                notices=found,
                status=status,
                platform=platform.strip(),
                notice_statuses=[s.value for s in NoticeStatus],
            ),
        )

    @router.get("/notices/{notice_id}", response_class=HTMLResponse)
    def notice_page(request: Request, notice_id: str) -> Response:
        state: BoardState = request.app.state.board
        notice = state.store.get_notice(notice_id)
        if notice is None:
            raise _not_found("notice")
        return state.templates.TemplateResponse(
            request,
            "notice.html",
            _context(
                request,
                notice=notice,
                matches={i: state.store.get_match(i) for i in notice.match_ids},
                missing=missing_contact(state.settings),
            ),
        )

    @router.post("/notices/{notice_id}/sent", dependencies=[Depends(require_csrf)])
    def notice_sent(
        request: Request,
        background: BackgroundTasks,
        notice_id: str,
        reference: Annotated[str, Form()] = "",
        actor: Annotated[str, Form()] = "",
    ) -> Response:
        """A reviewer sent the notice: it becomes ``sent``, its matches ``notice_sent``."""
        state: BoardState = request.app.state.board
        if state.store.get_notice(notice_id) is None:
            raise _not_found("notice")
        if len(reference) > MAX_REFERENCE_CHARS:
            raise InputError(f"the reference is longer than {MAX_REFERENCE_CHARS} characters")
        sent = mark_sent(
            state.settings, state.store, notice_id, actor=_actor(actor), reference=reference
        )
        background.add_task(_after_changes, state.settings, state.store, sent.match_ids)
        return RedirectResponse(_notice_href(notice_id), status_code=303)

    @router.post("/notices/{notice_id}/withdraw", dependencies=[Depends(require_csrf)])
    def notice_withdraw(
        request: Request,
        background: BackgroundTasks,
        notice_id: str,
        actor: Annotated[str, Form()] = "",
    ) -> Response:
        """Withdraw the notice: kept as ``withdrawn``; its matches go back to ``confirmed``."""
        state: BoardState = request.app.state.board
        if state.store.get_notice(notice_id) is None:
            raise _not_found("notice")
        gone = withdraw_notice(state.settings, state.store, notice_id, actor=_actor(actor))
        background.add_task(_after_changes, state.settings, state.store, gone.match_ids)
        return RedirectResponse(_notice_href(notice_id), status_code=303)

    @router.get("/export/matches.csv")
    def export_csv(request: Request, filters: Filters) -> Response:
        state: BoardState = request.app.state.board
        rows = select_matches(state.store, filters, per_page=None).matches
        stamp = utcnow().strftime("%Y%m%d-%H%M%S")
        return StreamingResponse(
            csv_rows(rows),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="reelwatch-matches-{stamp}.csv"'
            },
        )

    @router.get("/titles/{title_id}/report", response_class=HTMLResponse)
    def title_report(request: Request, title_id: str) -> Response:
        state: BoardState = request.app.state.board
        if not state.store.count_matches(title_id=title_id):
            raise _not_found("title")
        acc = title_accounting(state.settings, state.store, title_id)
        return state.templates.TemplateResponse(
            request,
            "report.html",
            _context(
                request,
                acc=acc,
                evidence={
                    i.match_id: [
                        Picture(e.label, evidence_url(state.settings, e.path), e.path)
                        for e in i.evidence
                        if Path(e.path).suffix.lower() in IMAGE_SUFFIXES
                    ]
                    for i in acc.instances
                },
            ),
        )

    @router.get("/titles/{title_id}/report.csv")
    def title_report_csv(request: Request, title_id: str) -> Response:
        state: BoardState = request.app.state.board
        if not state.store.count_matches(title_id=title_id):
            raise _not_found("title")
        acc = title_accounting(state.settings, state.store, title_id)
        name = pack_name(title_id)
        stamp = acc.generated_at.strftime("%Y%m%d-%H%M%S")
        return StreamingResponse(
            accounting_csv(acc),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="reelwatch-{name}-{stamp}.csv"'},
        )

    @router.get("/evidence/{path:path}")
    def evidence(request: Request, path: str) -> Response:
        state: BoardState = request.app.state.board
        target = resolve_under(state.settings.evidence_dir, path)
        if target is None or target.suffix.lower() not in IMAGE_SUFFIXES:
            raise _not_found("evidence image")
        return FileResponse(target, headers={"Cache-Control": "private, max-age=3600"})

    @router.get("/thumbs/{sha256}.jpg")
    def thumb(request: Request, sha256: str) -> Response:
        """A poster frame of stored media (made once, then cached); the placeholder when there
        is none to make."""
        state: BoardState = request.app.state.board
        poster = poster_for(state.settings, sha256)
        if poster is None:
            return RedirectResponse(PLACEHOLDER_URL, status_code=307)
        return FileResponse(
            poster, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
        )

    @router.get("/media/{sha256}")
    def media(request: Request, sha256: str) -> Response:
        state: BoardState = request.app.state.board
        target = media_file(state.settings, sha256)
        if target is None:
            raise _not_found("media file")
        return FileResponse(target, headers={"Cache-Control": "private, max-age=3600"})

    return router


MAX_FAILED_SHOWN = 500
"""Failed posts one page shows (latest failures first) and "Retry all shown" retries."""


def _failed_filter(
    reason: str, since: str, platform: str, keys: tuple[str, ...] = ()
) -> FailedFilter:
    return FailedFilter(
        reason=reason.strip(),
        since=parse_since(since) if since.strip() else None,
        platform=platform.strip(),
        keys=keys,
    )


def _run_retried(settings: Settings, keys: list[str]) -> None:
    """Start the chains of posts the board put back (after the answer went out)."""
    from workers.app import configure

    configure(settings)
    with open_store(settings) as store:
        start_chains(settings, store, keys)


def _actor(actor: str) -> str:
    """Who did it, as typed (one line, bounded); ``board`` when nobody said."""
    return " ".join(actor.split())[:MAX_ACTOR_CHARS] or "board"


def _match_href(match_id: str) -> str:
    return f"/matches/{quote(match_id, safe=':@')}"


def _notice_href(notice_id: str) -> str:
    return f"/notices/{quote(notice_id, safe='')}"


def _after_changes(settings: Settings, store: Store, match_ids: list[str]) -> None:
    """After the answer went out: the repeat-infringer alert of the changed matches' accounts
    (:func:`triage.ledger.after_status_changes`, once per account; each crossing is sent
    once). A mail server that is away leaves the alert pending for the beat's flush; nothing
    here fails the change already made."""
    try:
        after_status_changes(settings, store, match_ids)
    except Exception as exc:  # a bug or an outage there must not undo the change made
        log.warning(
            "repeat-infringer alert after %s failed: %s",
            one_line(", ".join(match_ids), 200),
            one_line(exc, 300),
        )
