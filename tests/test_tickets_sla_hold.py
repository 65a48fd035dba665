"""SLA clocks across a hold: the next-response clock is credited, and a clock breaches once per run."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts.models import AgentProfile, User
from apps.accounts.roles import AGENT
from apps.accounts.services import user_create
from apps.contacts.models import Contact
from apps.conversations.models import Conversation, Message
from apps.conversations.tests.factories import conversation_create
from apps.core.tenancy import tenant_context
from apps.tickets.models import SLAEvent, SLAPolicy, Ticket
from apps.tickets.selectors import tickets_sla_check_due
from apps.tickets.services.sla import ticket_sla_check
from apps.tickets.services.tickets import (
    ticket_agent_replied,
    ticket_create,
    ticket_customer_wrote,
    ticket_update,
)
from tests.conftest import TenantSetup

pytestmark = pytest.mark.django_db

_numbers = itertools.count(1)
CLOSE = timedelta(seconds=5)


def _agent() -> User:
    user = user_create(email=f"sla-hold-{next(_numbers)}@example.test", password=None, role=AGENT)
    AgentProfile.objects.filter(user=user).update(status=AgentProfile.Status.OFFLINE)
    return User.objects.get(pk=user.pk)


def _policy(priority: str = "medium", **fields: Any) -> SLAPolicy:
    SLAPolicy.objects.filter(priority=priority).update(is_active=False)
    defaults: dict[str, Any] = {"first_response_minutes": 60, "next_response_minutes": 30, "resolution_minutes": 480}
    defaults.update(fields)
    return SLAPolicy.objects.create(name=f"{priority} {next(_numbers)}", priority=priority, **defaults)


def _conversation(tenant: TenantSetup) -> Conversation:
    window = timezone.now() + timedelta(hours=5)
    contact = Contact.objects.create(wa_id=f"2548{next(_numbers):08d}", profile_name="Amani", language="en")
    return conversation_create(
        contact=contact, account=tenant.whatsapp, last_message_at=timezone.now(), window_expires_at=window
    )


def _message(conversation: Conversation, direction: str, sent_at: datetime | None = None) -> Message:
    return Message.objects.create(
        conversation=conversation,
        direction=direction,
        author_kind="customer" if direction == "in" else "agent",
        type="text",
        text="Any news?" if direction == "in" else "On it",
        sent_at=sent_at or timezone.now(),
        wamid=f"wamid.H{next(_numbers)}",
    )


def _hold(ticket: Ticket, agent: User, *, minutes: float) -> Ticket:
    """Put the ticket on hold, as if `minutes` ago."""
    ticket = ticket_update(ticket=ticket, by=agent, status="on_hold")
    Ticket.objects.filter(pk=ticket.pk).update(sla_paused_at=timezone.now() - timedelta(minutes=minutes))
    ticket.refresh_from_db()
    return ticket


def _answered_ticket(tenant: TenantSetup, agent: User) -> tuple[Ticket, Conversation]:
    conversation = _conversation(tenant)
    ticket = ticket_create(title="Refund", by=agent, conversations=[conversation])
    ticket = ticket_agent_replied(ticket=ticket, message=_message(conversation, "out"))
    assert ticket.first_responded_at is not None
    return ticket, conversation


def _breaches(ticket: Ticket, metric: str) -> int:
    return SLAEvent.objects.filter(ticket=ticket, metric=metric, kind="breached").count()


def test_a_message_during_a_hold_starts_the_next_response_clock_at_resume(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _policy("medium")
        agent = _agent()
        ticket, conversation = _answered_ticket(tenant_a, agent)

        # On hold for two hours (longer than the 30-minute target); the customer wrote 90 minutes ago.
        ticket = _hold(ticket, agent, minutes=120)
        wrote = _message(conversation, "in", sent_at=timezone.now() - timedelta(minutes=90))
        ticket = ticket_customer_wrote(ticket=ticket, message=wrote)
        assert ticket.status == "on_hold" and ticket.next_response_started_at == wrote.sent_at

        ticket = ticket_update(ticket=ticket, by=agent, status="open")
        resumed = timezone.now()
        assert ticket.next_response_due_at is not None
        assert abs(ticket.next_response_due_at - (resumed + timedelta(minutes=30))) < CLOSE
        assert ticket_sla_check(ticket_id=ticket.pk, now=resumed) == []
        assert ticket.pk not in tickets_sla_check_due(now=resumed)

        # A second hold of 10 minutes before anyone answers moves it 10 minutes more.
        due = ticket.next_response_due_at
        ticket = _hold(ticket, agent, minutes=10)
        ticket = ticket_update(ticket=ticket, by=agent, status="open")
        assert ticket.next_response_due_at is not None
        assert abs(ticket.next_response_due_at - (due + timedelta(minutes=10))) < CLOSE


def test_a_hold_after_the_customer_wrote_is_credited_to_the_next_response_clock(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _policy("medium")
        agent = _agent()
        ticket, conversation = _answered_ticket(tenant_a, agent)

        # The customer wrote 130 minutes ago; 10 minutes later the ticket went on hold for 2 hours.
        wrote = _message(conversation, "in", sent_at=timezone.now() - timedelta(minutes=130))
        ticket = ticket_customer_wrote(ticket=ticket, message=wrote)
        assert ticket.next_response_due_at == wrote.sent_at + timedelta(minutes=30)
        ticket = _hold(ticket, agent, minutes=120)

        ticket = ticket_update(ticket=ticket, by=agent, status="open")
        assert ticket.next_response_due_at is not None
        assert abs(ticket.next_response_due_at - (wrote.sent_at + timedelta(minutes=150))) < CLOSE
        assert ticket_sla_check(ticket_id=ticket.pk, now=timezone.now()) == []


def test_a_resume_that_moves_a_passed_due_time_does_not_breach_again(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _policy("low", first_response_minutes=10, resolution_minutes=100)
        agent = _agent()
        ticket = ticket_create(title="Slow", by=agent, priority="low")
        created = ticket.created
        recorded = ticket_sla_check(ticket_id=ticket.pk, now=created + timedelta(minutes=15))
        assert [(e.metric, e.kind) for e in recorded] == [("first_response", "breached")]

        # 20 minutes on hold: the first-response due time moves to 30 minutes, past already at 35.
        ticket = _hold(ticket, agent, minutes=20)
        ticket = ticket_update(ticket=ticket, by=agent, status="open")
        assert ticket.first_response_due_at is not None
        assert abs(ticket.first_response_due_at - (created + timedelta(minutes=30))) < CLOSE
        later = created + timedelta(minutes=35)
        assert ticket.pk not in tickets_sla_check_due(now=later)
        assert ticket_sla_check(ticket_id=ticket.pk, now=later) == []
        assert _breaches(ticket, "first_response") == 1
        assert ticket.events.filter(kind="sla").count() == 1


def test_each_next_response_clock_breaches_once_and_a_new_message_starts_a_new_one(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _policy("medium")
        agent = _agent()
        ticket, conversation = _answered_ticket(tenant_a, agent)

        first = _message(conversation, "in")
        ticket = ticket_customer_wrote(ticket=ticket, message=first)
        recorded = ticket_sla_check(ticket_id=ticket.pk, now=first.sent_at + timedelta(minutes=31))
        assert [(e.metric, e.kind) for e in recorded] == [("next_response", "breached")]

        # An hour on hold moves the (already passed) due time: the same clock, no second breach.
        ticket = _hold(ticket, agent, minutes=60)
        ticket = ticket_update(ticket=ticket, by=agent, status="open")
        assert ticket.next_response_due_at is not None
        assert abs(ticket.next_response_due_at - (first.sent_at + timedelta(minutes=90))) < CLOSE
        later = first.sent_at + timedelta(minutes=95)
        assert ticket.pk not in tickets_sla_check_due(now=later)
        assert ticket_sla_check(ticket_id=ticket.pk, now=later) == []
        assert _breaches(ticket, "next_response") == 1

        # The agent answers; the customer's next message is a new clock, which may breach again.
        ticket = ticket_agent_replied(ticket=ticket, message=_message(conversation, "out"))
        second = _message(conversation, "in")
        ticket = ticket_customer_wrote(ticket=ticket, message=second)
        assert ticket.next_response_due_at == second.sent_at + timedelta(minutes=30)
        again = second.sent_at + timedelta(minutes=31)
        assert ticket.pk in tickets_sla_check_due(now=again)
        recorded = ticket_sla_check(ticket_id=ticket.pk, now=again)
        assert ("next_response", "breached") in [(e.metric, e.kind) for e in recorded]
        assert _breaches(ticket, "next_response") == 2
