from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.core.realtime import EVENTS_TOPIC, session_group, tenant_group, user_group

# Close codes the client can act on (4000-4999 are for applications).
CLOSE_UNKNOWN_TENANT = 4404
CLOSE_UNAUTHENTICATED = 4401


_FRAMES_KEPT = 256
_frames: OrderedDict[str, str] = OrderedDict()


def event_frame(message: dict[str, Any]) -> str:
    """The websocket text of an event, encoded once per process for all the sockets it goes to.

    Every socket that may see an event sends the same text. The tenant's schema and the
    event's id in that tenant's stream name it: stream ids are only unique within one tenant's
    stream. An event without both (Redis could not record it) is encoded each time.
    """
    event_id = str(message.get("id") or "")
    key = f"{message['schema']}:{event_id}" if event_id and message.get("schema") else ""
    frame = _frames.get(key) if key else None
    if frame is None:
        frame = json.dumps({"type": message["event"], "id": event_id, "data": message["data"]})
        if key:
            _frames[key] = frame
            if len(_frames) > _FRAMES_KEPT:
                _frames.popitem(last=False)
    return frame


class TenantEventsConsumer(AsyncJsonWebsocketConsumer):
    """Authenticated stream of the tenant's live events (`/ws/events/`)."""

    groups_joined: list[str]

    async def connect(self) -> None:
        self.groups_joined = []
        tenant = self.scope.get("tenant")
        user = self.scope.get("user")
        if tenant is None:
            await self.close(code=CLOSE_UNKNOWN_TENANT)
            return
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        schema = tenant.schema_name
        self.groups_joined = [tenant_group(schema, EVENTS_TOPIC), user_group(schema, user.pk)]
        if self.scope.get("session_key"):
            self.groups_joined.append(session_group(schema, self.scope["session_key"]))
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.on_authenticated()
        await self.send_json({"type": "hello", "data": {"tenant": schema, "user": user.pk}})

    async def on_authenticated(self) -> None:
        """Hook for subclasses (presence)."""

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.on_heartbeat()
            await self.send_json({"type": "pong"})

    async def on_heartbeat(self) -> None:
        """Hook for subclasses (presence)."""

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale database connections before every message, a thread hop each
        # time; forwarding an event touches no database, and with hundreds of sockets those hops
        # queued behind one another (benchmarks/inbox_fanout.py). Every other message keeps it.
        if message.get("type") == "event.forward":
            await self.event_forward(message)
        else:
            await super().dispatch(message)

    async def socket_close(self, message: dict[str, Any]) -> None:
        """Its user was switched off, signed out or changed password (`realtime.sockets_close`)."""
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def event_forward(self, message: dict[str, Any]) -> None:
        await self.send(text_data=event_frame(message))
