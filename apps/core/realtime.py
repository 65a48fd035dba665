"""Tenant-scoped live events over the channel layer.

Every group name comes from `tenant_group`, which prefixes the tenant's schema: a
publisher in one tenant cannot address a socket of another.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import redis
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from apps.core.tenancy import current_schema

_GROUP_PART = re.compile(r"^[A-Za-z0-9_-]+$")
_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
logger = logging.getLogger(__name__)
EVENTS_TOPIC = "events"


def tenant_group(schema_name: str, *parts: str) -> str:
    if not schema_name or not _GROUP_PART.match(schema_name):
        raise ValueError(f"Invalid schema name for a channel group: {schema_name!r}")
    for part in parts:
        if not _GROUP_PART.match(part):
            raise ValueError(f"Invalid channel group part: {part!r}")
    return ".".join(["tenant", schema_name, *parts])


def user_group(schema_name: str, user_id: int) -> str:
    return tenant_group(schema_name, "user", str(user_id))


def session_group(schema_name: str, session_key: str) -> str:
    """The sockets opened with one signed-in session (named by a digest: the key is a credential)."""
    return tenant_group(schema_name, "session", hashlib.sha256(session_key.encode()).hexdigest()[:32])


def event_message(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "event.forward", "event": event_type, "data": data}


STREAM_MAXLEN = 20_000  # per tenant: enough for a reconnecting browser to catch up


@lru_cache(maxsize=4)
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True)


def _stream_key(schema_name: str) -> str:
    return f"imaradesk:events:{tenant_group(schema_name)}"


def event_record(schema_name: str, event_type: str, data: dict[str, Any], user_id: int | None) -> str:
    """Append the event to the tenant's stream (Redis) and return its id, or "" if Redis failed."""
    entry: dict[Any, Any] = {"event": event_type, "data": json.dumps(data, default=str), "user": str(user_id or "")}
    try:
        return str(
            _redis(settings.REDIS_URL).xadd(_stream_key(schema_name), entry, maxlen=STREAM_MAXLEN, approximate=True)
        )
    except redis.RedisError:
        logger.warning("could not record a %s event for catch-up in %s", event_type, schema_name, exc_info=True)
        return ""


@dataclass(frozen=True)
class RecordedEvent:
    id: str
    event: str
    data: dict[str, Any]
    user_id: int | None


def events_since(*, schema_name: str, since_id: str, limit: int = 500) -> list[RecordedEvent]:
    """The tenant's events after `since_id` (oldest first), for a socket that reconnects."""
    if not _STREAM_ID.match(since_id):
        return []
    rows: list[tuple[str, dict[str, str]]] = _redis(settings.REDIS_URL).xrange(  # type: ignore[assignment]
        _stream_key(schema_name), min=f"({since_id}", max="+", count=limit
    )
    return [
        RecordedEvent(
            id=event_id,
            event=fields["event"],
            data=json.loads(fields["data"]),
            user_id=int(fields["user"]) if fields.get("user") else None,
        )
        for event_id, fields in rows
    ]


PUBLISH_TIMEOUT_SECONDS = 5.0


class _Publisher:
    """One event loop per process, on a thread of its own, that hands events to the channel layer.

    `async_to_sync` called from a worker thread starts a new event loop (on a new thread) for
    each call, and the channel layer keeps its Redis connections per loop: every event paid
    for a fresh connection (profiled in benchmarks/inbox_fanout.py). This loop lives as long as
    the process (a forked child starts its own), so its connections are reused.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            alive = self._thread is not None and self._thread.is_alive()
            if self._loop is None or self._pid != os.getpid() or not alive:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="event-publisher", daemon=True)
                thread.start()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
            return self._loop

    def group_send(self, group: str, message: dict[str, Any]) -> None:
        layer = get_channel_layer()
        if layer is None:
            raise RuntimeError("No channel layer is configured (CHANNEL_LAYERS).")
        future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), self._running_loop())
        future.result(timeout=PUBLISH_TIMEOUT_SECONDS)


_publisher = _Publisher()


def event_publish(
    *, event_type: str, data: dict[str, Any], user_id: int | None = None, schema_name: str | None = None
) -> None:
    """Push an event to the current tenant's sockets (or one user's) once the transaction commits.

    Each event is also appended to the tenant's Redis stream first, and carries the stream id,
    so a socket that reconnects asks for what it missed (`events_since`).
    """
    schema = schema_name or current_schema()
    group = user_group(schema, user_id) if user_id is not None else tenant_group(schema, EVENTS_TOPIC)

    def send() -> None:
        message = event_message(event_type, data)
        message["id"] = event_record(schema, event_type, data, user_id)
        message["user"] = user_id
        message["schema"] = schema
        _publisher.group_send(group, message)

    transaction.on_commit(send)


SOCKET_CLOSE = "socket.close"


def sockets_close(
    *, user_id: int | None = None, session_key: str | None = None, schema_name: str | None = None
) -> None:
    """Close, once the transaction commits, the live sockets of a user (all their sessions) or of one session.

    A socket is authenticated once, when it opens: a user switched off, signed out or whose
    password changed would otherwise keep receiving the tenant's events until it dropped.
    """
    schema = schema_name or current_schema()
    groups = [user_group(schema, user_id)] if user_id is not None else []
    if session_key:
        groups.append(session_group(schema, session_key))

    def send() -> None:
        for group in groups:
            try:
                _publisher.group_send(group, {"type": SOCKET_CLOSE})
            except Exception:  # the change stands; the socket goes at its next reconnect
                logger.warning("could not close the live sockets of %s", group, exc_info=True)

    transaction.on_commit(send)
