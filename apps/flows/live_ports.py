"""The flow ports over the real services, in two halves.

The engine runs outside any database transaction (see `apps.flows.services`): a provider
call or an API Call may take seconds, and no row lock may be held meanwhile. So the ports
that only *ask* the outside world (knowledge answer, generation, HTTP) run at once, while
the ports that *change* our data (sends, hand-off, ticket, tag, field, close) are recorded
as effects and applied by `effects_apply` inside the short transaction that commits the
run's new state. A run whose commit loses a race is recomputed and its effects are never
applied twice; sends are keyed as well, so a retried task sends nothing twice. A send that
may not go at commit (the customer's window has closed, a template WhatsApp has not
approved, or a MARKETING template to a customer who sent STOP) is skipped, logged and noted
on the step that asked for it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.db.models import F, Func, TextField, Value
from django.db.models.functions import Cast

from apps.ai.router import generate
from apps.contacts.models import Contact
from apps.conversations.exceptions import ContactOptedOut, TemplateNotApproved
from apps.conversations.lifecycle import conversation_close, conversation_handoff, conversation_update
from apps.conversations.models import Conversation, Message
from apps.conversations.services import message_send
from apps.core.tenancy import current_schema
from apps.flows.egress import egress_request
from apps.flows.ports import Choice, HttpResponse, KnowledgeReply
from apps.knowledge.answers import knowledge_answer
from apps.tickets.models import Ticket
from apps.tickets.services.tickets import ticket_create_from_conversation
from apps.whatsapp import messages as wa
from apps.whatsapp.outbox import WindowClosed

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Effect:
    kind: str  # send | handoff | ticket | tag | field | close
    args: tuple[Any, ...] = ()
    step: int = 0  # the index of the walk's step that recorded it


@dataclass
class LivePorts:
    """Side effects for one event of one run; `key` makes its sends idempotent."""

    conversation: Conversation
    key: str
    effects: list[Effect] = field(default_factory=list)
    resume_seconds: int | None = None
    http_calls: int = 0
    steps_begun: int = 0

    def step_begin(self, node_id: str) -> None:
        self.steps_begun += 1

    def _effect(self, kind: str, *args: Any) -> None:
        self.effects.append(Effect(kind, args, self.steps_begun - 1))

    # --- changes to our data: recorded, applied at commit ------------------------------------

    def send_text(self, text: str) -> None:
        self._effect("send", wa.text(text[: wa.TEXT_MAX]))

    def send_buttons(self, body: str, choices: list[Choice]) -> None:
        self._effect("send", wa.buttons(body, [wa.Button(c.id, c.title) for c in choices]))

    def send_list(self, body: str, button: str, choices: list[Choice]) -> None:
        rows = [wa.Row(c.id, c.title, c.description) for c in choices]
        self._effect("send", wa.list_message(body, button, [wa.Section("", rows)]))

    def send_template(self, name: str, language: str, params: list[str]) -> None:
        # Whether the customer may get it (no MARKETING after a STOP) is decided at commit, by
        # `message_send`, on the consent as it is then.
        self._effect("send", wa.template(name, language, body_params=params))

    def handoff(self, reason: str) -> None:
        self._effect("handoff", reason[:200])

    def create_ticket(self, reason: str) -> None:
        self._effect("ticket", reason[:300])

    def tag(self, tag: str) -> None:
        self._effect("tag", tag)

    def set_field(self, name: str, value: str) -> None:
        self._effect("field", name, value)

    def close(self) -> None:
        self._effect("close")

    def schedule_resume(self, seconds: int) -> None:
        self.resume_seconds = seconds

    # --- questions to the outside world: asked at once, outside any transaction --------------

    def knowledge_answer(self, question: str) -> KnowledgeReply:
        answer = knowledge_answer(question=question, conversation=self.conversation)
        return KnowledgeReply(answer.text, answer.handoff, tuple(c.title for c in answer.citations))

    def generate(self, prompt: str, system: str) -> str | None:
        result = generate(prompt, system=system)
        return result.text if result.available and result.text else None

    def http_call(self, method: str, url: str, headers: dict[str, str], body: str | None) -> HttpResponse:
        # A walk computed again for the same event (a lost race, a retried task) sends the
        # same Idempotency-Key, so a service that honours it does not act twice; one the
        # flow's author set is kept.
        self.http_calls += 1
        if not any(name.lower() == "idempotency-key" for name in headers):
            headers = {**headers, "Idempotency-Key": idempotency_key(f"{self.key}:api:{self.http_calls}")}
        return egress_request(method, url, headers=headers, body=body)


def idempotency_key(event_key: str) -> str:
    """An opaque key for an outside call, unique across tenants (the event keys are per schema)."""
    return hashlib.sha256(f"{current_schema()}\x00{event_key}".encode()).hexdigest()[:40]


def effects_apply(*, effects: list[Effect], conversation: Conversation, key: str) -> dict[int, str]:
    """Apply a computed run's effects in order, inside the transaction that commits its state.

    A send WhatsApp or the customer's consent does not allow is skipped, and the run goes on
    (the walk is done; its other effects stand). Returns why, by the index of the step that
    asked for it, for the run's execution log.
    """
    skipped: dict[int, str] = {}
    sent = 0
    for effect in effects:
        if effect.kind == "send":
            sent += 1
            outgoing: wa.Outgoing = effect.args[0]
            note = ""
            try:
                message_send(
                    conversation=conversation,
                    outgoing=outgoing,
                    author_kind=Message.Author.BOT,
                    idempotency_key=f"{key}:{sent}",
                )
            except WindowClosed:
                note = "not sent: the customer's 24-hour window is closed"
            except ContactOptedOut:
                name, language = outgoing.template_named or ("", "")
                note = f"not sent: template {name} ({language}) is marketing and the customer opted out (STOP)"
            except TemplateNotApproved as refused:
                name, language = outgoing.template_named or ("", "")
                status = ", ".join(refused.extra.get("status", []))
                note = f"not sent: template {name} ({language}) is {status} in WhatsApp Manager, not approved"
            if note:
                logger.warning("flow message %s:%d %s", key, sent, note)
                skipped[effect.step] = "; ".join(filter(None, (skipped.get(effect.step), note)))
        elif effect.kind == "handoff":
            conversation = conversation_handoff(conversation=conversation, reason=effect.args[0])
        elif effect.kind == "ticket":
            ticket_create_from_conversation(
                conversation=conversation, by=None, source=Ticket.Source.RULE, reason=effect.args[0]
            )
        elif effect.kind == "tag":
            conversation = conversation_update(
                conversation=conversation, by=None, tags=[*conversation.tags, effect.args[0]]
            )
        elif effect.kind == "field":
            name, value = effect.args
            # One statement, so two flows setting fields at once do not overwrite each other.
            # Typed values: PostgreSQL cannot infer the types of bare parameters in jsonb_set.
            Contact.objects.filter(pk=conversation.contact_id).update(
                custom_fields=Func(
                    F("custom_fields"),
                    Cast(Value([name]), ArrayField(TextField())),
                    Func(Cast(Value(value), TextField()), function="to_jsonb"),
                    function="jsonb_set",
                )
            )
        elif effect.kind == "close":
            conversation = conversation_close(conversation=conversation, by=None, reason="flow")
        else:
            raise ValueError(f"unknown flow effect {effect.kind}")
    return skipped
