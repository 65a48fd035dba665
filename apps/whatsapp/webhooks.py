"""Webhook ingest: verify the signature over the raw bytes, store every item, then acknowledge.

This is the hot path Meta waits on: one SELECT for the numbers' secrets, one INSERT per
item (deduplicated by the database), one Celery push. Everything else happens in
`webhook_event_process`, in a worker.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.core.tenancy import use_public_schema
from apps.core.text import storable_text
from apps.tenants.models import WebhookEvent, WhatsAppAccount
from apps.whatsapp.payloads import PayloadInvalid, webhook_items

logger = logging.getLogger(__name__)

BAD_SIGNATURE_COUNTER = "imaradesk:whatsapp:webhook:bad_signature"


@dataclass(frozen=True)
class IngestResult:
    status: int
    body: dict[str, Any]
    created: list[int] = field(default_factory=list)


def signature_matches(body: bytes, header: str | None, secret: str) -> bool:
    """Check X-Hub-Signature-256 ("sha256=<hex>") over the exact bytes received, in constant time."""
    if not header or not secret or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[len("sha256=") :].strip().lower())


def sign(body: bytes, secret: str) -> str:
    """The header value Meta would send for this body (simulator, tests, benchmarks)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_token_matches(token: str) -> bool:
    """The GET handshake's token: the platform's, or one a number brought with its own Meta app."""
    if not token:
        return False
    if hmac.compare_digest(token, settings.WHATSAPP_VERIFY_TOKEN):
        return True
    use_public_schema()
    own = WhatsAppAccount.objects.exclude(verify_token="").values_list("verify_token", flat=True)
    return any(hmac.compare_digest(token, candidate) for candidate in own)


@dataclass(frozen=True)
class _Route:
    phone_number_id: str
    tenant_id: int
    app_secret: str


_routes: dict[str, tuple[float, _Route | None]] = {}
ROUTE_TTL = 30.0  # seconds a number's routing and secret are reused without asking the database
UNKNOWN_ROUTE_TTL = 5.0  # a number just added must not stay "unknown" for long


def _accounts(numbers: set[str]) -> list[_Route]:
    """The routing (tenant and own app secret) of these numbers, cached briefly per process."""
    now = time.monotonic()
    missing = {number for number in numbers if number not in _routes or _routes[number][0] < now}
    if missing:
        found = {
            account.phone_number_id: _Route(account.phone_number_id, account.tenant_id, account.app_secret)
            for account in WhatsAppAccount.objects.filter(phone_number_id__in=missing)
        }
        if len(_routes) > 10_000:
            _routes.clear()
        for number in missing:
            route = found.get(number)
            _routes[number] = (now + (ROUTE_TTL if route else UNKNOWN_ROUTE_TTL), route)
    return [route for number in numbers if (route := _routes[number][1]) is not None]


def routes_forget() -> None:
    """Drop the cached routing (after numbers change; tests)."""
    _routes.clear()


def _phone_number_ids(data: Any) -> set[str]:
    """Best-effort read of the numbers a payload is for, before it is validated."""
    ids: set[str] = set()
    entries = data.get("entry") if isinstance(data, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else []:
            value = change.get("value") if isinstance(change, dict) else None
            metadata = value.get("metadata") if isinstance(value, dict) else None
            number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
            if isinstance(number, str | int) and not isinstance(number, bool) and len(str(number)) <= 64:
                ids.add(str(number))
    return ids


def _storable(value: Any) -> Any:
    """Every string of a decoded payload made storable (`storable_text`), so such a payload is stored, not refused."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_storable(item) for item in value]
    return value


def _count_bad_signature() -> None:
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)
        client.incr(BAD_SIGNATURE_COUNTER)
    except redis.RedisError:
        logger.warning("could not count a bad webhook signature in Redis")


_INSERT = (
    "INSERT INTO tenants_webhookevent"
    " (received_at, tenant_id, phone_number_id, kind, dedup_key, signature, payload, state, attempts, error,"
    " enqueued_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, 0, %s, %s)"
    " ON CONFLICT (dedup_key) DO NOTHING RETURNING id"
)


def _store(rows: list[tuple[Any, ...]]) -> list[tuple[int, Any]]:
    """Insert the rows that are new; return (id, tenant_id) of each one inserted.

    No transaction: each row stands alone (deduplicated by the database), and if a later
    one fails the whole delivery is answered 5xx and Meta sends it again.
    """
    created: list[tuple[int, Any]] = []
    with connection.cursor() as cursor:
        for row in rows:
            cursor.execute(_INSERT, row)
            found = cursor.fetchone()
            if found is not None:
                created.append((int(found[0]), row[1]))
    return created


def _record_invalid(*, body: bytes, signed_with: str, error: str, now: Any) -> None:
    digest = hashlib.sha256(body).hexdigest()
    text = storable_text(body[:20_000].decode("utf-8", errors="replace"))
    _store(
        [(now, None, "", WebhookEvent.Kind.OTHER, f"b:{digest}", signed_with, json.dumps({"raw": text}),
          WebhookEvent.State.FAILED, error, None)]
    )  # fmt: skip


def _enqueue(event_ids: list[int]) -> None:
    from apps.whatsapp.tasks import webhook_event_process_task

    for event_id in event_ids:
        try:
            webhook_event_process_task.apply_async(args=(event_id,))
        except Exception:  # the event is stored: the sweeper will enqueue it again
            logger.exception("could not enqueue webhook event %s; the sweeper will retry", event_id)


def webhook_ingest(*, body: bytes, signature_header: str | None) -> IngestResult:
    """Verify, store and enqueue one webhook delivery. Raises only when storing failed (-> 5xx)."""
    use_public_schema()
    now = timezone.now()
    try:
        data: Any = _storable(json.loads(body))
    except (UnicodeDecodeError, ValueError, RecursionError):
        data = None

    numbers = _phone_number_ids(data)
    accounts = _accounts(numbers)
    platform_signed = signature_matches(body, signature_header, settings.WHATSAPP_APP_SECRET)
    # A number's own app secret vouches for that number only (see the check on the items below).
    vouched = {
        account.phone_number_id
        for account in accounts
        if account.app_secret and signature_matches(body, signature_header, account.app_secret)
    }
    signed_with = "platform" if platform_signed else "account" if vouched else ""
    if not signed_with:
        _count_bad_signature()
        logger.warning("rejected a webhook with a missing or wrong signature (%d bytes)", len(body))
        return IngestResult(401, {"code": "signature_invalid", "message": "X-Hub-Signature-256 does not match."})

    if data is None:
        _record_invalid(body=body, signed_with=signed_with, error="The body is not JSON.", now=now)
        return IngestResult(400, {"code": "payload_invalid", "message": "The body is not JSON."})
    try:
        items = webhook_items(data)
    except PayloadInvalid as exc:
        _record_invalid(body=body, signed_with=signed_with, error=exc.message, now=now)
        return IngestResult(400, {"code": exc.code, "message": exc.message})

    tenant_by_number = {account.phone_number_id: account.tenant_id for account in accounts}
    if not platform_signed:
        # Signed with one tenant's own app secret, the delivery must not speak for another
        # tenant's number: that secret is in that tenant admin's hands, so it could forge
        # messages "to" any number whose id it knows.
        foreign = sorted(({item.phone_number_id for item in items} & set(tenant_by_number)) - vouched)
        if foreign:
            _count_bad_signature()
            logger.warning("rejected a webhook signed with a number's own secret that names other numbers: %s", foreign)
            return IngestResult(
                401,
                {
                    "code": "signature_invalid",
                    "message": "X-Hub-Signature-256 does not match the app secret of every number in the delivery.",
                    "extra": {"phone_number_ids": foreign},
                },
            )
    rows = []
    for item in items:
        tenant_id = tenant_by_number.get(item.phone_number_id)
        state = WebhookEvent.State.PENDING if tenant_id is not None else WebhookEvent.State.ORPHAN
        rows.append(
            (now, tenant_id, item.phone_number_id, item.kind, item.dedup_key, signed_with,
             json.dumps(item.payload), state, "", now if tenant_id is not None else None)
        )  # fmt: skip
    created = _store(rows)
    if any(tenant_id is None for _id, tenant_id in created):
        logger.warning("stored webhook items for numbers no tenant owns: %s", sorted(numbers))
    # Orphans wait for an admin to add the number and replay them.
    _enqueue([event_id for event_id, tenant_id in created if tenant_id is not None])
    return IngestResult(200, {"received": len(rows), "new": len(created)}, [event_id for event_id, _t in created])
