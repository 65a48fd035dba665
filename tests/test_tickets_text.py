"""A ticket opened from a conversation: no provider is asked while a transaction is open.

Hand-offs, escalation rules and flows open their ticket inside the transaction that holds the
conversation's row lock. The ticket opens at once with the conversation's own words (the
extractive summary and title); after the commit `ticket_text_write_task` has the tenant's
provider write them, and keeps an agent's edit made meanwhile. The fake provider looks, from
its own database connection, at what the caller holds at the moment it is asked.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import OperationalError, connection, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from apps.accounts.models import AgentProfile, User
from apps.accounts.roles import AGENT, SUPPORT_MANAGER
from apps.accounts.services import user_create
from apps.ai.models import SINGLETON_ID, AISettings, AIUsage
from apps.contacts.models import Contact
from apps.conversations.lifecycle import conversation_handoff
from apps.conversations.models import Conversation, Message
from apps.conversations.tests.factories import conversation_create, message_inbound_create
from apps.core.tenancy import tenant_context, use_public_schema
from apps.flows.models import Flow
from apps.flows.services import flow_activate, flow_handle_message, flow_publish
from apps.flows.tests.fakes import graph_of, node
from apps.tickets.models import EscalationRule, Ticket, TicketEvent
from apps.tickets.receivers import message_analysed_received
from apps.tickets.services.tickets import (
    ticket_create,
    ticket_create_from_conversation,
    ticket_text_write,
    ticket_update,
)
from imaradesk.celery import app
from tests.ai_support import Fakes, ai_configure, ai_fakes, ai_fakes_server
from tests.conftest import TenantSetup, tenant_conversations_wipe
from tests.fakes.llm_apis import Recorded, Reply

__all__ = ["ai_fakes", "ai_fakes_server"]  # fixtures used by name

_numbers = itertools.count(1)
SUMMARY = "The customer's parcel is two weeks late and they want their money back."
TITLE = "Late parcel: refund requested"
FIRST = "My parcel is two weeks late."
EXTRACTIVE_TITLE = f"Complaint: {FIRST}"
WRITE_TASK = "apps.tickets.tasks.ticket_text_write_task"


@dataclass(frozen=True)
class Seen:
    """What a provider call found, from another connection, when it arrived."""

    conversation_locked: bool
    ticket_title: str | None  # the conversation's ticket as committed then; None: none yet


def _answer(recorded: Recorded) -> Reply:
    """The provider writes the title when asked for one, the summary otherwise."""
    return Reply(text=TITLE if "support ticket title" in json.dumps(recorded.body) else SUMMARY)


def _probe(tenant: TenantSetup, conversation_id: int) -> Seen:
    """Runs in the fake's thread, on its own database connection, while the provider is asked."""
    try:
        with tenant_context(tenant.organization):
            try:
                with transaction.atomic():
                    Conversation.objects.select_for_update(nowait=True).get(pk=conversation_id)
                locked = False
            except OperationalError:  # LockNotAvailable: a transaction holds the row
                locked = True
            ticket = Ticket.objects.filter(conversations=conversation_id).first()
            return Seen(locked, ticket.title if ticket is not None else None)
    finally:
        use_public_schema()
        connection.close()


def _observe(
    fakes: Fakes, tenant: TenantSetup, conversation_id: int, then: Callable[[], None] | None = None
) -> list[Seen | str]:
    """Record what every provider call sees (or the probe's error), answering by the request."""
    seen: list[Seen | str] = []

    def on_request(recorded: Recorded) -> Reply:
        try:
            seen.append(_probe(tenant, conversation_id))
            if then is not None and len(seen) == 1:
                then()
        except Exception as exc:  # reported in `seen`, asserted by the test
            seen.append(repr(exc))
        return _answer(recorded)

    fakes.openai.on_request = on_request
    return seen


def _wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.2)


def _conversation(tenant: TenantSetup) -> Conversation:
    contact = Contact.objects.create(wa_id=f"2547{next(_numbers):08d}", profile_name="Neema", language="en")
    return conversation_create(contact=contact, account=tenant.whatsapp, last_message_at=timezone.now(), language="en")


def _inbound(conversation: Conversation, text: str, intent: str) -> Message:
    return message_inbound_create(conversation=conversation, text=text, intent=intent)


def _complaint(tenant: TenantSetup) -> tuple[Conversation, Message]:
    conversation = _conversation(tenant)
    _inbound(conversation, FIRST, "order_status")
    return conversation, _inbound(conversation, "I want a refund now.", "complaint")


def _extractive_description(reason: str) -> str:
    return f"Customer: {FIRST} Customer: I want a refund now.\n\nIntent: complaint\n\nHand-off reason: {reason}"


def _written_description(reason: str) -> str:
    return f"{SUMMARY}\n\nIntent: complaint\n\nHand-off reason: {reason}"


def _sent_tasks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    """Record the tasks this process sends (name, args, headers) instead of sending them."""
    sent: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def send_task(name: str, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        sent.append((name, tuple(args or ()), dict(options.get("headers") or {})))

    monkeypatch.setattr(app, "send_task", send_task)
    return sent


@pytest.fixture
def committed_tenant(tenant_a: TenantSetup, ai_fakes: Fakes) -> Iterator[TenantSetup]:
    """tenant_a for committed tests: what they add (and the AI settings) removed afterwards."""
    models: tuple[type[Any], ...] = (Ticket, EscalationRule, Flow, AIUsage, User)
    with tenant_context(tenant_a.organization):
        AgentProfile.objects.update(status=AgentProfile.Status.OFFLINE)  # nobody auto-assigned
        before = {model: set(model.objects.values_list("pk", flat=True)) for model in models}
    yield tenant_a
    use_public_schema()
    tenant_conversations_wipe(tenant_a)
    with tenant_context(tenant_a.organization):
        AISettings.objects.filter(pk=SINGLETON_ID).delete()
        for model in models:
            model.objects.exclude(pk__in=before[model]).delete()


# --- inside a transaction: no provider call, the write is queued for after the commit -----


@pytest.mark.django_db
def test_inside_a_transaction_the_ticket_opens_with_extractive_text_and_no_provider_is_asked(
    tenant_a: TenantSetup, ai_fakes: Fakes, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    sent = _sent_tasks(monkeypatch)
    reason = "escalation rule: refunds"
    with tenant_context(tenant_a.organization):
        AgentProfile.objects.update(status=AgentProfile.Status.OFFLINE)
        ai_configure(ai_fakes, keys=("openai",))
        conversation, _ = _complaint(tenant_a)
        with django_capture_on_commit_callbacks(execute=True):
            ticket = ticket_create_from_conversation(
                conversation=conversation, by=None, source=Ticket.Source.RULE, reason=reason
            )
            assert ai_fakes.openai.calls() == []  # nothing asked while the transaction is open
            assert sent == []  # nor queued before the commit
        assert (ticket.title, ticket.description) == (EXTRACTIVE_TITLE, _extractive_description(reason))
        writes = [(args, headers) for name, args, headers in sent if name == WRITE_TASK]
        assert writes == [
            (
                (ticket.pk, conversation.pk, reason, EXTRACTIVE_TITLE, _extractive_description(reason)),
                {"_schema_name": tenant_a.schema},
            )
        ]
    assert ai_fakes.openai.calls() == []


@pytest.mark.django_db
def test_offline_the_ticket_keeps_its_extractive_text_and_nothing_is_queued(
    tenant_a: TenantSetup, ai_fakes: Fakes, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    sent = _sent_tasks(monkeypatch)
    with tenant_context(tenant_a.organization):
        AgentProfile.objects.update(status=AgentProfile.Status.OFFLINE)
        AISettings.objects.filter(pk=SINGLETON_ID).delete()  # the offline default
        conversation, _ = _complaint(tenant_a)
        with django_capture_on_commit_callbacks(execute=True):
            conversation_handoff(conversation=conversation, reason="customer asked for a person")
        ticket = Ticket.objects.get(conversations=conversation)
        reason = "customer asked for a person"
        assert (ticket.title, ticket.description) == (EXTRACTIVE_TITLE, _extractive_description(reason))
        assert list(ticket.events.values_list("kind", flat=True)) == ["created"]
        assert WRITE_TASK not in [name for name, _args, _headers in sent]
    assert ai_fakes.openai.calls() == []


@pytest.mark.django_db
def test_the_write_asks_nothing_once_both_fields_were_edited_and_keeps_the_text_when_no_provider_answers(
    tenant_a: TenantSetup, ai_fakes: Fakes
) -> None:
    with tenant_context(tenant_a.organization):
        ai_configure(ai_fakes, keys=("openai",))
        conversation, _ = _complaint(tenant_a)
        ticket = ticket_create(title="Opened with", description="Opened with", by=None, conversations=[conversation])

        def write(opened_with: str) -> list[str]:
            return ticket_text_write(
                ticket_id=ticket.pk,
                conversation_id=conversation.pk,
                reason="",
                title=opened_with,
                description=opened_with,
            )

        assert write("Something else") == []
        assert ai_fakes.openai.calls() == []  # an agent rewrote both: no provider is paid for

        ai_fakes.openai.script("generate", Reply(500), Reply(500))
        assert write("Opened with") == []
        assert len(ai_fakes.openai.calls()) == 2  # asked (and retried once), then gave up
        ticket.refresh_from_db()
        assert (ticket.title, ticket.description) == ("Opened with", "Opened with")
        assert list(ticket.events.values_list("kind", flat=True)) == ["created"]


# --- committed, through the real worker ----------------------------------------------------


@pytest.mark.usefixtures("committed_db")
def test_an_escalation_rule_opens_the_ticket_at_once_and_the_provider_writes_it_after_the_commit(
    celery_worker: str, committed_tenant: TenantSetup, ai_fakes: Fakes
) -> None:
    tenant = committed_tenant
    reason = "escalation rule: refunds"
    with tenant_context(tenant.organization):
        ai_configure(ai_fakes, keys=("openai",))
        EscalationRule.objects.create(
            name="refunds", position=1, trigger="keyword", pattern="refund", action="escalate"
        )
        conversation, message = _complaint(tenant)
        seen = _observe(ai_fakes, tenant, conversation.pk)

        # What the analysis transaction's commit runs: the rule hands off and opens the ticket.
        message_analysed_received(message)

        ticket = Ticket.objects.get(conversations=conversation)
        _wait_for(lambda: Ticket.objects.get(pk=ticket.pk).title == TITLE)
        ticket.refresh_from_db()
        assert ticket.source == "rule" and ticket.description == _written_description(reason)
        # Both calls (summary, title) came after the commit: the conversation was free and the
        # ticket was already there, with the conversation's own words.
        assert seen == [Seen(False, EXTRACTIVE_TITLE), Seen(False, EXTRACTIVE_TITLE)]
        written = ticket.events.get(kind=TicketEvent.Kind.CHANGED)
        assert written.actor is None and written.changes == {
            "title": {"from": EXTRACTIVE_TITLE, "to": TITLE},
            "description": {"from": _extractive_description(reason), "to": _written_description(reason)},
        }
        assert list(ticket.events.values_list("kind", flat=True)) == ["created", "rule", "changed"]


@pytest.mark.usefixtures("committed_db")
def test_an_agents_edit_made_while_the_provider_writes_is_kept(
    celery_worker: str, committed_tenant: TenantSetup, ai_fakes: Fakes
) -> None:
    tenant = committed_tenant
    reason = "customer asked for a person"
    with tenant_context(tenant.organization):
        agent = user_create(email=f"text-{next(_numbers)}@example.test", password=None, role=AGENT)
        ai_configure(ai_fakes, keys=("openai",))
        conversation, _ = _complaint(tenant)

        def agent_edits_the_title() -> None:
            with tenant_context(tenant.organization):
                ticket = Ticket.objects.get(conversations=conversation.pk)
                ticket_update(ticket=ticket, by=agent, title="Refund for order 1234")

        seen = _observe(ai_fakes, tenant, conversation.pk, then=agent_edits_the_title)

        # Committed: the hand-off's ticket opens after the commit (the on_handoff hook).
        conversation_handoff(conversation=conversation, reason=reason)

        ticket = Ticket.objects.get(conversations=conversation)
        _wait_for(lambda: ticket.events.filter(kind=TicketEvent.Kind.CHANGED, actor=None).exists())
        ticket.refresh_from_db()
        assert ticket.source == "handoff"
        assert ticket.title == "Refund for order 1234"  # the agent's, not the provider's
        assert ticket.description == _written_description(reason)  # nobody edited it: the provider's
        assert seen == [Seen(False, EXTRACTIVE_TITLE), Seen(False, "Refund for order 1234")]
        changes = [(event.actor_id, event.changes) for event in ticket.events.filter(kind=TicketEvent.Kind.CHANGED)]
        assert changes == [
            (agent.pk, {"title": {"from": EXTRACTIVE_TITLE, "to": "Refund for order 1234"}}),
            (None, {"description": {"from": _extractive_description(reason), "to": _written_description(reason)}}),
        ]


@pytest.mark.usefixtures("committed_db")
def test_a_flows_create_ticket_is_written_after_the_flows_commit(
    celery_worker: str, committed_tenant: TenantSetup, ai_fakes: Fakes
) -> None:
    tenant = committed_tenant
    with tenant_context(tenant.organization):
        ai_configure(ai_fakes, keys=("openai",))
        flow = Flow.objects.create(
            name="Refunds",
            draft=graph_of(
                node("ticket", "action", action="create_ticket", value="refund requested"),
                trigger={"kind": "keyword", "keywords": ["refund"]},
            ),
        )
        flow_publish(flow=flow, by=None)
        flow_activate(flow=flow, active=True)
        conversation, message = _complaint(tenant)
        seen = _observe(ai_fakes, tenant, conversation.pk)

        # The flow's effects are applied in the short transaction that locks the conversation.
        flow_handle_message(message)

        ticket = Ticket.objects.get(conversations=conversation)
        _wait_for(lambda: Ticket.objects.get(pk=ticket.pk).title == TITLE)
        ticket.refresh_from_db()
        assert ticket.description == _written_description("refund requested")
        assert seen == [Seen(False, EXTRACTIVE_TITLE), Seen(False, EXTRACTIVE_TITLE)]


@pytest.mark.usefixtures("committed_db")
def test_an_agent_creating_the_ticket_gets_the_written_text_at_once(
    committed_tenant: TenantSetup, ai_fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent's request holds no transaction: the provider writes before the ticket is created."""
    tenant = committed_tenant
    sent = _sent_tasks(monkeypatch)
    with tenant_context(tenant.organization):
        manager = user_create(email=f"text-{next(_numbers)}@example.test", password=None, role=SUPPORT_MANAGER)
        token = Token.objects.create(user=manager)
        ai_configure(ai_fakes, keys=("openai",))
        conversation, _ = _complaint(tenant)
        seen = _observe(ai_fakes, tenant, conversation.pk)
    client = APIClient(HTTP_HOST=tenant.domain)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    created = client.post("/api/v1/tickets/from-conversation/", {"conversation": conversation.pk}, format="json")
    assert created.status_code == 201, created.content
    assert (created.json()["title"], created.json()["description"]) == (TITLE, f"{SUMMARY}\n\nIntent: complaint")
    assert seen == [Seen(False, None), Seen(False, None)]  # asked before the ticket's transaction
    assert WRITE_TASK not in [name for name, _args, _headers in sent]  # nothing left to write later
