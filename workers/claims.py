"""Claims: "only one of us does this", across processes and machines, in Redis.

Two beats on one Redis must not fire the same watch twice, and a broken source must not send
more than one email a day however often the check runs. Both come down to one atomic
``SET key holder NX PX ttl``: whoever sets the key first does the work, the others see it taken.
Keys expire by themselves, so a process that dies holding one leaves nothing to clean up.

The Redis is the broker's when it is Redis, else the result backend's; distributed reelwatch
always has one of them (RabbitMQ users set ``REELWATCH_RESULT_BACKEND=redis://...``).
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

import redis

from reelwatch.errors import InputError, TransientError

if TYPE_CHECKING:
    from reelwatch.settings import Settings

PREFIX = "reelwatch:claim:"


def redis_url(settings: Settings) -> str | None:
    """The Redis that coordinates reelwatch processes, if the settings name one."""
    for url in (settings.broker_url, settings.result_backend):
        if url and url.split("://", 1)[0] in ("redis", "rediss"):
            return url
    return None


def holder_name() -> str:
    """Who holds a claim, for the logs and for a person looking at Redis."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Claims:
    """Atomic, expiring claims on names in one Redis."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=10)

    @classmethod
    def from_settings(cls, settings: Settings, purpose: str) -> Claims:
        """Claims on the settings' Redis; ``purpose`` says who needs it when there is none."""
        url = redis_url(settings)
        if url is None:
            raise InputError(
                f"{purpose} needs Redis: set REELWATCH_BROKER_URL or REELWATCH_RESULT_BACKEND "
                "to redis://HOST:PORT/DB"
            )
        return cls(url)

    def claim(self, name: str, ttl_s: float, holder: str | None = None) -> bool:
        """Take ``name`` for ``ttl_s`` seconds; False when someone else holds it."""
        try:
            taken = self.client.set(
                PREFIX + name, holder or holder_name(), nx=True, px=max(1, round(ttl_s * 1000))
            )
        except redis.RedisError as exc:
            raise TransientError(f"cannot reach Redis to claim {name!r}: {exc}") from None
        return bool(taken)

    def holder(self, name: str) -> str | None:
        """Who holds ``name`` now, if anyone."""
        try:
            value = self.client.get(PREFIX + name)
        except redis.RedisError as exc:
            raise TransientError(f"cannot reach Redis to read claim {name!r}: {exc}") from None
        return value.decode() if isinstance(value, bytes) else None

    def release(self, name: str) -> None:
        """Give ``name`` up early (the work it guarded did not happen)."""
        try:
            self.client.delete(PREFIX + name)
        except redis.RedisError as exc:
            raise TransientError(f"cannot reach Redis to release {name!r}: {exc}") from None

    def close(self) -> None:
        self.client.close()
