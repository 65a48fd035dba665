"""Local fakes of the OpenAI, Anthropic and Gemini HTTP APIs: real HTTP on loopback, scriptable.

The real SDKs are pointed at them through their base URL. Each fake answers by default with
`fake.text` (or a deterministic embedding) and records every request; a test queues replies
for a route ("generate" or "embed") to script failures:

fake.script("generate", Reply(500), Reply(delay=2.0), Reply(raw=b"{not json"))

`fake.on_request`, when set, is called in the server's thread as each request arrives, before
it is answered: a test looks at what the caller holds meanwhile (row locks, an open
transaction), acts in between (an agent's edit), or answers by the request's content.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from abc import ABC, abstractmethod
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import numpy as np


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] | None = None  # a JSON body instead of the default answer
    raw: bytes | None = None  # bytes sent as-is with status 200 (malformed JSON)
    delay: float = 0.0  # seconds to wait before answering (timeouts)
    text: str | None = None  # the answer's text instead of `fake.text`
    truncated: bool = False  # the answer stops at max_tokens (the vendor's finish reason says so)


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any


def fake_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for a text, so tests can tell which provider embedded it."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    vector = np.random.default_rng(seed).standard_normal(dimensions)
    return [float(x) for x in vector / np.linalg.norm(vector)]


@dataclass
class FakeLLMApi(ABC):
    """The shared server; subclasses shape the vendor's JSON and SSE."""

    text: str = "Hello from the fake."
    requests: list[Recorded] = field(default_factory=list)
    # Its Reply, if any, answers the request instead of the script and `text`.
    on_request: Callable[[Recorded], Reply | None] | None = None
    _scripts: dict[str, deque[Reply]] = field(default_factory=lambda: defaultdict(deque))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    # --- the vendor's shapes ---
    @abstractmethod
    def route_of(self, path: str) -> str:
        """ "generate" or "embed" for a request path."""

    @abstractmethod
    def wants_stream(self, path: str, body: Any) -> bool: ...

    @abstractmethod
    def answer(self, text: str, body: Any, truncated: bool = False) -> dict[str, Any]: ...

    @abstractmethod
    def stream_events(self, text: str, body: Any, truncated: bool = False) -> list[bytes]: ...

    def embeddings(self, path: str, body: Any) -> dict[str, Any] | None:
        """The embeddings response; None where the vendor has no embeddings API (answered 404)."""
        return None

    def error_body(self, status: int) -> dict[str, Any]:
        return {"error": {"message": f"scripted {status}", "type": "server_error", "code": status}}

    # --- server ---
    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, status: int, content: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                recorded = Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with fake._lock:
                    fake.requests.append(recorded)
                route = fake.route_of(self.path)
                chosen = fake.on_request(recorded) if fake.on_request is not None else None
                reply = chosen or fake._next(route) or Reply()
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.raw is not None:
                    self._send(200, reply.raw)
                    return
                if reply.status != 200:
                    self._send(reply.status, json.dumps(reply.body or fake.error_body(reply.status)).encode())
                    return
                if reply.body is not None:
                    self._send(200, json.dumps(reply.body).encode())
                    return
                if route == "embed":
                    vectors = fake.embeddings(self.path, body)
                    if vectors is None:
                        self._send(404, json.dumps(fake.error_body(404)).encode())
                    else:
                        self._send(200, json.dumps(vectors).encode())
                    return
                text = reply.text if reply.text is not None else fake.text
                if fake.wants_stream(self.path, body):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for event in fake.stream_events(text, body, reply.truncated):
                        self.wfile.write(event)
                        self.wfile.flush()
                    self.close_connection = True
                    return
                self._send(200, json.dumps(fake.answer(text, body, reply.truncated)).encode())

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                return  # a client that gave up (a timeout test) is expected

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
        self.text = "Hello from the fake."
        self.on_request = None

    def script(self, route: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts[route].extend(replies)

    def calls(self, route: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if route is None or self.route_of(r.path) == route]

    def _next(self, route: str) -> Reply | None:
        with self._lock:
            queue = self._scripts.get(route)
            return queue.popleft() if queue else None


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [word + (" " if i < len(words) - 1 else "") for i, word in enumerate(words)]


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


class FakeOpenAI(FakeLLMApi):
    """POST /v1/chat/completions and /v1/embeddings; point the SDK at `url + "/v1"`."""

    def route_of(self, path: str) -> str:
        return "embed" if path.endswith("/embeddings") else "generate"

    def wants_stream(self, path: str, body: Any) -> bool:
        return bool(isinstance(body, dict) and body.get("stream"))

    def answer(self, text: str, body: Any, truncated: bool = False) -> dict[str, Any]:
        finish = "length" if truncated else "stop"
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        }

    def stream_events(self, text: str, body: Any, truncated: bool = False) -> list[bytes]:
        finish = "length" if truncated else "stop"
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
        events = [
            _sse({**base, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]})
            for w in _words(text)
        ]
        events.append(_sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}))
        events.append(
            _sse({**base, "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}})
        )
        events.append(b"data: [DONE]\n\n")
        return events

    def embeddings(self, path: str, body: Any) -> dict[str, Any]:
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dimensions = int(body.get("dimensions") or 1536)
        return {
            "object": "list",
            "model": body["model"],
            "data": [
                {"object": "embedding", "index": i, "embedding": fake_vector(f"openai:{text}", dimensions)}
                for i, text in enumerate(inputs)
            ],
            "usage": {"prompt_tokens": 5 * len(inputs), "total_tokens": 5 * len(inputs)},
        }


class FakeAnthropic(FakeLLMApi):
    """POST /v1/messages; point the SDK at `url`."""

    def route_of(self, path: str) -> str:
        return "generate"

    def wants_stream(self, path: str, body: Any) -> bool:
        return bool(isinstance(body, dict) and body.get("stream"))

    def error_body(self, status: int) -> dict[str, Any]:
        return {"type": "error", "error": {"type": "api_error", "message": f"scripted {status}"}}

    def answer(self, text: str, body: Any, truncated: bool = False) -> dict[str, Any]:
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": text}],
            "stop_reason": "max_tokens" if truncated else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 13, "output_tokens": 9},
        }

    def stream_events(self, text: str, body: Any, truncated: bool = False) -> list[bytes]:
        message = {**self.answer("", body), "content": [], "usage": {"input_tokens": 13, "output_tokens": 1}}
        events = [
            _sse({"type": "message_start", "message": message}, "message_start"),
            _sse(
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                "content_block_start",
            ),
        ]
        events += [
            _sse(
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}},
                "content_block_delta",
            )
            for w in _words(text)
        ]
        events += [
            _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            _sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "max_tokens" if truncated else "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 9},
                },
                "message_delta",
            ),
            _sse({"type": "message_stop"}, "message_stop"),
        ]
        return events


class FakeGemini(FakeLLMApi):
    """POST /v1beta/models/{model}:generateContent, :streamGenerateContent, :batchEmbedContents."""

    def route_of(self, path: str) -> str:
        return "embed" if "EmbedContents" in path or ":embedContent" in path else "generate"

    def wants_stream(self, path: str, body: Any) -> bool:
        return ":streamGenerateContent" in path

    def error_body(self, status: int) -> dict[str, Any]:
        return {"error": {"code": status, "message": f"scripted {status}", "status": "INTERNAL"}}

    @staticmethod
    def _usage(body: Any) -> dict[str, int]:
        usage = {"promptTokenCount": 17, "candidatesTokenCount": 5, "totalTokenCount": 22}
        # Like Gemini 2.5: it thinks (billed as output) unless told a thinking budget of 0.
        # Proto JSON: the API takes field names in lowerCamelCase or as written in the proto,
        # and the SDK sends this one as `thinking_budget`.
        config = body.get("generationConfig", {}) if isinstance(body, dict) else {}
        thinking = config.get("thinkingConfig", {})
        if thinking.get("thinkingBudget", thinking.get("thinking_budget")) != 0:
            usage["thoughtsTokenCount"] = 11
            usage["totalTokenCount"] += 11
        return usage

    def answer(self, text: str, body: Any, truncated: bool = False) -> dict[str, Any]:
        finish = "MAX_TOKENS" if truncated else "STOP"
        return {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": finish, "index": 0}
            ],
            "usageMetadata": self._usage(body),
            "modelVersion": "fake",
        }

    def stream_events(self, text: str, body: Any, truncated: bool = False) -> list[bytes]:
        words = _words(text)
        events = []
        for i, word in enumerate(words):
            chunk: dict[str, Any] = {"candidates": [{"content": {"role": "model", "parts": [{"text": word}]}}]}
            if i == len(words) - 1:
                chunk["candidates"][0]["finishReason"] = "MAX_TOKENS" if truncated else "STOP"
                chunk["usageMetadata"] = self._usage(body)
            events.append(_sse(chunk))
        return events

    def embeddings(self, path: str, body: Any) -> dict[str, Any]:
        requests = body.get("requests") or [body]
        out = []
        for request in requests:
            text = " ".join(part.get("text", "") for part in request["content"]["parts"])
            dimensions = int(request.get("outputDimensionality") or 3072)
            out.append({"values": fake_vector(f"google:{text}", dimensions)})
        return {"embeddings": out}
