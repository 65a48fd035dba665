"""A WhatsApp Business account's own changes (no phone number): its templates' status and category."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apps.whatsapp.payloads import PayloadInvalid, _obj, _str, _timestamp


@dataclass(frozen=True)
class TemplateStatusUpdate:
    """message_template_status_update: what happened to one template of a business account."""

    waba_id: str
    event: str  # APPROVED, REJECTED, PAUSED, FLAGGED, REINSTATED, PENDING_DELETION, ...
    template_id: str
    name: str
    language: str
    reason: str  # Meta's reason and explanations, for the admin; "" when Meta gives none
    sent_at: datetime | None  # entry.time: when Meta sent it


@dataclass(frozen=True)
class TemplateCategoryUpdate:
    """template_category_update: the category a template of a business account is in now."""

    waba_id: str
    template_id: str
    name: str
    language: str
    category: str
    sent_at: datetime | None


# Meta's explanations beside the reason code: a pause's title and text, a rejection's details.
_DETAILS = (
    ("other_info", "title"),
    ("other_info", "description"),
    ("rejection_info", "reason"),
    ("rejection_info", "recommendation"),
)


def _template_ref(payload: dict[str, Any]) -> tuple[dict[str, Any], str, str, str, datetime | None]:
    """The change's value, and the template it names (id, name, language), and when Meta sent it."""
    value = _obj(payload.get("value"), "value")
    template_id = _str(value.get("message_template_id"), "value.message_template_id", limit=64)
    name = _str(value.get("message_template_name"), "value.message_template_name", limit=512)
    language = _str(value.get("message_template_language"), "value.message_template_language", limit=15)
    if not template_id and not (name and language):
        raise PayloadInvalid("value names no template (neither its id nor its name and language)")
    sent = payload.get("time")
    sent_at = _timestamp(sent, "time") if sent is not None else None
    return value, template_id, name, language, sent_at


def parse_template_status(payload: dict[str, Any]) -> TemplateStatusUpdate:
    value, template_id, name, language, sent_at = _template_ref(payload)
    event = _str(value.get("event"), "value.event", required=True, limit=32).upper()
    details: list[str] = []
    reason = _str(value.get("reason"), "value.reason", limit=200)
    if reason.upper() not in ("", "NONE"):
        details.append(reason)
    for group, key in _DETAILS:
        info = value.get(group)
        text = _str(info.get(key), f"value.{group}.{key}", limit=2000) if isinstance(info, dict) else ""
        if text:
            details.append(text)
    disable = value.get("disable_info")
    if isinstance(disable, dict) and disable.get("disable_date") is not None:
        date = _timestamp(disable.get("disable_date"), "value.disable_info.disable_date")
        details.append(f"disable_date {date.date().isoformat()}")
    return TemplateStatusUpdate(
        waba_id=_str(payload.get("waba_id"), "waba_id", required=True, limit=64),
        event=event,
        template_id=template_id,
        name=name,
        language=language,
        reason=" — ".join(details),
        sent_at=sent_at,
    )


def parse_template_category(payload: dict[str, Any]) -> TemplateCategoryUpdate:
    value, template_id, name, language, sent_at = _template_ref(payload)
    # In Meta's notice a day ahead, new_category is still the current category (correct_category
    # is the one to come); after the change it is the new one. Either way it is the category now.
    category = _str(value.get("new_category"), "value.new_category", required=True, limit=32).upper()
    return TemplateCategoryUpdate(
        waba_id=_str(payload.get("waba_id"), "waba_id", required=True, limit=64),
        template_id=template_id,
        name=name,
        language=language,
        category=category,
        sent_at=sent_at,
    )
