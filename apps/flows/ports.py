"""What a flow may do to the outside world: the interpreter calls only these methods.

The pipeline provides an implementation over the real services (`apps.flows.live_ports`);
tests and the benchmark provide fakes. Nothing in the interpreter touches I/O directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Choice:
    id: str
    title: str
    description: str = ""


@dataclass(frozen=True)
class KnowledgeReply:
    text: str
    handoff: bool
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: Any  # parsed JSON when the response is JSON, else text
    headers: dict[str, str] = field(default_factory=dict)


class PortError(Exception):
    """A side effect failed in a way the flow can branch on (an API Call's error branch)."""


class Ports(Protocol):
    # Called once before each node the interpreter runs, so one Step per call: what the ports
    # record next belongs to that step (a send refused at commit is noted on it).
    def step_begin(self, node_id: str) -> None: ...
    def send_text(self, text: str) -> None: ...
    def send_buttons(self, body: str, choices: list[Choice]) -> None: ...
    def send_list(self, body: str, button: str, choices: list[Choice]) -> None: ...
    def send_template(self, name: str, language: str, params: list[str]) -> None: ...
    def knowledge_answer(self, question: str) -> KnowledgeReply: ...
    def generate(self, prompt: str, system: str) -> str | None: ...
    def handoff(self, reason: str) -> None: ...
    def create_ticket(self, reason: str) -> None: ...
    def tag(self, tag: str) -> None: ...
    def set_field(self, name: str, value: str) -> None: ...
    def close(self) -> None: ...
    def schedule_resume(self, seconds: int) -> None: ...
    def http_call(self, method: str, url: str, headers: dict[str, str], body: str | None) -> HttpResponse: ...
