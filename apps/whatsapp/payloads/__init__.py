"""Meta webhook payloads, parsed into typed objects.

Parsing is total: any JSON value gives either typed objects or a `PayloadInvalid`
naming what is wrong. Unknown message types are kept as `unsupported`, never dropped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apps.core.exceptions import ApplicationError

MESSAGE_TYPES = {
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "button",
    "reaction",
    "order",
    "system",
}
MEDIA_TYPES = {"image", "audio", "video", "document", "sticker"}
STATUS_VALUES = {"sent", "delivered", "read", "failed", "deleted", "warning"}
MAX_TEXT = 65_536  # far above WhatsApp's own limits: anything longer is not from Meta


class PayloadInvalid(ApplicationError):
    code = "payload_invalid"


@dataclass(frozen=True)
class WhatsAppError:
    code: int | None
    title: str
    message: str = ""
    details: str = ""


@dataclass(frozen=True)
class MediaRef:
    media_id: str
    mime_type: str = ""
    sha256: str = ""
    caption: str = ""
    filename: str = ""
    voice: bool = False
    animated: bool = False


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    name: str = ""
    address: str = ""
    url: str = ""


@dataclass(frozen=True)
class Reply:
    """A tap on an interactive button or list row, or on a template quick-reply button."""

    kind: str  # button_reply | list_reply | template_button | nfm_reply
    id: str
    title: str
    description: str = ""


@dataclass(frozen=True)
class Reaction:
    message_wamid: str
    emoji: str  # empty when the customer removed the reaction


@dataclass(frozen=True)
class InboundMessage:
    wamid: str
    from_wa_id: str
    timestamp: datetime
    type: str  # one of MESSAGE_TYPES, or "unsupported"
    profile_name: str = ""
    text: str = ""
    media: MediaRef | None = None
    location: Location | None = None
    contacts: list[dict[str, Any]] = field(default_factory=list)
    reply: Reply | None = None
    reaction: Reaction | None = None
    referral: dict[str, Any] | None = None
    context_wamid: str = ""
    errors: list[WhatsAppError] = field(default_factory=list)

    @property
    def preview(self) -> str:
        """A one-line text for lists, notifications and analysis."""
        if self.text:
            return self.text
        if self.reply is not None:
            return self.reply.title
        if self.media is not None:
            return self.media.caption or f"[{self.type}]"
        if self.location is not None:
            return self.location.name or f"[location {self.location.latitude:.4f},{self.location.longitude:.4f}]"
        if self.reaction is not None:
            return self.reaction.emoji or "[reaction removed]"
        return f"[{self.type}]"


@dataclass(frozen=True)
class StatusUpdate:
    wamid: str
    status: str
    timestamp: datetime
    recipient_wa_id: str = ""
    errors: list[WhatsAppError] = field(default_factory=list)


@dataclass(frozen=True)
class WebhookItem:
    """One unit of work split out of a webhook delivery, stored as one WebhookEvent (or one per tenant)."""

    kind: str  # message | status | account | other
    phone_number_id: str
    dedup_key: str
    payload: dict[str, Any]
    waba_id: str = ""  # for kind "account": the business account whose change it is


# --- helpers ------------------------------------------------------------------------------


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadInvalid(f"{where} must be an object", extra={"where": where})
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadInvalid(f"{where} must be a list", extra={"where": where})
    return value


def _str(value: Any, where: str, *, required: bool = False, limit: int = MAX_TEXT) -> str:
    if value is None:
        if required:
            raise PayloadInvalid(f"{where} is missing", extra={"where": where})
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PayloadInvalid(f"{where} must be a string", extra={"where": where})
    text = str(value)
    if required and not text:
        raise PayloadInvalid(f"{where} is empty", extra={"where": where})
    if len(text) > limit:
        raise PayloadInvalid(f"{where} is longer than {limit} characters", extra={"where": where})
    return text


def _timestamp(value: Any, where: str) -> datetime:
    raw = _str(value, where, required=True, limit=20)
    try:
        seconds = int(raw)
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise PayloadInvalid(f"{where} is not a Unix timestamp", extra={"where": where}) from exc


def _errors(value: Any, where: str) -> list[WhatsAppError]:
    errors = []
    for i, item in enumerate(_list(value, where)):
        error = _obj(item, f"{where}[{i}]")
        code = error.get("code")
        data = error.get("error_data")
        details = data.get("details") if isinstance(data, dict) else None
        errors.append(
            WhatsAppError(
                code=code if isinstance(code, int) and not isinstance(code, bool) else None,
                title=_str(error.get("title"), f"{where}[{i}].title", limit=1000),
                message=_str(error.get("message"), f"{where}[{i}].message", limit=1000),
                details=_str(details, f"{where}[{i}].details", limit=2000),
            )
        )
    return errors


# --- splitting a delivery -----------------------------------------------------------------


def entry_account_id(entry: Any) -> str:
    """The WhatsApp Business account an entry is about (`entry.id`), or "" when it names none usable."""
    value = entry.get("id") if isinstance(entry, dict) else None
    if isinstance(value, bool) or not isinstance(value, str | int) or not 0 < len(str(value)) <= 64:
        return ""
    return str(value)


def webhook_items(body: Any) -> list[WebhookItem]:
    """Split a webhook delivery into items: one per message, one per status, one per other change.

    A change that names no phone number (`metadata.phone_number_id`) but comes from a business
    account (`entry.id`) is that account's own change (a template's status): kind "account".
    """
    root = _obj(body, "body")
    items: list[WebhookItem] = []
    for e, entry in enumerate(_list(root.get("entry"), "entry")):
        entry_obj = _obj(entry, f"entry[{e}]")
        waba_id = entry_account_id(entry_obj)
        for c, change in enumerate(_list(entry_obj.get("changes"), f"entry[{e}].changes")):
            change_obj = _obj(change, f"entry[{e}].changes[{c}]")
            where = f"entry[{e}].changes[{c}].value"
            value = _obj(change_obj.get("value", {}), where)
            field_name = _str(change_obj.get("field"), f"entry[{e}].changes[{c}].field", limit=100)
            raw_metadata = value.get("metadata")
            metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
            phone_number_id = _str(metadata.get("phone_number_id"), f"{where}.metadata.phone_number_id", limit=64)
            base = {"field": field_name, "metadata": metadata}
            messages = _list(value.get("messages"), f"{where}.messages")
            statuses = _list(value.get("statuses"), f"{where}.statuses")
            for m, message in enumerate(messages):
                message_obj = _obj(message, f"{where}.messages[{m}]")
                wamid = _str(message_obj.get("id"), f"{where}.messages[{m}].id", required=True, limit=200)
                payload = {**base, "contacts": value.get("contacts", []), "message": message_obj}
                items.append(WebhookItem("message", phone_number_id, f"m:{wamid}", payload))
            for s, status in enumerate(statuses):
                status_obj = _obj(status, f"{where}.statuses[{s}]")
                wamid = _str(status_obj.get("id"), f"{where}.statuses[{s}].id", required=True, limit=200)
                state = _str(status_obj.get("status"), f"{where}.statuses[{s}].status", required=True, limit=20)
                stamp = _str(status_obj.get("timestamp"), f"{where}.statuses[{s}].timestamp", limit=20)
                payload = {**base, "status": status_obj}
                items.append(WebhookItem("status", phone_number_id, f"s:{wamid}:{state}:{stamp}", payload))
            if messages or statuses:
                continue
            if not phone_number_id and waba_id:
                # Meta's time is part of the key: a template paused, reinstated and paused again
                # for the same reason sends the same value twice, and the second is no redelivery.
                payload = {"field": field_name, "waba_id": waba_id, "time": entry_obj.get("time"), "value": value}
                digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
                items.append(WebhookItem("account", "", f"w:{digest}", payload, waba_id=waba_id))
                continue
            payload = {**base, "value": value}
            digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
            items.append(WebhookItem("other", phone_number_id, f"b:{digest}", payload))
    return items


# --- typed objects from stored items ------------------------------------------------------


def _media(message: dict[str, Any], kind: str) -> MediaRef:
    body = _obj(message.get(kind), f"message.{kind}")
    return MediaRef(
        media_id=_str(body.get("id"), f"message.{kind}.id", required=True, limit=200),
        mime_type=_str(body.get("mime_type"), f"message.{kind}.mime_type", limit=200),
        sha256=_str(body.get("sha256"), f"message.{kind}.sha256", limit=200),
        caption=_str(body.get("caption"), f"message.{kind}.caption"),
        filename=_str(body.get("filename"), f"message.{kind}.filename", limit=500),
        voice=body.get("voice") is True,
        animated=body.get("animated") is True,
    )


def _float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PayloadInvalid(f"{where} must be a number", extra={"where": where})
    try:
        number = float(value)
    except ValueError as exc:
        raise PayloadInvalid(f"{where} must be a number", extra={"where": where}) from exc
    if number != number or number in (float("inf"), float("-inf")):
        raise PayloadInvalid(f"{where} must be a finite number", extra={"where": where})
    return number


def _profile_name(payload: dict[str, Any], wa_id: str) -> str:
    for contact in payload.get("contacts") or []:
        if isinstance(contact, dict) and str(contact.get("wa_id", "")) == wa_id:
            profile = contact.get("profile")
            if isinstance(profile, dict):
                return _str(profile.get("name"), "contacts[].profile.name", limit=500)
    return ""


def parse_message(payload: dict[str, Any]) -> InboundMessage:
    message = _obj(payload.get("message"), "message")
    wamid = _str(message.get("id"), "message.id", required=True, limit=200)
    from_wa_id = _str(message.get("from"), "message.from", required=True, limit=32)
    kind = _str(message.get("type"), "message.type", limit=50) or "unsupported"
    context = message.get("context")
    fields: dict[str, Any] = {
        "wamid": wamid,
        "from_wa_id": from_wa_id,
        "timestamp": _timestamp(message.get("timestamp"), "message.timestamp"),
        "type": kind if kind in MESSAGE_TYPES else "unsupported",
        "profile_name": _profile_name(payload, from_wa_id),
        "context_wamid": _str(
            context.get("id") if isinstance(context, dict) else None, "message.context.id", limit=200
        ),
        "errors": _errors(message.get("errors"), "message.errors"),
    }
    if isinstance(message.get("referral"), dict):
        fields["referral"] = message["referral"]
    if kind == "text":
        fields["text"] = _str(_obj(message.get("text"), "message.text").get("body"), "message.text.body")
    elif kind in MEDIA_TYPES:
        fields["media"] = _media(message, kind)
    elif kind == "location":
        loc = _obj(message.get("location"), "message.location")
        fields["location"] = Location(
            latitude=_float(loc.get("latitude"), "message.location.latitude"),
            longitude=_float(loc.get("longitude"), "message.location.longitude"),
            name=_str(loc.get("name"), "message.location.name", limit=1000),
            address=_str(loc.get("address"), "message.location.address", limit=1000),
            url=_str(loc.get("url"), "message.location.url", limit=2000),
        )
    elif kind == "contacts":
        fields["contacts"] = [_obj(c, "message.contacts[]") for c in _list(message.get("contacts"), "message.contacts")]
    elif kind == "interactive":
        interactive = _obj(message.get("interactive"), "message.interactive")
        reply_kind = _str(interactive.get("type"), "message.interactive.type", limit=50)
        reply = _obj(interactive.get(reply_kind, {}), f"message.interactive.{reply_kind}")
        fields["reply"] = Reply(
            kind=reply_kind,
            id=_str(reply.get("id"), f"message.interactive.{reply_kind}.id", limit=1000),
            title=_str(reply.get("title"), f"message.interactive.{reply_kind}.title", limit=1000),
            description=_str(reply.get("description"), f"message.interactive.{reply_kind}.description", limit=1000),
        )
    elif kind == "button":
        button = _obj(message.get("button"), "message.button")
        fields["reply"] = Reply(
            kind="template_button",
            id=_str(button.get("payload"), "message.button.payload", limit=1000),
            title=_str(button.get("text"), "message.button.text", limit=1000),
        )
    elif kind == "reaction":
        reaction = _obj(message.get("reaction"), "message.reaction")
        fields["reaction"] = Reaction(
            message_wamid=_str(reaction.get("message_id"), "message.reaction.message_id", limit=200),
            emoji=_str(reaction.get("emoji"), "message.reaction.emoji", limit=50),
        )
    elif kind == "system":
        system = message.get("system")
        fields["text"] = _str(system.get("body"), "message.system.body") if isinstance(system, dict) else ""
    return InboundMessage(**fields)


def parse_status(payload: dict[str, Any]) -> StatusUpdate:
    status = _obj(payload.get("status"), "status")
    value = _str(status.get("status"), "status.status", required=True, limit=20)
    if value not in STATUS_VALUES:
        raise PayloadInvalid(f"status.status {value!r} is not a known status", extra={"status": value})
    return StatusUpdate(
        wamid=_str(status.get("id"), "status.id", required=True, limit=200),
        status=value,
        timestamp=_timestamp(status.get("timestamp"), "status.timestamp"),
        recipient_wa_id=_str(status.get("recipient_id"), "status.recipient_id", limit=32),
        errors=_errors(status.get("errors"), "status.errors"),
    )
