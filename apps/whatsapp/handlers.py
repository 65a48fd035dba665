"""Where parsed inbound messages go: a registry the conversations app fills at start-up.

The transport sits below the apps that understand messages, so it cannot import them;
`apps.conversations` registers its pipeline here in `AppConfig.ready()`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apps.tenants.models import WhatsAppAccount
from apps.whatsapp.payloads import InboundMessage

InboundHandler = Callable[[WhatsAppAccount, InboundMessage], None]
# Given an outbox row's id, the routing of the conversation it belongs to (or None).
StatusRouter = Callable[[int], "dict[str, Any] | None"]

_inbound_handlers: list[InboundHandler] = []
_status_routers: list[StatusRouter] = []


def inbound_handler_register(handler: InboundHandler) -> None:
    if handler not in _inbound_handlers:
        _inbound_handlers.append(handler)


def inbound_dispatch(account: WhatsAppAccount, message: InboundMessage) -> None:
    if not _inbound_handlers:
        raise RuntimeError("No inbound message handler is registered (is apps.conversations installed?)")
    for handler in _inbound_handlers:
        handler(account, message)


def status_router_register(router: StatusRouter) -> None:
    if router not in _status_routers:
        _status_routers.append(router)


def status_routing(outbox_id: int) -> dict[str, Any]:
    """What a delivery-status event carries so that only the people who may see the
    conversation hear it (`conversation`, `assigned_agent`, `team`); {} for a send that
    belongs to no conversation (a broadcast)."""
    for router in _status_routers:
        routing = router(outbox_id)
        if routing:
            return routing
    return {}
