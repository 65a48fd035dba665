"""The flow ports over the real services: sends through the outbox, answers, hand-offs, tickets."""

from __future__ import annotations

import logging

from django.db.models import F, Func, Value

from apps.ai.router import generate
from apps.contacts.models import Contact
from apps.conversations.lifecycle import conversation_close, conversation_handoff, conversation_update
from apps.conversations.models import Conversation, Message
from apps.conversations.services import message_send
from apps.flows.egress import egress_request
from apps.flows.ports import Choice, HttpResponse, KnowledgeReply
from apps.knowledge.answers import knowledge_answer
from apps.tickets.models import Ticket
from apps.tickets.services.tickets import ticket_create_from_conversation
from apps.whatsapp import messages as wa
from apps.whatsapp.outbox import WindowClosed

logger = logging.getLogger(__name__)


class LivePorts:
    """Side effects for one event of one run; sends are keyed so a retried task sends nothing twice."""

    def __init__(self, *, conversation: Conversation, key: str) -> None:
        self.conversation = conversation
        self.key = key
        self.sent = 0
        self.resume_seconds: int | None = None

    def _send(self, outgoing: wa.Outgoing) -> None:
        self.sent += 1
        key = f"{self.key}:{self.sent}"
        try:
            message_send(
                conversation=self.conversation, outgoing=outgoing, author_kind=Message.Author.BOT, idempotency_key=key
            )
        except WindowClosed:
            logger.warning("flow message %s not sent: the customer's window is closed", key)

    def send_text(self, text: str) -> None:
        self._send(wa.text(text[: wa.TEXT_MAX]))

    def send_buttons(self, body: str, choices: list[Choice]) -> None:
        self._send(wa.buttons(body, [wa.Button(c.id, c.title) for c in choices]))

    def send_list(self, body: str, button: str, choices: list[Choice]) -> None:
        rows = [wa.Row(c.id, c.title, c.description) for c in choices]
        self._send(wa.list_message(body, button, [wa.Section("", rows)]))

    def send_template(self, name: str, language: str, params: list[str]) -> None:
        self._send(wa.template(name, language, body_params=params))

    def knowledge_answer(self, question: str) -> KnowledgeReply:
        answer = knowledge_answer(question=question, conversation=self.conversation)
        return KnowledgeReply(answer.text, answer.handoff, tuple(c.title for c in answer.citations))

    def generate(self, prompt: str, system: str) -> str | None:
        result = generate(prompt, system=system)
        return result.text if result.available and result.text else None

    def handoff(self, reason: str) -> None:
        self.conversation = conversation_handoff(conversation=self.conversation, reason=reason[:200])

    def create_ticket(self, reason: str) -> None:
        ticket_create_from_conversation(
            conversation=self.conversation, by=None, source=Ticket.Source.RULE, reason=reason[:300]
        )

    def tag(self, tag: str) -> None:
        self.conversation = conversation_update(
            conversation=self.conversation, by=None, tags=[*self.conversation.tags, tag]
        )

    def set_field(self, name: str, value: str) -> None:
        # One statement, so two flows setting fields at once do not overwrite each other.
        Contact.objects.filter(pk=self.conversation.contact_id).update(
            custom_fields=Func(
                F("custom_fields"), Value([name]), Func(Value(value), function="to_jsonb"), function="jsonb_set"
            )
        )

    def close(self) -> None:
        self.conversation = conversation_close(conversation=self.conversation, by=None, reason="flow")

    def schedule_resume(self, seconds: int) -> None:
        self.resume_seconds = seconds

    def http_call(self, method: str, url: str, headers: dict[str, str], body: str | None) -> HttpResponse:
        return egress_request(method, url, headers=headers, body=body)
