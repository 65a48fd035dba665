"""CSAT when a ticket is solved, and the sweep that opens the tickets hand-offs failed to open."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts.models import AgentProfile, User
from apps.accounts.roles import AGENT
from apps.accounts.services import user_create
from apps.contacts.models import Contact
from apps.conversations.lifecycle import conversation_handoff, conversation_resolve
from apps.conversations.models import Conversation, ConversationEvent, Message
from apps.conversations.tests.factories import conversation_create, message_inbound_create
from apps.core.tenancy import tenant_context
from apps.tickets.models import CsatSurvey, Ticket
from apps.tickets.receivers import message_analysed_received
from apps.tickets.services.tickets import ticket_create, ticket_update
from apps.tickets.tasks import tickets_handoff_sweep_task
from apps.whatsapp.outbox import outbox_deliver
from tests.conftest import TenantSetup, ticket_inserts_refuse
from tests.fakes.graph_api import FakeGraphApi

pytestmark = pytest.mark.django_db

_numbers = itertools.count(1)
Capture = Callable[..., Any]


def _agent() -> User:
    user = user_create(email=f"solve-{next(_numbers)}@example.test", password=None, role=AGENT)
    AgentProfile.objects.update(status=AgentProfile.Status.OFFLINE)
    return User.objects.get(pk=user.pk)


def _conversation(tenant: TenantSetup, *, window_open: bool = True, **fields: Any) -> Conversation:
    window = timezone.now() + (timedelta(hours=5) if window_open else -timedelta(hours=1))
    contact = Contact.objects.create(wa_id=f"2557{next(_numbers):08d}", profile_name="Juma", language="en")
    return conversation_create(
        contact=contact, account=tenant.whatsapp, last_message_at=timezone.now(), window_expires_at=window, **fields
    )


def _inbound(conversation: Conversation, text: str) -> Message:
    return message_inbound_create(conversation=conversation, text=text)


# --- CSAT on solve --------------------------------------------------------------------------


def test_solving_a_ticket_asks_for_a_rating_inside_the_window_once(
    tenant_a: TenantSetup, graph_api: FakeGraphApi, django_capture_on_commit_callbacks: Capture
) -> None:
    with tenant_context(tenant_a.organization):
        agent = _agent()
        conversation = _conversation(tenant_a, status="assigned", assigned_agent=agent)
        ticket = ticket_create(title="Refund", by=None, conversations=[conversation], assignee=agent)
        with django_capture_on_commit_callbacks(execute=True):
            ticket = ticket_update(ticket=ticket, by=agent, status="solved")
        survey = CsatSurvey.objects.get(ticket=ticket)
        assert survey.channel == "interactive" and survey.conversation == conversation and survey.agent == agent
        assert survey.message is not None and survey.message.outbox is not None
        outbox_deliver(outbox_id=survey.message.outbox.pk)
        body = graph_api.sent_messages()[-1].body
        assert body["type"] == "interactive" and body["interactive"]["type"] == "list"
        rows = body["interactive"]["action"]["sections"][0]["rows"]
        assert [row["id"] for row in rows] == [f"csat:{survey.pk}:{n}" for n in (5, 4, 3, 2, 1)]

        # Reopened and solved again: not asked twice for one ticket.
        with django_capture_on_commit_callbacks(execute=True):
            ticket = ticket_update(ticket=ticket, by=agent, status="open")
            ticket = ticket_update(ticket=ticket, by=agent, status="solved")
        assert CsatSurvey.objects.filter(ticket=ticket).count() == 1

        # Then the conversation is resolved: the customer was just asked, so not again.
        with django_capture_on_commit_callbacks(execute=True):
            conversation_resolve(conversation=conversation, by=agent)
        assert CsatSurvey.objects.filter(conversation=conversation).count() == 1

        # The customer's tap is recorded on the ticket's survey and in its history.
        tap = Message.objects.create(
            conversation=conversation,
            direction="in",
            author_kind="customer",
            type="interactive",
            content={"reply": {"kind": "list_reply", "id": f"csat:{survey.pk}:5", "title": "Excellent"}},
            sent_at=timezone.now(),
            wamid=f"wamid.S{next(_numbers)}",
        )
        message_analysed_received(tap)
        survey.refresh_from_db()
        assert survey.score == 5 and ticket.events.filter(kind="csat").exists()


def test_solving_outside_the_window_sends_the_approved_template(
    tenant_a: TenantSetup, graph_api: FakeGraphApi, django_capture_on_commit_callbacks: Capture
) -> None:
    with tenant_context(tenant_a.organization):
        conversation = _conversation(tenant_a, window_open=False)
        ticket = ticket_create(title="Late parcel", by=None, conversations=[conversation])
        with django_capture_on_commit_callbacks(execute=True):
            ticket_update(ticket=ticket, by=None, status="solved")
        survey = CsatSurvey.objects.get(ticket=ticket)
        assert survey.channel == "template"
        assert survey.message is not None and survey.message.outbox is not None
        outbox_deliver(outbox_id=survey.message.outbox.pk)
        body = graph_api.sent_messages()[-1].body
        assert body["type"] == "template" and body["template"]["name"] == "csat_request"
        payloads = [c["parameters"][0]["payload"] for c in body["template"]["components"] if c["type"] == "button"]
        assert payloads == [f"csat:{survey.pk}:{n}" for n in (5, 4, 3, 2, 1)]


def test_no_second_ask_when_the_conversation_resolve_asked_first(
    tenant_a: TenantSetup, graph_api: FakeGraphApi, django_capture_on_commit_callbacks: Capture
) -> None:
    with tenant_context(tenant_a.organization):
        conversation = _conversation(tenant_a)
        ticket = ticket_create(title="Wrong size", by=None, conversations=[conversation])
        with django_capture_on_commit_callbacks(execute=True):
            conversation_resolve(conversation=conversation, by=None)
        first = CsatSurvey.objects.get(conversation=conversation)
        with django_capture_on_commit_callbacks(execute=True):
            ticket_update(ticket=ticket, by=None, status="solved")
        assert list(CsatSurvey.objects.filter(conversation=conversation)) == [first]
        assert first.ticket_id == ticket.pk  # the resolve's survey counts for the ticket

        # A ticket without a conversation has nobody to ask.
        lonely = ticket_create(title="Made by hand", by=None)
        with django_capture_on_commit_callbacks(execute=True):
            ticket_update(ticket=lonely, by=None, status="solved")
        assert not CsatSurvey.objects.filter(ticket=lonely).exists()


# --- hand-offs whose ticket went missing ------------------------------------------------------


def _lost_handoff(tenant: TenantSetup, text: str, *, minutes_ago: int = 5) -> Conversation:
    """A hand-off committed, and the worker lost before its ticket was opened (no on_commit ran)."""
    conversation = _conversation(tenant)
    _inbound(conversation, text)
    conversation_handoff(conversation=conversation, reason="customer asked for a person")
    ConversationEvent.objects.filter(conversation=conversation, kind="handoff").update(
        created=timezone.now() - timedelta(minutes=minutes_ago)
    )
    return conversation


def test_the_sweep_opens_missing_hand_off_tickets_once(tenant_a: TenantSetup, tenant_b: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        AgentProfile.objects.update(status=AgentProfile.Status.OFFLINE)
        lost = _lost_handoff(tenant_a, "My order never came, I want a refund.")
        too_recent = _lost_handoff(tenant_a, "Just now", minutes_ago=0)  # its own creation may still be running
        resolved = _lost_handoff(tenant_a, "Already sorted")
        conversation_resolve(conversation=resolved, by=None)
        covered = _lost_handoff(tenant_a, "Has a ticket")
        existing = ticket_create(title="Opened by an agent", by=None, conversations=[covered])
        assert not Ticket.objects.filter(conversations=lost).exists()

        assert tickets_handoff_sweep_task() == 1
        ticket = Ticket.objects.get(conversations=lost)
        assert ticket.source == "handoff" and ticket.title.startswith("My order never came")
        assert "customer asked for a person" in ticket.description
        assert not Ticket.objects.filter(conversations=too_recent).exists()
        assert not Ticket.objects.filter(conversations=resolved).exists()
        assert list(Ticket.objects.filter(conversations=covered)) == [existing]

        assert tickets_handoff_sweep_task() == 0  # idempotent: never two tickets for one hand-off
        ticket_update(ticket=ticket, by=None, status="solved")
        assert tickets_handoff_sweep_task() == 0  # solved since: still covered
        assert Ticket.objects.filter(conversations=lost).count() == 1
    with tenant_context(tenant_b.organization):
        assert tickets_handoff_sweep_task() == 0
        assert not Ticket.objects.filter(title__startswith="My order never came").exists()


def test_a_failed_hand_off_ticket_is_queued_for_retry_and_the_hand_off_stands(
    tenant_a: TenantSetup, django_capture_on_commit_callbacks: Capture
) -> None:
    """A database error makes ticket creation fail (a calendar without hours no longer does)."""
    with tenant_context(tenant_a.organization):
        AgentProfile.objects.update(status=AgentProfile.Status.OFFLINE)
        ticket_inserts_refuse(refuse=True)
        conversation = _conversation(tenant_a)
        _inbound(conversation, "Please call me back")
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            conversation_handoff(conversation=conversation, reason="asked for a person")
        conversation.refresh_from_db()
        assert conversation.status == "waiting"
        assert not Ticket.objects.filter(conversations=conversation).exists()
        assert len(callbacks) >= 1

        # Once the database accepts tickets again, the sweep opens the ticket.
        ticket_inserts_refuse(refuse=False)
        ConversationEvent.objects.filter(conversation=conversation).update(
            created=timezone.now() - timedelta(minutes=5)
        )
        assert tickets_handoff_sweep_task() == 1
        assert Ticket.objects.filter(conversations=conversation, source="handoff").count() == 1
