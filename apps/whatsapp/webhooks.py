"""Webhook ingest: verify the signature over the raw bytes, store every item, then acknowledge.

This is the hot path Meta waits on: one SELECT for the numbers' secrets (one more for a
business account's own changes, such as a template's status), one INSERT per item and tenant
(deduplicated by the database), one Celery push. Everything else happens in
`webhook_event_process`, in a worker.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
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
from apps.whatsapp.payloads import PayloadInvalid, entry_account_id, webhook_items

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
_account_routes: dict[str, tuple[float, tuple[_Route, ...]]] = {}
ROUTE_TTL = 30.0  # seconds a number's routing and secret are reused without asking the database
UNKNOWN_ROUTE_TTL = 5.0  # a number just added must not stay "unknown" for long
ROUTES_MAX = 10_000  # cached numbers (or business accounts) per process


def _accounts(numbers: set[str]) -> list[_Route]:
    """The routing (tenant and own app secret) of these numbers, cached briefly per process."""
    now = time.monotonic()
    if len(_routes) > ROUTES_MAX:  # before reading: entries cleared later would be missing below
        _routes.clear()
    missing = {number for number in numbers if number not in _routes or _routes[number][0] < now}
    if missing:
        found = {
            account.phone_number_id: _Route(account.phone_number_id, account.tenant_id, account.app_secret)
            for account in WhatsAppAccount.objects.filter(phone_number_id__in=missing)
        }
        for number in missing:
            route = found.get(number)
            _routes[number] = (now + (ROUTE_TTL if route else UNKNOWN_ROUTE_TTL), route)
    return [route for number in numbers if (route := _routes[number][1]) is not None]


def _business_accounts(waba_ids: set[str]) -> dict[str, tuple[_Route, ...]]:
    """The numbers (tenant and own app secret) in each of these business accounts, cached briefly per process."""
    now = time.monotonic()
    if len(_account_routes) > ROUTES_MAX:
        _account_routes.clear()
    missing = {waba_id for waba_id in waba_ids if waba_id not in _account_routes or _account_routes[waba_id][0] < now}
    if missing:
        found: dict[str, list[_Route]] = {}
        numbers = WhatsAppAccount.objects.filter(waba_id__in=missing).only(
            "waba_id", "phone_number_id", "tenant_id", "app_secret"
        )
        for account in numbers.order_by("pk"):
            route = _Route(account.phone_number_id, account.tenant_id, account.app_secret)
            found.setdefault(account.waba_id, []).append(route)
        for waba_id in missing:
            routes = tuple(found.get(waba_id, ()))
            _account_routes[waba_id] = (now + (ROUTE_TTL if routes else UNKNOWN_ROUTE_TTL), routes)
    return {waba_id: routes for waba_id in waba_ids if (routes := _account_routes[waba_id][1])}


def routes_forget() -> None:
    """Drop the cached routing (after numbers change; tests)."""
    _routes.clear()
    _account_routes.clear()


def _routing_ids(data: Any) -> tuple[set[str], set[str]]:
    """Best-effort read, before the payload is validated, of the numbers it is for and of the
    business accounts whose own changes (no number named) it carries."""
    numbers: set[str] = set()
    waba_ids: set[str] = set()
    entries = data.get("entry") if isinstance(data, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        waba_id = entry_account_id(entry)
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else []:
            value = change.get("value") if isinstance(change, dict) else None
            metadata = value.get("metadata") if isinstance(value, dict) else None
            number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
            if number in (None, "") and waba_id:
                waba_ids.add(waba_id)
            elif isinstance(number, str | int) and not isinstance(number, bool) and len(str(number)) <= 64:
                numbers.add(str(number))
    return numbers, waba_ids


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
    " (received_at, tenant_id, phone_number_id, waba_id, kind, dedup_key, signature, payload, state, attempts,"
    " error, enqueued_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, 0, %s, %s)"
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
        [(now, None, "", "", WebhookEvent.Kind.OTHER, f"b:{digest}", signed_with, json.dumps({"raw": text}),
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

    numbers, waba_ids = _routing_ids(data)
    accounts = _accounts(numbers)
    account_routes = _business_accounts(waba_ids)
    platform_signed = signature_matches(body, signature_header, settings.WHATSAPP_APP_SECRET)
    # A number's own app secret vouches for that number only, and for a business account only
    # if it is the secret of every number in it (see the checks on the items below).
    candidates = {route.phone_number_id: route for route in [*accounts, *itertools.chain(*account_routes.values())]}
    vouched = (
        set()
        if platform_signed
        else {
            number
            for number, route in candidates.items()
            if route.app_secret and signature_matches(body, signature_header, route.app_secret)
        }
    )
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
        # Nor for another tenant's business account (its templates): an account ID is no secret
        # either, and a tenant admin may type any on their own number, so the account is spoken
        # for only if every number in it, in whichever tenant, uses this secret.
        foreign_accounts = sorted(
            waba_id
            for waba_id in {item.waba_id for item in items if item.waba_id}
            if any(route.phone_number_id not in vouched for route in account_routes.get(waba_id, ()))
        )
        if foreign or foreign_accounts:
            _count_bad_signature()
            logger.warning(
                "rejected a webhook signed with a number's own secret that names other numbers %s or accounts %s",
                foreign,
                foreign_accounts,
            )
            extra = {"phone_number_ids": foreign} if foreign else {}
            if foreign_accounts:
                extra["waba_ids"] = foreign_accounts
            return IngestResult(
                401,
                {
                    "code": "signature_invalid",
                    "message": "X-Hub-Signature-256 does not match the app secret of every number in the delivery.",
                    "extra": extra,
                },
            )
    rows = []
    unknown: set[str] = set()
    for item in items:
        targets: list[tuple[int | None, str]]
        if item.waba_id:
            # A business account's own change goes to every tenant with a number in it, as one
            # event each (its dedup key suffixed by the tenant), applied in that tenant's schema.
            tenant_ids = sorted({route.tenant_id for route in account_routes.get(item.waba_id, ())})
            targets = [(tenant_id, f"{item.dedup_key}:{tenant_id}") for tenant_id in tenant_ids]
        elif (tenant_id := tenant_by_number.get(item.phone_number_id)) is not None:
            targets = [(tenant_id, item.dedup_key)]
        else:
            targets = []
        if not targets:
            unknown.add(item.phone_number_id or item.waba_id)
        for tenant_id, dedup_key in targets or [(None, item.dedup_key)]:
            state = WebhookEvent.State.PENDING if tenant_id is not None else WebhookEvent.State.ORPHAN
            rows.append(
                (now, tenant_id, item.phone_number_id, item.waba_id, item.kind, dedup_key, signed_with,
                 json.dumps(item.payload), state, "", now if tenant_id is not None else None)
            )  # fmt: skip
    created = _store(rows)
    if any(tenant_id is None for _id, tenant_id in created):
        logger.warning("stored webhook items for numbers or business accounts no tenant owns: %s", sorted(unknown))
    # Orphans wait for an admin to add the number (or its account ID) and replay them.
    _enqueue([event_id for event_id, tenant_id in created if tenant_id is not None])
    return IngestResult(200, {"received": len(rows), "new": len(created)}, [event_id for event_id, _t in created])
