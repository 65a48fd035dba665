"""The sandbox transport: records sends instead of calling Meta, and plays Meta's part.

A sandbox number's outgoing messages are marked sent with a made-up wamid; then
"delivered" and "read" statuses come back through the real webhook ingest, signed like
Meta's, so the whole pipeline runs in demos and development without a Meta account.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings
from django.db import transaction

from apps.tenants.models import WhatsAppAccount
from apps.whatsapp.models import OutboxMessage


def webhook_body(*, account: WhatsAppAccount, value: dict[str, Any]) -> bytes:
    """A webhook delivery as Meta would POST it, for one change value of this number."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": account.display_phone_number, "phone_number_id": account.phone_number_id},
        **value,
    }
    body = {"object": "whatsapp_business_account", "entry": [{"id": account.waba_id or "sandbox",
            "changes": [{"field": "messages", "value": value}]}]}  # fmt: skip
    return json.dumps(body, separators=(",", ":")).encode()


def status_value(*, wamid: str, status: str, recipient: str) -> dict[str, Any]:
    return {
        "statuses": [{"id": wamid, "status": status, "timestamp": str(int(time.time())), "recipient_id": recipient}]
    }


def account_secret(account: WhatsAppAccount) -> str:
    return account.app_secret or settings.WHATSAPP_APP_SECRET


def sandbox_statuses_schedule(*, account: WhatsAppAccount, outbox: OutboxMessage) -> None:
    from apps.whatsapp.tasks import sandbox_status_task

    def schedule() -> None:
        for status, delay in (("sent", 0.2), ("delivered", 1.0), ("read", 3.0)):
            sandbox_status_task.apply_async(
                args=(account.pk, outbox.wamid, outbox.to_wa_id, status),
                countdown=delay,
                headers={"_schema_name": "public"},
            )

    transaction.on_commit(schedule)


def sandbox_status_send(*, account_id: int, wamid: str, recipient: str, status: str) -> None:
    from apps.whatsapp.webhooks import sign, webhook_ingest

    account = WhatsAppAccount.objects.get(pk=account_id)
    body = webhook_body(account=account, value=status_value(wamid=wamid, status=status, recipient=recipient))
    webhook_ingest(body=body, signature_header=sign(body, account_secret(account)))
