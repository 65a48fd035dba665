"""Outbound HTTP for the API Call node, safe against server-side request forgery.

A flow's author chooses the URL, so the platform must not let it reach the tenant's own
network: every hop (the first request and each redirect) resolves the host, refuses any
address that is not globally routable (private, loopback, link-local, multicast, reserved,
cloud metadata) and then connects to the very IP it checked, so a DNS answer that changes
between the check and the connect (DNS rebinding) cannot slip through.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from django.conf import settings

from apps.flows.ports import HttpResponse, PortError

MAX_REDIRECTS = 3
MAX_RESPONSE_BYTES = 256 * 1024
TIMEOUT_SECONDS = 5.0
# Metadata endpoints that some clouds serve from otherwise unremarkable addresses.
_METADATA = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("169.254.170.2"),
    ipaddress.ip_address("100.100.100.200"),
    ipaddress.ip_address("fd00:ec2::254"),
}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressRefused(PortError):
    """The URL leads somewhere a flow may not go."""


def address_refused(ip: IPAddress) -> str:
    """Why a flow may not connect to this address ('' when it may)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA:
        return "cloud metadata address"
    if ip.is_loopback:
        return "" if getattr(settings, "FLOWS_EGRESS_ALLOW_LOOPBACK", False) else "loopback address"
    if ip.is_multicast:
        return "multicast address"
    if ip.is_link_local:
        return "link-local address"
    if ip.is_private:
        return "private address"
    if not ip.is_global or ip.is_reserved or ip.is_unspecified:
        return "non-public address"
    return ""


def _resolve(host: str, port: int) -> IPAddress:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise PortError(f"cannot resolve {host}: {exc}") from exc
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise PortError(f"cannot resolve {host}")
    # Every answer must be safe: otherwise the connect could pick the unsafe one.
    for ip in addresses:
        reason = address_refused(ip)
        if reason:
            raise EgressRefused(f"{host} resolves to {ip}, a {reason}")
    return addresses[0]


def _pinned(url: str) -> tuple[str, str, str]:
    """The URL rewritten to the checked IP, the Host header and the TLS server name."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EgressRefused(f"unsupported URL {url!r}")
    if parts.username or parts.password:
        raise EgressRefused("credentials in the URL are not allowed")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    ip = _resolve(parts.hostname, port)
    literal = f"[{ip}]" if isinstance(ip, ipaddress.IPv6Address) else str(ip)
    netloc = f"{literal}:{port}"
    host_header = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    pinned = parts._replace(netloc=netloc).geturl()
    return pinned, host_header, parts.hostname


def egress_request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: str | None = None,
    timeout: float = TIMEOUT_SECONDS,
    max_bytes: int = MAX_RESPONSE_BYTES,
) -> HttpResponse:
    """Send one request for a flow; follow up to three redirects, each checked like the first."""
    sent_headers = {k: v for k, v in (headers or {}).items() if k.lower() not in ("host", "content-length")}
    with httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            pinned, host_header, server_name = _pinned(url)
            request = client.build_request(
                method,
                pinned,
                headers={**sent_headers, "Host": host_header},
                content=body.encode() if body is not None else None,
                extensions={"sni_hostname": server_name},
            )
            try:
                response = client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise PortError(f"{type(exc).__name__}: {exc}") from exc
            try:
                if response.is_redirect and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    if response.status_code in (301, 302, 303):
                        method, body = "GET", None
                    continue
                data = bytearray()
                try:
                    for chunk in response.iter_bytes():
                        data.extend(chunk)
                        if len(data) > max_bytes:
                            raise PortError(f"the response is larger than {max_bytes} bytes")
                except httpx.HTTPError as exc:
                    raise PortError(f"{type(exc).__name__}: {exc}") from exc
            finally:
                response.close()
            return HttpResponse(
                status=response.status_code,
                body=_decoded(bytes(data), response.headers.get("content-type", "")),
                headers={k.lower(): v for k, v in response.headers.items()},
            )
    raise PortError(f"more than {MAX_REDIRECTS} redirects")


def _decoded(data: bytes, content_type: str) -> Any:
    text = data.decode("utf-8", errors="replace")
    if "json" in content_type:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text
