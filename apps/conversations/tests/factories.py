"""Test data for conversations: a conversation as the inbound path leaves it, with its window."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from django.utils import timezone

from apps.contacts.models import Contact, ServiceWindow
from apps.conversations.models import Conversation, Message
from apps.tenants.models import WhatsAppAccount


def conversation_create(
    *, contact: Contact, account: WhatsAppAccount, window_expires_at: datetime | None = None, **fields: Any
) -> Conversation:
    """A conversation of `contact` on `account`, on the pair's 24-hour window (made when it has none yet).

    `window_expires_at` is the end of a window made here; an existing window keeps its end.
    """
    window, _created = ServiceWindow.objects.get_or_create(
        contact=contact, account=account, defaults={"expires_at": window_expires_at}
    )
    return Conversation.objects.create(contact=contact, account=account, window=window, **fields)


_wamids = itertools.count(1)


def message_inbound_create(*, conversation: Conversation, text: str, **fields: Any) -> Message:
    """A customer's text message in `conversation`, sent now, with a wamid of its own (`fields` override)."""
    values: dict[str, Any] = {
        "direction": Message.Direction.INBOUND,
        "author_kind": "customer",
        "type": "text",
        "sent_at": timezone.now(),
        "wamid": f"wamid.TEST{next(_wamids)}",
        **fields,
    }
    return Message.objects.create(conversation=conversation, text=text, **values)
