"""A local fake of Meta's Graph API for WhatsApp: real HTTP on loopback, scriptable, recording.

fake = FakeGraphApi().start()
fake.script("messages", Reply(500), Reply(429, {"error": {"code": 130429, "message": "Rate limit"}}))
... then the next POST /{version}/{phone}/messages gets 500, then 429, then the default success.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] | None = None
    delay: float = 0.0  # seconds to wait before answering (timeouts)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeGraphApi:
    requests: list[Recorded] = field(default_factory=list)
    media_files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    _scripts: dict[str, deque[Reply]] = field(default_factory=lambda: defaultdict(deque))
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeGraphApi:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                with fake._lock:
                    fake.requests.append(Recorded(method, self.path, dict(self.headers), body))
                status, content, content_type = fake._route(method, self.path)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                # A client that gave up (a timeout test) is expected, not an error.
                return

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._scripts.clear()
            self.media_files.clear()

    def script(self, route: str, *replies: Reply) -> None:
        """Queue replies for a route: "messages", "media-info" or "media-file"."""
        with self._lock:
            self._scripts[route].extend(replies)

    def sent_messages(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and r.path.endswith("/messages")]

    def _next(self, route: str) -> Reply | None:
        with self._lock:
            queue = self._scripts.get(route)
            return queue.popleft() if queue else None

    def _route(self, method: str, path: str) -> tuple[int, bytes, str]:
        if path.startswith("/media-files/"):
            scripted = self._next("media-file")
            if scripted is not None:
                time.sleep(scripted.delay)
                return scripted.status, json.dumps(scripted.body or {}).encode(), "application/json"
            media_id = path.rsplit("/", 1)[-1]
            if media_id not in self.media_files:
                return 404, b'{"error": {"message": "Not found", "code": 100}}', "application/json"
            content, mime = self.media_files[media_id]
            return 200, content, mime
        route = "messages" if path.endswith("/messages") else "media-info"
        scripted = self._next(route)
        if scripted is not None:
            time.sleep(scripted.delay)
            if scripted.body is not None or scripted.status != 200:
                return scripted.status, json.dumps(scripted.body or {}).encode(), "application/json"
        if route == "messages":
            wamid = f"wamid.fake.{next(self._ids)}"
            return (
                200,
                json.dumps({"messaging_product": "whatsapp", "messages": [{"id": wamid}]}).encode(),
                "application/json",
            )
        media_id = path.split("?")[0].rsplit("/", 1)[-1]
        if media_id not in self.media_files:
            return 404, b'{"error": {"message": "Unknown media", "code": 100}}', "application/json"
        content, mime = self.media_files[media_id]
        body = {
            "url": f"{self.url}/media-files/{media_id}",
            "mime_type": mime,
            "sha256": "",
            "file_size": len(content),
            "id": media_id,
        }
        return 200, json.dumps(body).encode(), "application/json"
