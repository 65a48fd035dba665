"""The customer simulator: chat as a WhatsApp customer with a sandbox number, no Meta account needed.

Every customer message is a webhook payload signed like Meta's and POSTed to the real
endpoint (or, with no URL configured, handed to the same ingest in-process), so the
whole inbound path runs. Replies are read back from the conversation, with the buttons,
lists and delivery ticks WhatsApp would show.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings
from django.utils.translation import gettext as _

from apps.core.exceptions import ApplicationError
from apps.tenants.models import WhatsAppAccount
from apps.whatsapp.sandbox import account_secret, webhook_body
from apps.whatsapp.webhooks import sign, webhook_ingest

from .models import Conversation, Message
from .services import NOTE


class SimulatorUnavailable(ApplicationError):
    code = "simulator_unavailable"


@dataclass(frozen=True)
class CustomerReply:
    """A tap on a button or a list row that the business sent."""

    kind: str  # button_reply | list_reply
    id: str
    title: str


def simulator_account(*, tenant_id: int) -> WhatsAppAccount:
    account = (
        WhatsAppAccount.objects.filter(tenant_id=tenant_id, transport=WhatsAppAccount.Transport.SANDBOX, is_active=True)
        .order_by("pk")
        .first()
    )
    if account is None:
        raise SimulatorUnavailable(
            _(
                "The simulator needs an active sandbox WhatsApp number. "
                "Add one under WhatsApp numbers (transport: Sandbox)."
            )
        )
    return account


def _inbound_value(*, wa_id: str, name: str, text: str, reply: CustomerReply | None) -> tuple[str, dict[str, Any]]:
    wamid = f"wamid.sim.{uuid.uuid4().hex}"
    message: dict[str, Any] = {"from": wa_id, "id": wamid, "timestamp": str(int(time.time()))}
    if reply is None:
        message.update({"type": "text", "text": {"body": text}})
    else:
        tapped = {"id": reply.id, "title": reply.title}
        message.update({"type": "interactive", "interactive": {"type": reply.kind, reply.kind: tapped}})
    value = {"contacts": [{"profile": {"name": name}, "wa_id": wa_id}], "messages": [message]}
    return wamid, value


def simulator_send(
    *, account: WhatsAppAccount, wa_id: str, name: str, text: str = "", reply: CustomerReply | None = None
) -> str:
    """Send a customer message through the webhook endpoint; return its wamid."""
    if not wa_id.isdigit() or not 6 <= len(wa_id) <= 15:
        raise SimulatorUnavailable(_("A WhatsApp id is 6 to 15 digits, with the country code and no +."))
    if reply is None and not text.strip():
        raise SimulatorUnavailable(_("Type a message first."))
    wamid, value = _inbound_value(wa_id=wa_id, name=name, text=text, reply=reply)
    body = webhook_body(account=account, value=value)
    signature = sign(body, account_secret(account))
    url = settings.WHATSAPP_SIMULATOR_URL
    if url:
        response = httpx.post(
            url,
            content=body,
            headers={
                "X-Hub-Signature-256": signature,
                "Content-Type": "application/json",
                "Host": settings.PUBLIC_DOMAIN,
            },
            timeout=10,
        )
        status = response.status_code
    else:
        status = webhook_ingest(body=body, signature_header=signature).status
    if status != 200:
        raise SimulatorUnavailable(_("The webhook endpoint answered %(status)d.") % {"status": status})
    return wamid


def _ticks(message: Message) -> str:
    outbox = message.outbox
    if outbox is None:
        return ""
    if outbox.delivery_status:
        return outbox.delivery_status
    return "failed" if outbox.status == "failed" else ("sent" if outbox.status == "sent" else "pending")


def _rendering(message: Message) -> dict[str, Any]:
    """What WhatsApp would show: text, and for interactive messages their buttons or list rows."""
    payload = message.content.get("payload", {}) if message.direction == Message.Direction.OUTBOUND else {}
    shown: dict[str, Any] = {"text": message.text}
    interactive = payload.get("interactive") if isinstance(payload, dict) else None
    if isinstance(interactive, dict):
        shown["header"] = (interactive.get("header") or {}).get("text", "")
        shown["footer"] = (interactive.get("footer") or {}).get("text", "")
        action = interactive.get("action") or {}
        if interactive.get("type") == "button":
            shown["buttons"] = [b["reply"] for b in action.get("buttons", []) if isinstance(b, dict) and "reply" in b]
        elif interactive.get("type") == "list":
            shown["list"] = {"button": action.get("button", ""), "sections": action.get("sections", [])}
    return shown


def simulator_thread(*, account: WhatsAppAccount, wa_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """The customer's view of their conversation with this number (ticks change, so all of it)."""
    conversation = Conversation.objects.filter(account=account, contact__wa_id=wa_id).order_by("-created").first()
    if conversation is None:
        return []
    latest = (
        Message.objects.filter(conversation=conversation)
        .exclude(type=NOTE)  # agents' internal notes: never sent, so never the customer's to see
        .select_related("outbox")
        .order_by("-sent_at", "-id")
    )
    return [
        {
            "id": message.pk,
            "from_customer": message.direction == Message.Direction.INBOUND,
            "type": message.type,
            "time": message.sent_at.isoformat(),
            "ticks": _ticks(message),
            "error": message.outbox.error_title if message.outbox else "",
            **_rendering(message),
        }
        for message in reversed(latest[:limit])
    ]
