from __future__ import annotations

from channels.db import database_sync_to_async

from apps.accounts.services import agent_presence_touch
from apps.core.consumers import TenantEventsConsumer
from apps.core.tenancy import tenant_context


class EventsConsumer(TenantEventsConsumer):
    """The tenant's live events; an open socket also keeps its agent marked online."""

    async def on_authenticated(self) -> None:
        await self._touch()

    async def on_heartbeat(self) -> None:
        await self._touch()

    @database_sync_to_async
    def _touch(self) -> None:
        with tenant_context(self.scope["tenant"]):
            agent_presence_touch(user=self.scope["user"])
