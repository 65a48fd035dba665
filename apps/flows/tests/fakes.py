"""Fake ports that record every side effect, for the interpreter's tests and the benchmark."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apps.flows.ports import Choice, HttpResponse, KnowledgeReply, PortError


@dataclass
class FakePorts:
    calls: list[tuple[str, Any]] = field(default_factory=list)
    knowledge: KnowledgeReply = field(
        default_factory=lambda: KnowledgeReply("Opening hours are 8 to 5.", False, ("Hours",))
    )
    generated: str | None = "A generated answer."
    http: HttpResponse | PortError = field(default_factory=lambda: HttpResponse(200, {"status": "shipped"}))
    record: bool = True
    begun: list[str] = field(default_factory=list)  # the nodes `step_begin` announced

    def _log(self, name: str, value: Any) -> None:
        if self.record:
            self.calls.append((name, value))

    def step_begin(self, node_id: str) -> None:
        if self.record:
            self.begun.append(node_id)

    def send_text(self, text: str) -> None:
        self._log("text", text)

    def send_buttons(self, body: str, choices: list[Choice]) -> None:
        self._log("buttons", (body, [c.id for c in choices]))

    def send_list(self, body: str, button: str, choices: list[Choice]) -> None:
        self._log("list", (body, [c.id for c in choices]))

    def send_template(self, name: str, language: str, params: list[str]) -> None:
        self._log("template", (name, language, params))

    def knowledge_answer(self, question: str) -> KnowledgeReply:
        self._log("knowledge", question)
        return self.knowledge

    def generate(self, prompt: str, system: str) -> str | None:
        self._log("generate", prompt)
        return self.generated

    def handoff(self, reason: str) -> None:
        self._log("handoff", reason)

    def create_ticket(self, reason: str) -> None:
        self._log("ticket", reason)

    def tag(self, tag: str) -> None:
        self._log("tag", tag)

    def set_field(self, name: str, value: str) -> None:
        self._log("field", (name, value))

    def close(self) -> None:
        self._log("close", None)

    def schedule_resume(self, seconds: int) -> None:
        self._log("resume_in", seconds)

    def http_call(self, method: str, url: str, headers: dict[str, str], body: str | None) -> HttpResponse:
        self._log("http", (method, url, body))
        if isinstance(self.http, PortError):
            raise self.http
        return self.http

    def kinds(self) -> list[str]:
        return [name for name, _ in self.calls]


def node(node_id: str, node_type: str, nxt: dict[str, str] | None = None, **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "config": config, "next": nxt or {}}


def graph_of(*nodes: dict[str, Any], trigger: dict[str, Any] | None = None, first: str = "") -> dict[str, Any]:
    """A graph whose Trigger leads to `first` (by default the first node given)."""
    start = node("start", "trigger", {"default": first or nodes[0]["id"]}, **(trigger or {"kind": "catch_all"}))
    return {"nodes": [start, *nodes]}
