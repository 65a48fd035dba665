"""Test data for conversations: a conversation as the inbound path leaves it, with its window."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from apps.contacts.models import Contact, ServiceWindow
from apps.conversations.models import Conversation
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
