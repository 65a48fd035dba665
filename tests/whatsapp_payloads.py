"""Webhook payloads as Meta sends them, for tests and benchmarks."""

from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings
from django.test import Client

from apps.whatsapp.webhooks import sign


def delivery(phone_number_id: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "WABA",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "254700000000", "phone_number_id": phone_number_id},
                            **value,
                        },
                    }
                ],
            }
        ],
    }


def message(
    phone_number_id: str,
    wamid: str,
    body: dict[str, Any],
    *,
    from_wa_id: str = "254711000001",
    name: str = "Wanjiru",
    timestamp: int | None = None,
) -> dict[str, Any]:
    msg = {"from": from_wa_id, "id": wamid, "timestamp": str(timestamp or int(time.time())), **body}
    return delivery(
        phone_number_id,
        {"contacts": [{"profile": {"name": name}, "wa_id": from_wa_id}], "messages": [msg]},
    )


def text(phone_number_id: str, wamid: str, text_body: str, **kwargs: Any) -> dict[str, Any]:
    return message(phone_number_id, wamid, {"type": "text", "text": {"body": text_body}}, **kwargs)


def status(
    phone_number_id: str, wamid: str, state: str, *, timestamp: int, errors: list[Any] | None = None
) -> dict[str, Any]:
    item: dict[str, Any] = {"id": wamid, "status": state, "timestamp": str(timestamp), "recipient_id": "254711000001"}
    if errors:
        item["errors"] = errors
    return delivery(phone_number_id, {"statuses": [item]})


def business_account_change(
    waba_id: str, field: str, value: dict[str, Any], *, time_sent: int | None = None
) -> dict[str, Any]:
    """A change of a WhatsApp Business account itself: no phone number, `entry.id` is the account."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": waba_id,
                "time": time_sent if time_sent is not None else int(time.time()),
                "changes": [{"field": field, "value": value}],
            }
        ],
    }


def template_status(
    waba_id: str,
    event: str,
    *,
    template_id: str | int,
    name: str,
    language: str,
    reason: str | None = "NONE",
    time_sent: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    value = {
        "event": event,
        "message_template_id": template_id,
        "message_template_name": name,
        "message_template_language": language,
        "reason": reason,
        **extra,
    }
    return business_account_change(waba_id, "message_template_status_update", value, time_sent=time_sent)


def template_category(
    waba_id: str,
    *,
    template_id: str | int,
    name: str,
    language: str,
    new_category: str,
    time_sent: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    value = {
        "message_template_id": template_id,
        "message_template_name": name,
        "message_template_language": language,
        "new_category": new_category,
        **extra,
    }
    return business_account_change(waba_id, "template_category_update", value, time_sent=time_sent)


def post(payload: dict[str, Any] | bytes, *, secret: str | None = None, signature: str | None = None) -> Any:
    """POST a signed webhook to the public host through Django's test client."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    header = signature if signature is not None else sign(body, secret or settings.WHATSAPP_APP_SECRET)
    return Client(HTTP_HOST="localhost").post(
        "/webhooks/whatsapp/", data=body, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=header
    )
