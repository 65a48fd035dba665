"""The inbox socket (`/ws/inbox/`): live events an agent may see, catch-up, typing, presence.

Every event about a conversation carries its routing (`conversation_routing`); the socket
forwards it only when `viewer_can_see` allows, the same rule the API's selectors apply.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from channels.db import database_sync_to_async

from apps.accounts.models import User
from apps.accounts.services import agent_presence_touch
from apps.conversations.selectors import (
    Viewer,
    conversation_list_for_user,
    conversation_routing,
    viewer_can_see,
    viewer_for,
)
from apps.core.consumers import TenantEventsConsumer
from apps.core.realtime import RecordedEvent, event_publish, events_since
from apps.core.tenancy import tenant_context

VIEWER_TTL_SECONDS = 60.0
TYPING_MIN_INTERVAL = 2.0
# Events only the open conversation's pane uses (ticks, the ticket panel): they go to the
# sockets that have that conversation open (`watch`), not to everyone who may see it.
OPEN_PANE_EVENTS = ("message.status", "message.reaction", "ticket.")


class InboxConsumer(TenantEventsConsumer):
    viewer: Viewer
    viewer_refresh_at: float
    viewer_reload: asyncio.Future[None] | None
    last_typing: float
    watching: int | None

    async def on_authenticated(self) -> None:
        self.last_typing = 0.0
        self.watching = None
        self.viewer_reload = None
        await self._viewer_load()
        await self._touch()

    async def on_heartbeat(self) -> None:
        await self._touch()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "watch":
            # The conversation open in this page (one this person may see). It only narrows
            # what the socket forwards: the visibility rule still applies to every event.
            conversation_id = content.get("conversation")
            ok = isinstance(conversation_id, int) and not isinstance(conversation_id, bool)
            if ok and conversation_id == self.watching:
                return  # the same conversation opened again: no query
            self.watching = conversation_id if ok and await self._may_open(conversation_id) else None
        elif kind == "catch_up":
            await self._catch_up(str(content.get("since", "")))
        elif kind == "typing":
            conversation_id = content.get("conversation")
            if isinstance(conversation_id, int) and time.monotonic() - self.last_typing >= TYPING_MIN_INTERVAL:
                self.last_typing = time.monotonic()
                await self._typing(conversation_id)
        else:
            await super().receive_json(content, **kwargs)

    def _wanted(self, event_type: str, data: dict[str, Any]) -> bool:
        """Whether this page uses the event at all (before the visibility rule)."""
        if not event_type.startswith(OPEN_PANE_EVENTS):
            return True
        if self.watching is None:
            return False
        if event_type in ("message.status", "message.reaction"):
            return data.get("conversation") == self.watching
        return self.watching in data.get("conversations", ())

    def _may_see(self, user_id: int | None, data: dict[str, Any]) -> bool:
        if user_id is not None:
            return user_id == self.viewer.user_id  # sent to one person's sockets
        if "ticket" in data and "conversation" not in data:
            # Tickets follow the conversations' roles (the tickets API applies the full rule).
            return self.viewer.sees_all or self.viewer.sees_assigned
        if "conversation" not in data:
            return not data.get("private", False)
        if data.get("previous_agent") == self.viewer.user_id:
            return True  # it just left this agent: their inbox must drop it
        if data.get("left_queue") and viewer_can_see(self.viewer, assigned_agent_id=None, team_id=data.get("team")):
            return True  # a colleague took it from a queue this person sees: their list must drop it
        return viewer_can_see(self.viewer, assigned_agent_id=data.get("assigned_agent"), team_id=data.get("team"))

    async def event_forward(self, message: dict[str, Any]) -> None:
        if time.monotonic() > self.viewer_refresh_at and self.viewer_reload is None:
            # Roles and teams change: reload them, in the background, so that delivery never waits
            # on the database (hundreds of sockets reloading at once would stall every event).
            self.viewer_reload = asyncio.ensure_future(self._viewer_refresh())
        data = message["data"]
        if self._wanted(message["event"], data) and self._may_see(message.get("user"), data):
            await super().event_forward(message)

    async def _viewer_refresh(self) -> None:
        try:
            await self._viewer_load()
        finally:
            self.viewer_reload = None

    async def _catch_up(self, since: str) -> None:
        events = await self._events_since(since)
        sent = 0
        for event in events:
            if self._wanted(event.event, event.data) and self._may_see(event.user_id, event.data):
                await self.send_json({"type": event.event, "id": event.id, "data": event.data, "replayed": True})
                sent += 1
        await self.send_json({"type": "caught_up", "data": {"count": sent, "truncated": len(events) >= 500}})

    @database_sync_to_async
    def _events_since(self, since: str) -> list[RecordedEvent]:
        return events_since(schema_name=self.scope["tenant"].schema_name, since_id=since)

    @database_sync_to_async
    def _viewer_load(self) -> None:
        with tenant_context(self.scope["tenant"]):
            user = User.objects.get(pk=self.scope["user"].pk)
            self.viewer = viewer_for(user=user)
        # Spread the refreshes: sockets opened together must not all reload at the same moment.
        self.viewer_refresh_at = time.monotonic() + VIEWER_TTL_SECONDS * random.uniform(1.0, 1.5)  # noqa: S311

    @database_sync_to_async
    def _touch(self) -> None:
        with tenant_context(self.scope["tenant"]):
            agent_presence_touch(user=self.scope["user"])

    @database_sync_to_async
    def _may_open(self, conversation_id: int) -> bool:
        with tenant_context(self.scope["tenant"]):
            user = User.objects.get(pk=self.scope["user"].pk)
            return conversation_list_for_user(user=user).filter(pk=conversation_id).exists()

    @database_sync_to_async
    def _typing(self, conversation_id: int) -> None:
        """Tell colleagues who can see the conversation that this agent is replying."""
        with tenant_context(self.scope["tenant"]):
            user = User.objects.get(pk=self.scope["user"].pk)
            conversation = conversation_list_for_user(user=user).filter(pk=conversation_id).first()
            if conversation is None:
                return
            event_publish(
                event_type="agent.typing",
                data={
                    **conversation_routing(conversation),
                    "agent": user.pk,
                    "name": user.get_full_name() or user.email,
                },
            )
