"""The WhatsApp Cloud API (Graph) client: typed requests, typed errors, nothing else."""

from __future__ import annotations

import http.client
import json
import select
import socket
import ssl
import threading
import urllib.request
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings

# Meta error codes worth retrying (with backoff): rate limits and temporary failures.
RETRYABLE_CODES = {4, 80007, 130429, 131000, 131016, 131026, 133004, 2}
PAIR_RATE_LIMIT = 131056  # too many messages to the same user: retry later
WINDOW_CLOSED = 131047


@dataclass
class GraphApiError(Exception):
    status: int
    code: int | None
    title: str
    details: str = ""

    def __str__(self) -> str:
        return f"Graph API error {self.code or self.status}: {self.title} {self.details}".strip()

    @property
    def retryable(self) -> bool:
        if self.status == 429 or self.status >= 500 or self.status == 0:
            return True
        return self.code in RETRYABLE_CODES or self.code == PAIR_RATE_LIMIT


@dataclass(frozen=True)
class MediaInfo:
    url: str
    mime_type: str
    sha256: str
    file_size: int | None


@dataclass(frozen=True)
class PhoneNumberInfo:
    """What Meta says a phone number is, as read with a token."""

    id: str
    display_phone_number: str
    verified_name: str


class WhatsAppClient:
    """One phone number's view of the Graph API. Network errors surface as GraphApiError(status=0)."""

    def __init__(
        self,
        *,
        phone_number_id: str,
        access_token: str,
        base_url: str | None = None,
        version: str | None = None,
        timeout: float | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self.phone_number_id = phone_number_id
        self.base_url = (base_url or settings.WHATSAPP_GRAPH_URL).rstrip("/")
        self.version = version or settings.WHATSAPP_GRAPH_VERSION
        # The timeout goes with each request, so a shared (pooled, keep-alive) client obeys it too.
        self._timeout = timeout or settings.WHATSAPP_GRAPH_TIMEOUT
        self._http = http or httpx.Client(timeout=self._timeout)
        self._headers = {"Authorization": f"Bearer {access_token}"}

    def _url(self, path: str) -> str:
        return f"{self.base_url}/{self.version}/{path.lstrip('/')}"

    def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, url, headers=self._headers, timeout=self._timeout, **kwargs)
        except httpx.HTTPError as exc:
            raise GraphApiError(status=0, code=None, title=f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise _error_from(response)
        return response

    # --- the number itself -----------------------------------------------------------------

    def phone_number_info(self) -> PhoneNumberInfo:
        """GET /{phone-number-id}: answered only for a token of the business that owns the number."""
        params = {"fields": "id,display_phone_number,verified_name"}
        data = self._call("GET", self._url(self.phone_number_id), params=params).json()
        if not isinstance(data, dict) or not data.get("id"):
            raise GraphApiError(status=200, code=None, title="The number response has no id", details=str(data)[:500])
        return PhoneNumberInfo(
            id=str(data["id"]),
            display_phone_number=str(data.get("display_phone_number") or ""),
            verified_name=str(data.get("verified_name") or ""),
        )

    def business_account_numbers(self, waba_id: str) -> set[str]:
        """GET /{waba-id}/phone_numbers: the IDs of the account's numbers (answered only for its token).

        One page of 100: Meta gives an account a handful of numbers (two to start, at most 20
        without a special request).
        """
        data = self._call("GET", self._url(f"{waba_id}/phone_numbers"), params={"fields": "id", "limit": 100}).json()
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise GraphApiError(
                status=200, code=None, title="The numbers response has no data", details=str(data)[:500]
            )
        return {str(item["id"]) for item in data["data"] if isinstance(item, dict) and item.get("id")}

    # --- messages ------------------------------------------------------------------------

    def send(self, payload: dict[str, Any]) -> str:
        """POST /{phone-number-id}/messages; return the new message's wamid."""
        body = {"messaging_product": "whatsapp", **payload}
        return _wamid_from(self._call("POST", self._url(f"{self.phone_number_id}/messages"), json=body).json())

    def mark_read(self, wamid: str) -> None:
        body = {"messaging_product": "whatsapp", "status": "read", "message_id": wamid}
        self._call("POST", self._url(f"{self.phone_number_id}/messages"), json=body)

    # --- media ---------------------------------------------------------------------------

    def media_info(self, media_id: str) -> MediaInfo:
        data = self._call("GET", self._url(media_id), params={"phone_number_id": self.phone_number_id}).json()
        if not isinstance(data, dict) or "url" not in data:
            raise GraphApiError(status=200, code=None, title="The media response has no URL", details=str(data)[:500])
        size = data.get("file_size")
        return MediaInfo(
            url=str(data["url"]),
            mime_type=str(data.get("mime_type", "")),
            sha256=str(data.get("sha256", "")),
            file_size=int(size) if isinstance(size, int | str) and str(size).isdigit() else None,
        )

    def media_upload(self, *, content: bytes, mime_type: str, filename: str) -> str:
        """POST /{phone-number-id}/media (multipart); return the media id to send it by."""
        response = self._call(
            "POST",
            self._url(f"{self.phone_number_id}/media"),
            data={"messaging_product": "whatsapp", "type": mime_type},
            files={"file": (filename, content, mime_type)},
        )
        data = response.json()
        if not isinstance(data, dict) or not data.get("id"):
            raise GraphApiError(status=200, code=None, title="The upload response has no media id", details=str(data))
        return str(data["id"])

    def media_download(self, url: str, *, max_bytes: int) -> bytes:
        """Download a media URL with the bearer token, refusing anything over max_bytes."""
        try:
            with self._http.stream("GET", url, headers=self._headers, timeout=self._timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error_from(response)
                chunks: list[bytes] = []
                total = 0
                for chunk in response.iter_bytes():
                    total += len(chunk)
                    if total > max_bytes:
                        raise MediaTooLarge(max_bytes)
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise GraphApiError(status=0, code=None, title=f"{type(exc).__name__}: {exc}") from exc
        return b"".join(chunks)

    # --- message templates -----------------------------------------------------------------

    def message_templates(self, waba_id: str, *, page_size: int = 100, max_pages: int = 100) -> list[dict[str, Any]]:
        """GET /{waba-id}/message_templates, every page (Meta pages with an `after` cursor)."""
        fields = "id,name,language,status,category,components"
        params: dict[str, str | int] = {"fields": fields, "limit": page_size}
        templates: list[dict[str, Any]] = []
        for _page in range(max_pages):
            data = self._call("GET", self._url(f"{waba_id}/message_templates"), params=params).json()
            if not isinstance(data, dict) or not isinstance(data.get("data"), list):
                raise GraphApiError(
                    status=200, code=None, title="The templates response has no data", details=str(data)
                )
            templates.extend(item for item in data["data"] if isinstance(item, dict))
            paging = data.get("paging")
            paging = paging if isinstance(paging, dict) else {}
            cursors = paging.get("cursors")
            after = cursors.get("after") if isinstance(cursors, dict) else None
            if not paging.get("next") or not after:
                return templates
            params = {"fields": fields, "limit": page_size, "after": str(after)}
        raise GraphApiError(status=200, code=None, title=f"More than {max_pages} pages of templates")


class MediaTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"The file is larger than {limit} bytes.")
        self.limit = limit


def _error_from(response: httpx.Response) -> GraphApiError:
    return _error_parse(response.status_code, response.reason_phrase, response.content)


def _error_parse(status: int, reason: str, content: bytes) -> GraphApiError:
    try:
        parsed = json.loads(content)
        error = parsed.get("error", {}) if isinstance(parsed, dict) else {}
    except ValueError:
        error = {}
    if not isinstance(error, dict):
        error = {}
    data = error.get("error_data")
    code = error.get("code")
    return GraphApiError(
        status=status,
        code=code if isinstance(code, int) else None,
        title=str(error.get("message") or error.get("title") or reason or "HTTP error"),
        details=str(data.get("details", "")) if isinstance(data, dict) else "",
    )


def _wamid_from(data: Any) -> str:
    try:
        return str(data["messages"][0]["id"])
    except (KeyError, IndexError, TypeError) as exc:
        raise GraphApiError(status=200, code=None, title="The response has no message id", details=str(data)) from exc


class GraphSendPool:
    """Message sends over keep-alive connections of the standard library, one per sending thread.

    The outbox's hot path. Measured here against a local server: httpx spends about 0.6 ms of
    CPU per request and http.client about 0.2 ms; at 1,000 messages/s per number that
    difference is most of a core. Everything else (media, mark-as-read) stays on httpx.
    It ignores proxy settings: `graph_send_pool` falls back to httpx when a proxy is set.
    """

    def __init__(self, *, base_url: str, version: str) -> None:
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"Not an http(s) URL: {base_url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = f"{parts.path}/{version}"
        self._tls = ssl.create_default_context() if self._https else None
        self._local = threading.local()

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        # A kept-alive connection the server has since closed reads as ready (EOF): replace it
        # before sending, rather than find out after a POST that may or may not have landed.
        if conn is not None and conn.sock is not None and _readable(conn.sock):
            conn.close()
            conn = None
        if conn is None:
            if self._tls is not None:
                conn = http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self._tls)
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
            self._local.conn = conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def send(self, *, phone_number_id: str, access_token: str, payload: dict[str, Any]) -> str:
        """POST /{phone-number-id}/messages; return the new message's wamid."""
        body = json.dumps({"messaging_product": "whatsapp", **payload}).encode()
        headers = {"Authorization": f"Bearer {access_token}", "Content-Type": "application/json"}
        conn = self._connection(settings.WHATSAPP_GRAPH_TIMEOUT)
        try:
            conn.request("POST", f"{self._prefix}/{phone_number_id}/messages", body=body, headers=headers)
            response = conn.getresponse()
            content = response.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise GraphApiError(status=0, code=None, title=f"{type(exc).__name__}: {exc}") from exc
        if response.status >= 400:
            raise _error_parse(response.status, response.reason, content)
        try:
            data = json.loads(content)
        except ValueError as exc:
            details = str(content[:500])
            raise GraphApiError(status=200, code=None, title="The response is not JSON", details=details) from exc
        return _wamid_from(data)


def _readable(sock: socket.socket) -> bool:
    # poll, not select: select fails on descriptors above 1023, which a busy worker reaches.
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


@dataclass(frozen=True)
class NumberSender:
    """One number's sends through a shared GraphSendPool."""

    pool: GraphSendPool
    phone_number_id: str
    access_token: str

    def send(self, payload: dict[str, Any]) -> str:
        return self.pool.send(phone_number_id=self.phone_number_id, access_token=self.access_token, payload=payload)


@cache
def graph_send_pool(base_url: str, version: str) -> GraphSendPool | None:
    """The process's send pool for this Graph URL; None when a proxy is configured (use httpx)."""
    if urllib.request.getproxies():
        return None
    return GraphSendPool(base_url=base_url, version=version)
