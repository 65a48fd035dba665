"""The API Call node cannot reach the platform's own network: each refusal proven on real sockets."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from apps.flows import egress
from apps.flows.egress import EgressRefused, address_refused, egress_request
from apps.flows.ports import PortError


class _Server:
    def __init__(self) -> None:
        self.hits: list[str] = []
        self.redirect_to = ""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner.hits.append(f"{self.path} Host={self.headers.get('Host')}")
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", owner.redirect_to)
                    self.end_headers()
                elif self.path == "/big":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.end_headers()
                    self.wfile.write(b"x" * (egress.MAX_RESPONSE_BYTES + 10))
                elif self.path == "/slow":
                    time.sleep(1.5)
                    self.send_response(200)
                    self.end_headers()
                else:
                    body = b'{"status": "shipped"}'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.fixture
def loopback_allowed(settings: Any) -> None:
    settings.FLOWS_EGRESS_ALLOW_LOOPBACK = True


def test_loopback_is_refused_and_never_contacted(server: _Server) -> None:
    for host in ("127.0.0.1", "localhost"):
        with pytest.raises(EgressRefused, match="loopback"):
            egress_request("GET", server.url("/", host))
    with pytest.raises(EgressRefused, match="loopback"):
        egress_request("GET", f"http://[::ffff:127.0.0.1]:{server.port}/")
    assert server.hits == []


def test_the_positive_case_connects_to_the_checked_ip(server: _Server, loopback_allowed: None) -> None:
    response = egress_request("GET", server.url("/order", "localhost"))
    assert response.status == 200 and response.body == {"status": "shipped"}
    # The connection went to the resolved IP, and the server still saw the original host name.
    assert server.hits == [f"/order Host=localhost:{server.port}"]


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://10.0.0.5/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://0.0.0.0/", "private"),
    ],
)
def test_a_redirect_to_an_internal_address_is_refused(
    server: _Server, loopback_allowed: None, target: str, reason: str
) -> None:
    server.redirect_to = target
    with pytest.raises(EgressRefused, match=reason):
        egress_request("GET", server.url("/redirect"))
    assert server.hits == [f"/redirect Host=127.0.0.1:{server.port}"]


def test_a_redirect_back_to_loopback_is_refused_when_loopback_is(server: _Server) -> None:
    with pytest.raises(EgressRefused):
        egress_request("GET", server.url("/redirect"))
    assert server.hits == []


def test_a_host_resolving_to_an_internal_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(EgressRefused, match=r"10\.1\.2\.3"):
        egress_request("GET", "http://rebind.example/")


def test_size_cap_and_timeout(server: _Server, loopback_allowed: None) -> None:
    with pytest.raises(PortError, match="larger than"):
        egress_request("GET", server.url("/big"))
    with pytest.raises(PortError, match="Timeout"):
        egress_request("GET", server.url("/slow"), timeout=0.3)


def test_addresses() -> None:
    def refused(text: str) -> str:
        return address_refused(ipaddress.ip_address(text))

    assert refused("8.8.8.8") == ""
    assert refused("2001:4860:4860::8888") == ""
    assert refused("224.0.0.1") == "multicast address"
    assert refused("ff02::1") == "multicast address"
    assert refused("169.254.1.1") == "link-local address"
    assert refused("fe80::1") == "link-local address"
    assert refused("172.16.0.1") == "private address"
    assert refused("100.64.0.1") == "non-public address"
    assert refused("::1") == "loopback address"
    with pytest.raises(EgressRefused):
        egress_request("GET", "file:///etc/passwd")
    with pytest.raises(EgressRefused):
        egress_request("GET", "http://user:pw@example.com/")
