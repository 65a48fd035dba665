"""Tenant-scoped live events over the channel layer.

Every group name comes from `tenant_group`, which prefixes the tenant's schema: a
publisher in one tenant cannot address a socket of another.
"""

from __future__ import annotations

import re
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from apps.core.tenancy import current_schema

_GROUP_PART = re.compile(r"^[A-Za-z0-9_-]+$")
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


def event_message(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "event.forward", "event": event_type, "data": data}


def event_publish(
    *, event_type: str, data: dict[str, Any], user_id: int | None = None, schema_name: str | None = None
) -> None:
    """Push an event to the current tenant's sockets (or one user's) once the transaction commits."""
    schema = schema_name or current_schema()
    group = user_group(schema, user_id) if user_id is not None else tenant_group(schema, EVENTS_TOPIC)
    message = event_message(event_type, data)

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            raise RuntimeError("No channel layer is configured (CHANNEL_LAYERS).")
        async_to_sync(layer.group_send)(group, message)

    transaction.on_commit(send)
