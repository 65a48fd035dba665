"""A local fake of Meta's Graph API for WhatsApp: real HTTP on loopback, scriptable, recording.

fake = FakeGraphApi().start()
fake.script("messages", Reply(500), Reply(429, {"error": {"code": 130429, "message": "Rate limit"}}))
... then the next POST /{version}/{phone}/messages gets 500, then 429, then the default success.

The server is a small asyncio HTTP/1.1 server with keep-alive, on an event loop of its own
(a thread here; its own process with `python -m tests.fakes.graph_api`), so that it answers
thousands of requests a second and a benchmark measures the sender, not the fake. A scripted
delay sleeps on the loop, so a slow answer never holds up the others.

It also speaks the media upload (`POST /{phone}/media`, multipart: the file is kept in
`uploads` and then served like a customer's media) and the template catalogue
(`GET /{waba}/message_templates`, paginated with `after` cursors, from `templates[waba]`).
A phone number is read with `GET /{phone-number-id}` (`phone_numbers[id]`): its details for the
token that owns it; Meta's 400 (code 100, subcode 33: "does not exist, cannot be loaded due to
missing permissions") for an unknown number or another business's token; 401 (code 190) for a
token the fake knows nowhere.

In its own process, `GET /_fake/stats` answers {"messages": n, "distinct": n, "duplicates": n}
(message requests counted by their body) and `POST /_fake/reset` forgets everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.parser
import email.policy
import hashlib
import itertools
import json
import re
import threading
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit


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


@dataclass(frozen=True)
class Upload:
    phone_number_id: str
    filename: str
    mime_type: str  # the form's `type` field
    content: bytes


def _multipart(content_type: str, raw: bytes) -> tuple[dict[str, str], dict[str, tuple[str, str, bytes]]]:
    """The form fields and files of a multipart/form-data body."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw
    )
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        decoded = part.get_payload(decode=True)
        payload = decoded if isinstance(decoded, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            files[str(name)] = (filename, part.get_content_type(), payload)
        else:
            fields[str(name)] = payload.decode()
    return fields, files


@dataclass(frozen=True)
class FakeNumber:
    """A phone number Meta knows, readable with its owner's token."""

    token: str
    display_phone_number: str
    verified_name: str
    waba_id: str = ""  # the WhatsApp Business account it is in (`GET /{waba-id}/phone_numbers`)


@dataclass
class FakeGraphApi:
    requests: list[Recorded] = field(default_factory=list)
    media_files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)
    templates: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    phone_numbers: dict[str, FakeNumber] = field(default_factory=dict)
    templates_page_size: int = 2
    host: str = "127.0.0.1"
    port: int = 0
    _scripts: dict[str, deque[Reply]] = field(default_factory=lambda: defaultdict(deque))
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.Server | None = None
    _thread: threading.Thread | None = None
    _address: tuple[str, int] | None = None

    @property
    def url(self) -> str:
        assert self._address is not None
        host, port = self._address
        return f"http://{host}:{port}"

    # --- life cycle ----------------------------------------------------------------------

    def start(self) -> FakeGraphApi:
        """Serve on a loop in a daemon thread; return once the port is bound."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._bind())
            except BaseException as exc:  # surfaced to start()'s caller
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-graph-api", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    async def _bind(self) -> None:
        self._server = await asyncio.start_server(self._connection, self.host, self.port, backlog=1024)
        host, port = self._server.sockets[0].getsockname()[:2]
        self._address = (str(host), int(port))

    def serve_forever(self) -> None:
        """Serve on this thread until interrupted (the separate-process mode)."""

        async def main() -> None:
            await self._bind()
            print(self.url, flush=True)
            assert self._server is not None
            await self._server.serve_forever()

        asyncio.run(main())

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return

        async def close() -> None:
            # Finish every connection on the loop: a coroutine left to the garbage collector
            # would run its clean-up later on whatever thread collects it.
            server.close()
            connections = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in connections:
                task.cancel()
            await asyncio.gather(*connections, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(close(), loop)
        if self._thread is not None:
            self._thread.join(5)

    # --- scripting and recording ---------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._scripts.clear()
            self.media_files.clear()
            self.uploads.clear()
            self.templates.clear()
            self.phone_numbers.clear()

    def script(self, route: str, *replies: Reply) -> None:
        """Queue replies for a route.

        Routes: "messages", "media-info", "media-file", "media-upload", "templates", "phone-number".
        """
        with self._lock:
            self._scripts[route].extend(replies)

    def sent_messages(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and r.path.endswith("/messages")]

    def stats(self) -> dict[str, int]:
        """Message requests seen, distinct bodies among them, and the surplus (duplicates)."""
        bodies = Counter(json.dumps(r.body, sort_keys=True) for r in self.sent_messages())
        total = sum(bodies.values())
        return {"messages": total, "distinct": len(bodies), "duplicates": total - len(bodies)}

    def _next(self, route: str) -> Reply | None:
        with self._lock:
            queue = self._scripts.get(route)
            return queue.popleft() if queue else None

    # --- HTTP ----------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _version = lines[0].split(" ", 2)
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip()] = value.strip()
                length = int(next((v for k, v in headers.items() if k.lower() == "content-length"), "0") or 0)
                raw = await reader.readexactly(length) if length else b""
                kind = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
                body: Any
                if kind.startswith("multipart/form-data"):
                    fields, files = _multipart(kind, raw)
                    body = {"fields": fields, "files": {k: (n, t, len(c)) for k, (n, t, c) in files.items()}}
                    body["_files"] = files
                else:
                    try:
                        body = json.loads(raw) if raw else None
                    except ValueError:
                        body = raw.decode(errors="replace")
                status, content, content_type = await self._answer(method, path, headers, body)
                try:
                    reason = HTTPStatus(status).phrase
                except ValueError:
                    reason = ""
                writer.write(
                    f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                    f"Content-Length: {len(content)}\r\n\r\n".encode("latin-1")
                    + content
                )
                await writer.drain()
                if any(k.lower() == "connection" and v.lower() == "close" for k, v in headers.items()):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return  # a client that gave up (a timeout test) is expected, not an error
        except asyncio.CancelledError:
            return  # stop(): end quietly (asyncio's stream callback logs a task that ends cancelled)
        finally:
            writer.close()

    async def _answer(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, bytes, str]:
        if path == "/_fake/stats":
            return 200, json.dumps(self.stats()).encode(), "application/json"
        if path == "/_fake/reset":
            self.reset()
            return 200, b"{}", "application/json"
        files = body.pop("_files", {}) if isinstance(body, dict) else {}
        with self._lock:
            self.requests.append(Recorded(method, path, headers, body))
        if method == "POST" and urlsplit(path).path.endswith("/media"):
            return await self._upload(path, body, files)
        if method == "GET" and "/message_templates" in path:
            return await self._templates(path)
        if method == "GET" and urlsplit(path).path.endswith("/phone_numbers"):
            return await self._account_numbers(path, headers)
        if method == "GET" and _is_node_read(path):
            return await self._phone_number(path, headers)
        return await self._route(path)

    async def _scripted(self, route: str) -> tuple[int, bytes, str] | None:
        scripted = self._next(route)
        if scripted is None:
            return None
        await asyncio.sleep(scripted.delay)
        if scripted.body is None and scripted.status == 200:
            return None
        return scripted.status, json.dumps(scripted.body or {}).encode(), "application/json"

    async def _upload(self, path: str, body: Any, files: dict[str, tuple[str, str, bytes]]) -> tuple[int, bytes, str]:
        scripted = await self._scripted("media-upload")
        if scripted is not None:
            return scripted
        fields = body.get("fields", {}) if isinstance(body, dict) else {}
        if fields.get("messaging_product") != "whatsapp" or "file" not in files:
            error = {"error": {"message": "(#100) The parameter file is required.", "code": 100}}
            return 400, json.dumps(error).encode(), "application/json"
        filename, _part_type, content = files["file"]
        mime = fields.get("type", "")
        media_id = f"upload{next(self._ids)}{hashlib.sha256(content).hexdigest()[:8]}"
        phone = urlsplit(path).path.rstrip("/").split("/")[-2]
        with self._lock:
            self.uploads[media_id] = Upload(phone, filename, mime, content)
            self.media_files[media_id] = (content, mime)
        return 200, json.dumps({"id": media_id}).encode(), "application/json"

    async def _templates(self, path: str) -> tuple[int, bytes, str]:
        scripted = await self._scripted("templates")
        if scripted is not None:
            return scripted
        parts = urlsplit(path)
        waba = parts.path.rstrip("/").split("/")[-2]
        query = parse_qs(parts.query)
        with self._lock:
            if waba not in self.templates:
                error = {"error": {"message": f"Unsupported get request. Object with ID '{waba}' does not exist",
                                   "code": 100}}  # fmt: skip
                return 400, json.dumps(error).encode(), "application/json"
            items = list(self.templates[waba])
        size = min(int((query.get("limit") or ["25"])[0]), self.templates_page_size)
        start = int((query.get("after") or ["0"])[0])
        page = items[start : start + size]
        cursors = {"before": str(start), "after": str(start + size)}
        answer: dict[str, Any] = {"data": page, "paging": {"cursors": cursors}}
        if start + size < len(items):
            answer["paging"]["next"] = f"{self.url}{parts.path}?after={start + size}&limit={size}"
        return 200, json.dumps(answer).encode(), "application/json"

    async def _account_numbers(self, path: str, headers: dict[str, str]) -> tuple[int, bytes, str]:
        """GET /{waba-id}/phone_numbers: the account's numbers, for a token of that account only."""
        scripted = await self._scripted("account-numbers")
        if scripted is not None:
            return scripted
        waba_id = urlsplit(path).path.rstrip("/").split("/")[-2]
        authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        token = authorization.removeprefix("Bearer ").strip()
        with self._lock:
            numbers = {number_id: n for number_id, n in self.phone_numbers.items() if n.waba_id == waba_id}
        if not numbers or all(n.token != token for n in numbers.values()):
            message = (
                f"Unsupported get request. Object with ID '{waba_id}' does not exist, cannot be loaded due "
                "to missing permissions, or does not support this operation."
            )
            error = {"error": {"message": message, "type": "GraphMethodException", "code": 100, "error_subcode": 33}}
            return 400, json.dumps(error).encode(), "application/json"
        data = [
            {"id": number_id, "display_phone_number": n.display_phone_number, "verified_name": n.verified_name}
            for number_id, n in numbers.items()
        ]
        return 200, json.dumps({"data": data}).encode(), "application/json"

    async def _phone_number(self, path: str, headers: dict[str, str]) -> tuple[int, bytes, str]:
        scripted = await self._scripted("phone-number")
        if scripted is not None:
            return scripted
        number_id = urlsplit(path).path.rstrip("/").rsplit("/", 1)[-1]
        authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        token = authorization.removeprefix("Bearer ").strip()
        with self._lock:
            number = self.phone_numbers.get(number_id)
            known_token = any(n.token == token for n in self.phone_numbers.values())
        if not known_token:
            error = {"error": {"message": "Invalid OAuth access token - Cannot parse access token",
                               "type": "OAuthException", "code": 190}}  # fmt: skip
            return 401, json.dumps(error).encode(), "application/json"
        if number is None or number.token != token:
            # Meta answers the same for a number that does not exist and one the token may not read.
            message = (
                f"Unsupported get request. Object with ID '{number_id}' does not exist, cannot be loaded due "
                "to missing permissions, or does not support this operation."
            )
            error = {"error": {"message": message, "type": "GraphMethodException", "code": 100, "error_subcode": 33}}
            return 400, json.dumps(error).encode(), "application/json"
        answer = {
            "id": number_id,
            "display_phone_number": number.display_phone_number,
            "verified_name": number.verified_name,
            "quality_rating": "GREEN",
        }
        return 200, json.dumps(answer).encode(), "application/json"

    async def _route(self, path: str) -> tuple[int, bytes, str]:
        if path.startswith("/media-files/"):
            scripted = self._next("media-file")
            if scripted is not None:
                await asyncio.sleep(scripted.delay)
                return scripted.status, json.dumps(scripted.body or {}).encode(), "application/json"
            media_id = path.rsplit("/", 1)[-1]
            if media_id not in self.media_files:
                return 404, b'{"error": {"message": "Not found", "code": 100}}', "application/json"
            content, mime = self.media_files[media_id]
            return 200, content, mime
        route = "messages" if path.endswith("/messages") else "media-info"
        scripted = self._next(route)
        if scripted is not None:
            await asyncio.sleep(scripted.delay)
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
        info = {
            "url": f"{self.url}/media-files/{media_id}",
            "mime_type": mime,
            "sha256": "",
            "file_size": len(content),
            "id": media_id,
        }
        return 200, json.dumps(info).encode(), "application/json"


def _is_node_read(path: str) -> bool:
    """GET /{version}/{id} that is not a media lookup (those carry `phone_number_id`)."""
    parts = urlsplit(path)
    segments = [segment for segment in parts.path.split("/") if segment]
    return (
        len(segments) == 2
        and re.fullmatch(r"v[0-9]+(\.[0-9]+)?", segments[0]) is not None
        and "phone_number_id" not in parse_qs(parts.query)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the fake Graph API in this process; print its URL.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        FakeGraphApi(host=args.host, port=args.port).serve_forever()


if __name__ == "__main__":
    main()
