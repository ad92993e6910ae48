"""Watches: which hashtags to crawl on which platform, how often, and who hears about it."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from reelwatch.errors import InputError
from reelwatch.models import Confidence, normalize_hashtag


class Watch(BaseModel):
    name: str
    platform: str
    hashtags: list[str]
    limit: int = 100
    schedule: str = "0 * * * *"
    """Crontab (minute hour day month weekday) for Celery beat."""
    min_confidence: Confidence = Confidence.HIGH
    recipients: list[str] = Field(default_factory=list)
    """Overrides the email recipients from the settings when set."""

    @field_validator("hashtags")
    @classmethod
    def _normalize(cls, tags: list[str]) -> list[str]:
        return [normalize_hashtag(t) for t in tags if normalize_hashtag(t)]


def load_watches(path: Path) -> list[Watch]:
    if not path.exists():
        raise InputError(f"watchlist {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
        watches = [Watch.model_validate(w) for w in data.get("watches", [])]
    except (yaml.YAMLError, ValidationError, AttributeError) as exc:
        first = str(exc).splitlines()[0]
        raise InputError(f"watchlist {path} is not valid: {first}") from exc
    names = [w.name for w in watches]
    if len(set(names)) != len(names):
        raise InputError(f"watchlist {path} names a watch twice")
    return watches


def get_watch(path: Path, name: str) -> Watch:
    for w in load_watches(path):
        if w.name == name:
            return w
    raise InputError(f"no watch named {name!r} in {path}")
