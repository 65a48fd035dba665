"""Where parsed inbound messages go: a registry the conversations app fills at start-up.

The transport sits below the apps that understand messages, so it cannot import them;
`apps.conversations` registers its pipeline here in `AppConfig.ready()`.
"""

from __future__ import annotations

from collections.abc import Callable

from apps.tenants.models import WhatsAppAccount
from apps.whatsapp.payloads import InboundMessage

InboundHandler = Callable[[WhatsAppAccount, InboundMessage], None]

_inbound_handlers: list[InboundHandler] = []


def inbound_handler_register(handler: InboundHandler) -> None:
    if handler not in _inbound_handlers:
        _inbound_handlers.append(handler)


def inbound_dispatch(account: WhatsAppAccount, message: InboundMessage) -> None:
    if not _inbound_handlers:
        raise RuntimeError("No inbound message handler is registered (is apps.conversations installed?)")
    for handler in _inbound_handlers:
        handler(account, message)
