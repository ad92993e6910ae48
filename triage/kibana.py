"""Import reelwatch's Kibana saved objects: data views, visualizations, a saved search, a dashboard.

The objects live as ndjson under ``config/kibana/`` (one object a line, the format Kibana's own
export writes), so they can be reviewed in a diff and imported by hand from Stack Management
too. :func:`import_saved_objects` sends them in one multipart ``POST
/api/saved_objects/_import?overwrite=true``; Kibana resolves the references between them,
migrates them to its own version and answers with per-object results. Re-importing is safe:
the ids are fixed, ``overwrite`` replaces the previous copy.

The board link in the matches data view (a URL formatter on ``id``) must point at this
deployment's board, so the files carry :data:`BOARD_URL_PLACEHOLDER` and the import fills in
``settings.email.board_url`` (the same address the alert emails link to).

Connection settings come from ``Settings.kibana`` (``REELWATCH_KIBANA__*`` variables); the
CLI's ``--url`` and ``--space`` win over them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from reelwatch.errors import InputError, ReelwatchError, TransientError
from reelwatch.settings import KibanaSettings, Settings, config_dir

BOARD_URL_PLACEHOLDER = "__REELWATCH_BOARD_URL__"
"""Stands for ``settings.email.board_url`` in the ndjson files; replaced at import time."""

DASHBOARD_ID = "reelwatch-dashboard"

_SPACE_RE = re.compile(r"^[a-z0-9_-]+$")
_UNSAFE_URL_CHARS = re.compile(r"[\s\"'\\<>{}]")
_ERRNO_RE = re.compile(r"\[Errno [-\d]+\] ([^'\")]+)")


@dataclass(frozen=True)
class ImportedObject:
    type: str
    id: str
    title: str
    destination_id: str | None = None
    """Set when Kibana had to give the object a new id (same id already used in another space)."""


@dataclass(frozen=True)
class ImportResult:
    url: str
    space: str | None
    success_count: int
    objects: list[ImportedObject] = field(default_factory=list)

    @property
    def dashboard_url(self) -> str:
        """Where the imported dashboard opens, honouring a regenerated id."""
        dash = next((o for o in self.objects if o.type == "dashboard"), None)
        dash_id = (dash.destination_id or dash.id) if dash else DASHBOARD_ID
        return f"{space_base(self.url, self.space)}/app/dashboards#/view/{dash_id}"


def saved_objects_dir() -> Path:
    return config_dir() / "kibana"


def check_board_url(board_url: str) -> str:
    """The board URL without a trailing slash; refuse one that would break the link template.

    The value lands inside a JSON string inside a JSON string (``fieldFormatMap``), so quotes,
    backslashes, braces (Kibana's ``{{value}}`` templating) and whitespace are refused rather
    than escaped twice.
    """
    parts = urlsplit(board_url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or _UNSAFE_URL_CHARS.search(board_url)
    ):
        raise InputError(
            f"board URL {board_url!r} is not a plain http(s) URL; set REELWATCH_EMAIL__BOARD_URL"
        )
    return board_url.rstrip("/")


def load_saved_objects(board_url: str, folder: Path | None = None) -> list[dict[str, Any]]:
    """Read every ``*.ndjson`` in ``folder`` (name order) with the board URL filled in."""
    folder = folder or saved_objects_dir()
    files = sorted(folder.glob("*.ndjson"))
    if not files:
        raise InputError(f"no Kibana saved objects (*.ndjson) in {folder}")
    board = check_board_url(board_url)
    objects: list[dict[str, Any]] = []
    for path in files:
        text = path.read_text(encoding="utf-8").replace(BOARD_URL_PLACEHOLDER, board)
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: not JSON ({exc.msg})") from exc
            if not isinstance(obj, dict) or not obj.get("id") or not obj.get("type"):
                raise InputError(f"{path}:{number}: a saved object needs an id and a type")
            objects.append(obj)
    return objects


def to_ndjson(objects: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(o, separators=(",", ":")) + "\n" for o in objects).encode()


def space_base(url: str, space: str | None) -> str:
    """Kibana's base URL for a space (``/s/<space>``); the default space has no prefix."""
    base = url.rstrip("/")
    if space and space != "default":
        if not _SPACE_RE.match(space):
            raise InputError(
                f"Kibana space id {space!r} must be lower-case letters, digits, '-' or '_'"
            )
        base = f"{base}/s/{space}"
    return base


def _session(settings: KibanaSettings) -> requests.Session:
    """A session that authenticates and retries a Kibana that is still starting.

    Retrying the POST is safe: the import overwrites by fixed ids.
    """
    session = requests.Session()
    retry = Retry(
        total=settings.retries,
        connect=settings.retries,
        read=0,
        status=settings.retries,
        status_forcelist=(502, 503, 504),
        allowed_methods=None,
        backoff_factor=0.5,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.verify = settings.verify_tls
    if settings.api_key is not None:
        session.headers["Authorization"] = f"ApiKey {settings.api_key.get_secret_value()}"
    elif settings.username:
        password = settings.password.get_secret_value() if settings.password else ""
        session.auth = (settings.username, password)
    return session


@contextmanager
def _quiet_retries() -> Iterator[None]:
    """Keep urllib3's per-retry warnings off stderr unless the user asked for details (-v).

    A Kibana that is still starting is expected; the outcome gets one line of its own.
    """
    pool_log = logging.getLogger("urllib3.connectionpool")
    before = pool_log.level
    if not logging.getLogger().isEnabledFor(logging.INFO):
        pool_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        pool_log.setLevel(before)


def _reason(exc: requests.RequestException) -> str:
    """The OS-level reason (``Connection refused``) out of urllib3's nested message."""
    found = _ERRNO_RE.findall(str(exc))
    if found:
        return found[-1].strip()
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return type(exc).__name__


def _describe_error(err: dict[str, Any]) -> str:
    """One phrase per failed object: ``visualization reelwatch-x: missing_references (...)``."""
    detail = err.get("error") or {}
    kind = str(detail.get("type", "error"))
    extra = ""
    if kind == "missing_references":
        refs = detail.get("references") or []
        extra = ", ".join(f"{r.get('type')} {r.get('id')}" for r in refs)
    elif detail.get("message"):
        extra = str(detail["message"])
    name = f"{err.get('type', '?')} {err.get('id', '?')}"
    return f"{name}: {kind}" + (f" ({extra})" if extra else "")


def import_saved_objects(
    objects: list[dict[str, Any]],
    settings: KibanaSettings | None = None,
    url: str | None = None,
    space: str | None = None,
) -> ImportResult:
    """Send ``objects`` to Kibana in one import; raise with one clear line when any fails.

    Raises :class:`TransientError` when Kibana cannot be reached (or stays unavailable after
    the retries) and :class:`ReelwatchError` when it answers with an error or imports only
    part of the objects.
    """
    settings = settings or Settings().kibana
    url = (url or settings.url).rstrip("/")
    space = space if space is not None else settings.space
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(f"Kibana URL {url!r} is not an http(s) URL")
    endpoint = f"{space_base(url, space)}/api/saved_objects/_import"
    body = to_ndjson(objects)
    with _session(settings) as session, _quiet_retries():
        try:
            response = session.post(
                endpoint,
                params={"overwrite": "true"},
                headers={"kbn-xsrf": "reelwatch"},
                files={"file": ("reelwatch.ndjson", body, "application/ndjson")},
                timeout=settings.timeout_s,
            )
        except requests.RequestException as exc:
            raise TransientError(f"cannot reach Kibana at {url}: {_reason(exc)}") from exc
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.status_code >= 400 or not isinstance(payload, dict):
        message = payload.get("message") if isinstance(payload, dict) else None
        message = message or response.reason or "no JSON in the answer (is this Kibana?)"
        error = TransientError if response.status_code in (502, 503, 504) else ReelwatchError
        raise error(f"Kibana at {url} refused the import: HTTP {response.status_code}: {message}")
    success_count = int(payload.get("successCount", 0))
    errors = payload.get("errors") or []
    if not payload.get("success", False) or errors:
        described = "; ".join(_describe_error(e) for e in errors) or "no details given"
        raise ReelwatchError(
            f"Kibana at {url} imported {success_count} of {len(objects)} saved objects: {described}"
        )
    titles = {(o["type"], o["id"]): str(o.get("attributes", {}).get("title", "")) for o in objects}
    imported = []
    for result in payload.get("successResults") or []:
        key = (str(result.get("type")), str(result.get("id")))
        title = (result.get("meta") or {}).get("title") or titles.get(key, "")
        imported.append(
            ImportedObject(*key, title=str(title), destination_id=result.get("destinationId"))
        )
    return ImportResult(url=url, space=space, success_count=success_count, objects=imported)
