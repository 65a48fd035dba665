"""The webhook endpoint as a lean ASGI app, in front of Django's stack.

Meta waits on this path for every message; under ASGI each Django middleware costs a
thread hop, so the webhook skips them: one hop to run `webhook_ingest` in a thread.
The same service also backs a plain Django view (`views.WhatsAppWebhookView`) for WSGI.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from apps.whatsapp.webhooks import IngestResult, verify_token_matches, webhook_ingest

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/whatsapp/"

Scope = dict[str, Any]


async def _respond(send: Any, status: int, body: bytes, content_type: bytes = b"application/json") -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _json(status: int, data: dict[str, Any]) -> tuple[int, bytes]:
    return status, json.dumps(data).encode()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def _read_body(scope: Scope, receive: Any, limit: int) -> bytes | None:
    declared = _header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def webhook_verify_response(query: dict[str, list[str]]) -> tuple[int, bytes, bytes]:
    mode = (query.get("hub.mode") or [""])[0]
    token = (query.get("hub.verify_token") or [""])[0]
    challenge = (query.get("hub.challenge") or [""])[0]
    if mode == "subscribe" and challenge and verify_token_matches(token):
        return 200, challenge.encode(), b"text/plain"
    return 403, b'{"code": "verify_token_invalid", "message": "Verification failed."}', b"application/json"


def _connection_check() -> None:
    """Each worker thread keeps its connection (no per-request SET search_path or pool round
    trip); one that has seen a database error is replaced if it is no longer usable."""
    if connection.errors_occurred:
        connection.close_if_unusable_or_obsolete()


def _in_thread_verify(query: dict[str, list[str]]) -> tuple[int, bytes, bytes]:
    _connection_check()
    return webhook_verify_response(query)


def _in_thread_ingest(*, body: bytes, signature_header: str | None) -> IngestResult:
    _connection_check()
    return webhook_ingest(body=body, signature_header=signature_header)


_verify = sync_to_async(_in_thread_verify, thread_sensitive=False)
_ingest = sync_to_async(_in_thread_ingest, thread_sensitive=False)


async def whatsapp_webhook_app(scope: Scope, receive: Any, send: Any) -> None:
    method = scope.get("method", "GET")
    if method == "GET":
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        status, body, content_type = await _verify(query)
        await _respond(send, status, body, content_type)
        return
    if method != "POST":
        await _respond(send, *_json(405, {"code": "method_not_allowed", "message": "Use GET or POST."}))
        return
    received = await _read_body(scope, receive, settings.WHATSAPP_WEBHOOK_MAX_BYTES)
    if received is None:
        limit = settings.WHATSAPP_WEBHOOK_MAX_BYTES
        await _respond(send, *_json(413, {"code": "payload_too_large", "message": f"The limit is {limit} bytes."}))
        return
    try:
        result = await _ingest(body=received, signature_header=_header(scope, b"x-hub-signature-256"))
    except Exception:
        # Nothing was stored: a 5xx makes Meta deliver it again. Never acknowledge a loss.
        logger.exception("storing a webhook failed; answering 503 so that Meta retries")
        await _respond(send, *_json(503, {"code": "storage_unavailable", "message": "Try again later."}))
        return
    await _respond(send, *_json(result.status, result.body))


def is_webhook_request(scope: Scope) -> bool:
    if scope.get("path") != WEBHOOK_PATH:
        return False
    host = (_header(scope, b"host") or "").split(":")[0].lower()
    return host == settings.PUBLIC_DOMAIN
