"""The WhatsApp Cloud API (Graph) client: typed requests, typed errors, nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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

    # --- messages ------------------------------------------------------------------------

    def send(self, payload: dict[str, Any]) -> str:
        """POST /{phone-number-id}/messages; return the new message's wamid."""
        body = {"messaging_product": "whatsapp", **payload}
        data = self._call("POST", self._url(f"{self.phone_number_id}/messages"), json=body).json()
        try:
            return str(data["messages"][0]["id"])
        except (KeyError, IndexError, TypeError) as exc:
            raise GraphApiError(
                status=200, code=None, title="The response has no message id", details=str(data)
            ) from exc

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


class MediaTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"The file is larger than {limit} bytes.")
        self.limit = limit


def _error_from(response: httpx.Response) -> GraphApiError:
    try:
        error = response.json().get("error", {})
    except ValueError:
        error = {}
    if not isinstance(error, dict):
        error = {}
    data = error.get("error_data")
    code = error.get("code")
    return GraphApiError(
        status=response.status_code,
        code=code if isinstance(code, int) else None,
        title=str(error.get("message") or error.get("title") or response.reason_phrase or "HTTP error"),
        details=str(data.get("details", "")) if isinstance(data, dict) else "",
    )
