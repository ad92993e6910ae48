"""Watches: which hashtags to crawl on which platform, how often, and who hears about it.

A watch's own alert settings (recipients, minimum confidence) and crawl bounds (limit, max
age) travel with every crawl it schedules as :class:`WatchOptions`, inside the task arguments:
a worker on another machine may have another watchlist, or none, so nothing downstream looks a
watch up by name.

A malformed watchlist is one :class:`~reelwatch.errors.InputError` naming the file, the line
and the field (``watchlist w.yaml line 7: watches[1].min_confidence: Input should be ...``):
pydantic's error locations are mapped back to the YAML nodes they came from.
"""

from __future__ import annotations

import re
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any

import yaml
from celery.schedules import crontab
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reelwatch.errors import InputError
from reelwatch.models import Confidence, normalize_hashtag

_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw]?)$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_UNSAFE_ADDRESS_RE = re.compile(r"[\x00-\x1f\x7f\s]")


def parse_duration(value: object) -> float:
    """Seconds from a number of seconds or ``90s``/``30m``/``12h``/``7d``/``2w``."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        return float(value)
    found = _DURATION_RE.match(str(value).strip().lower())
    if found is None:
        raise ValueError(
            f"{value!r} is not a duration: use seconds or a number with s, m, h, d or w (7d)"
        )
    return float(found.group(1)) * _DURATION_UNITS[found.group(2)]


def format_duration(seconds: float) -> str:
    """The largest whole unit that says ``seconds`` exactly (``604800`` -> ``7d``)."""
    for unit in ("w", "d", "h", "m"):
        size = _DURATION_UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def crontab_of(expr: str) -> crontab:
    """A Celery crontab from five fields (minute hour day-of-month month day-of-week).

    Raises ``ValueError`` with the reason, so pydantic reports it at the watch's line.
    """
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"schedule {expr!r} needs 5 crontab fields")
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        return crontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
        )
    except (ValueError, TypeError) as exc:
        raise ValueError(f"schedule {expr!r} is not a valid crontab ({exc})") from None


def _email_address(recipient: str) -> str:
    address = parseaddr(recipient)[1]
    if "@" not in address or _UNSAFE_ADDRESS_RE.search(address) or "\n" in recipient:
        raise ValueError(f"{recipient!r} is not an email address")
    return recipient


Recipient = Annotated[str, AfterValidator(_email_address)]
"""An email address, bare or with a display name (``Brand Team <brand@studio.test>``)."""


class WatchOptions(BaseModel):
    """What one crawl carries from its watch through every task down to the alert step.

    ``None`` means "the settings decide": ``min_confidence`` falls back to
    ``settings.alerts.min_confidence``, ``recipients`` to ``settings.email.recipients``,
    ``limit`` to ``settings.crawl.default_limit``, and no ``max_age_s`` means no age bound.
    A crawl started without a watch (``reelwatch crawl``) carries ``WatchOptions()``.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str | None = None
    recipients: list[str] | None = None
    min_confidence: Confidence | None = None
    limit: int | None = None
    max_age_s: float | None = None

    @classmethod
    def of(cls, value: WatchOptions | dict[str, Any] | str | None) -> WatchOptions:
        """The options of a task argument: the JSON dict tasks carry, or a bare watch name.

        A bare name comes from tasks sent before options travelled with them; it gets the
        settings' defaults rather than a lookup that another machine's watchlist may not match.
        """
        if value is None:
            return cls()
        if isinstance(value, WatchOptions):
            return value
        if isinstance(value, str):
            return cls(name=value)
        return cls.model_validate(value)

    def task_arg(self) -> dict[str, Any]:
        """The options as a JSON-safe dict for task arguments (what :meth:`of` reads back)."""
        return self.model_dump(mode="json", exclude_none=True)


class Watch(BaseModel):
    """One entry of the watchlist; unknown keys are errors, so a typo cannot go unnoticed."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1)
    platform: str = Field(min_length=1)
    hashtags: list[str]
    limit: int = Field(default=100, ge=1)
    schedule: str = "0 * * * *"
    """Crontab (minute hour day month weekday) for Celery beat."""
    min_confidence: Confidence | None = None
    """Lowest tier that alerts; unset means ``settings.alerts.min_confidence``."""
    recipients: list[Recipient] = Field(default_factory=list)
    """Email addresses that hear about this watch's matches instead of
    ``settings.email.recipients``; empty means those."""
    max_age_s: float | None = Field(default=None, alias="max_age", gt=0)
    """Posts older than this are not listed (``max_age: 7d`` in YAML; seconds, or a number with
    s, m, h, d or w)."""

    @field_validator("hashtags")
    @classmethod
    def _normalize(cls, tags: list[str]) -> list[str]:
        clean: list[str] = []
        for raw in tags:
            tag = normalize_hashtag(raw)
            if not tag:
                continue
            if not all(c.isalnum() or c == "_" for c in tag):
                raise ValueError(f"{raw!r} is not a hashtag (letters, digits and _ only)")
            if tag not in clean:
                clean.append(tag)
        if not clean:
            raise ValueError("a watch needs at least one hashtag")
        return clean

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, expr: str) -> str:
        crontab_of(expr)
        return expr

    @field_validator("max_age_s", mode="before")
    @classmethod
    def _max_age(cls, value: object) -> float | None:
        return None if value is None else parse_duration(value)

    @property
    def crontab(self) -> crontab:
        return crontab_of(self.schedule)

    def options(self) -> WatchOptions:
        """What every crawl of this watch carries to its tasks."""
        return WatchOptions(
            name=self.name,
            recipients=list(self.recipients) or None,
            min_confidence=self.min_confidence,
            limit=self.limit,
            max_age_s=self.max_age_s,
        )


class _Watchlist(BaseModel):
    model_config = ConfigDict(extra="forbid")

    watches: list[Watch] = Field(default_factory=list)


def load_watches(path: Path) -> list[Watch]:
    """The watches of ``path``; any problem is one ``InputError`` naming file, line and field."""
    where = f"watchlist {path}"
    if not path.exists():
        raise InputError(f"{where} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{where} cannot be read: {exc}") from None
    root, data = _parse_yaml(text, where)
    if data is None:
        return []
    if not isinstance(data, dict):
        raise InputError(f"{where} line {_line(root)}: expected a mapping with a `watches:` list")
    try:
        watches = _Watchlist.model_validate(data).watches
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        loc = tuple(first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        others = len(errors) - 1
        more = f" (and {others} more problem{'s' if others > 1 else ''})" if others else ""
        raise InputError(
            f"{where} line {_line(_node_at(root, loc))}: {_field(loc)}: {message}{more}"
        ) from None
    seen: dict[str, int] = {}
    for i, w in enumerate(watches):
        if w.name in seen:
            loc = ("watches", i, "name")
            raise InputError(
                f"{where} line {_line(_node_at(root, loc))}: {_field(loc)}: {w.name!r} is "
                f"already the name of watches[{seen[w.name]}]"
            )
        seen[w.name] = i
    return watches


def get_watch(path: Path, name: str) -> Watch:
    for w in load_watches(path):
        if w.name == name:
            return w
    raise InputError(f"no watch named {name!r} in {path}")


def _parse_yaml(text: str, where: str) -> tuple[Node | None, Any]:
    """The document's node tree (for line numbers) and its data, from one parse."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        at = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark is not None and context_mark is not mark:
            problem += f" ({context} on line {context_mark.line + 1})"
        raise InputError(f"{where}{at}: not valid YAML: {problem}") from None
    finally:
        loader.dispose()
    return root, data


def _node_at(root: Node | None, loc: tuple[int | str, ...]) -> Node | None:
    """The deepest node along ``loc``; a missing key stops at the mapping that lacks it."""
    node = root
    for part in loc:
        if isinstance(node, MappingNode) and isinstance(part, str):
            found = next(
                (v for k, v in node.value if isinstance(k, ScalarNode) and k.value == part),
                None,
            )
            if found is None:
                return node
            node = found
        elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return node
    return node


def _line(node: Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 1


def _field(loc: tuple[int | str, ...]) -> str:
    """``("watches", 1, "min_confidence")`` -> ``watches[1].min_confidence``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"
