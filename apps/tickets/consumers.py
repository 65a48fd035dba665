"""The ticket queue's socket (`/ws/tickets/`): the tenant's ticket events a person may see.

Ticket events carry their routing (assignee, team, and the previous ones after a
reassignment); the socket forwards one only when `ticket_viewer_can_see` allows it, the
same rule the queue's selectors apply. Knowledge editors get no ticket socket at all.
"""

from __future__ import annotations

import random
import time
from typing import Any

from channels.db import database_sync_to_async

from apps.accounts.models import User
from apps.conversations.selectors import Viewer
from apps.core.consumers import TenantEventsConsumer
from apps.core.tenancy import tenant_context
from apps.tickets.selectors import ticket_viewer_can_see, ticket_viewer_for, ticket_viewer_may_use_queue

VIEWER_TTL_SECONDS = 60.0
CLOSE_FORBIDDEN = 4403


class TicketQueueConsumer(TenantEventsConsumer):
    viewer: Viewer
    viewer_refresh_at: float

    async def connect(self) -> None:
        tenant, user = self.scope.get("tenant"), self.scope.get("user")
        if tenant is not None and user is not None and user.is_authenticated and user.is_active:
            await self._viewer_load()
            if not ticket_viewer_may_use_queue(self.viewer):
                self.groups_joined = []
                await self.close(code=CLOSE_FORBIDDEN)  # type: ignore[no-untyped-call]
                return
        await super().connect()  # refuses unknown tenants and anonymous people itself

    def may_see(self, data: dict[str, Any]) -> bool:
        if not ticket_viewer_may_use_queue(self.viewer) or "ticket" not in data:
            return False
        routings = [(data.get("assignee"), data.get("team"))]
        if "previous_assignee" in data or "previous_team" in data:
            # It just left this person's queue: their page must drop it.
            routings.append(
                (data.get("previous_assignee", data.get("assignee")), data.get("previous_team", data.get("team")))
            )
        return any(
            ticket_viewer_can_see(self.viewer, assignee_id=assignee, team_id=team) for assignee, team in routings
        )

    async def event_forward(self, message: dict[str, Any]) -> None:
        if not str(message.get("event", "")).startswith("ticket."):
            return
        if time.monotonic() > self.viewer_refresh_at:
            await self._viewer_load()  # roles and teams change
        if message.get("user") is not None:
            return  # a personal copy of a tenant-wide event: the queue shows the tenant-wide one
        if self.may_see(message["data"]):
            await super().event_forward(message)

    @database_sync_to_async
    def _viewer_load(self) -> None:
        with tenant_context(self.scope["tenant"]):
            user = User.objects.get(pk=self.scope["user"].pk)
            self.viewer = ticket_viewer_for(user=user)
        # Spread the refreshes: sockets opened together must not all reload at the same moment.
        self.viewer_refresh_at = time.monotonic() + VIEWER_TTL_SECONDS * random.uniform(1.0, 1.5)  # noqa: S311
