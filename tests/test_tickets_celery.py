"""Through the real broker and worker: an SLA breach by the precise countdown task, a hand-off's ticket retried."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.models import AgentProfile
from apps.contacts.models import Contact
from apps.conversations.lifecycle import conversation_handoff
from apps.conversations.models import ConversationEvent, Message
from apps.conversations.tests.factories import conversation_create
from apps.core.tenancy import tenant_context
from apps.tickets.models import SLAEvent, SLAPolicy, Ticket
from apps.tickets.services.tickets import ticket_create, ticket_update
from apps.tickets.tasks import tickets_handoff_sweep_task
from tests.conftest import TenantSetup, tenant_conversations_wipe, ticket_inserts_refuse

pytestmark = pytest.mark.usefixtures("committed_db")


def test_a_breach_is_recorded_by_the_eta_task_in_its_own_tenant(
    celery_worker: str, tenant_a: TenantSetup, tenant_b: TenantSetup
) -> None:
    with tenant_context(tenant_a.organization):
        SLAPolicy.objects.filter(priority="high").update(is_active=False)
        policy = SLAPolicy.objects.create(
            name="ETA test", priority="high", first_response_minutes=1, resolution_minutes=600
        )
        ticket = ticket_create(title="Due in two seconds", by=None, priority="high")
        try:
            # Pretend it was opened 58 s ago: the first response is due in 2 s.
            Ticket.objects.filter(pk=ticket.pk).update(created=timezone.now() - timedelta(seconds=58))
            ticket.refresh_from_db()
            ticket = ticket_update(ticket=ticket, by=None, tags=["eta"])  # recomputes and queues the checks
            assert ticket.first_response_due_at is not None
            assert ticket.first_response_due_at - timezone.now() < timedelta(seconds=3)
            assert not SLAEvent.objects.filter(ticket=ticket).exists()

            deadline = time.monotonic() + 30
            while not SLAEvent.objects.filter(ticket=ticket, kind="breached").exists():
                assert time.monotonic() < deadline, "the ETA task did not record the breach"
                time.sleep(0.2)
            event = SLAEvent.objects.get(ticket=ticket, kind="breached")
            assert event.metric == "first_response" and event.due_at == ticket.first_response_due_at
            assert event.created >= ticket.first_response_due_at  # not before it was due
            ticket.refresh_from_db()
            assert ticket.sla_breached and ticket.risk_score >= 40
            ticket_id = ticket.pk
        finally:
            Ticket.objects.filter(pk=ticket.pk).delete()
            policy.delete()
    with tenant_context(tenant_b.organization):
        assert not SLAEvent.objects.filter(ticket_id=ticket_id).exists()


def test_a_failed_hand_off_ticket_is_opened_later_by_the_worker_once(
    celery_worker: str, tenant_a: TenantSetup, tenant_b: TenantSetup
) -> None:
    """Ticket creation fails at the hand-off (a database error); the retry and sweep recover it."""
    with tenant_context(tenant_a.organization):
        AgentProfile.objects.update(status=AgentProfile.Status.OFFLINE)
        SLAPolicy.objects.filter(priority="medium").update(is_active=False)
        policy = SLAPolicy.objects.create(
            name="Retry test", priority="medium", first_response_minutes=60, resolution_minutes=600
        )
        ticket_inserts_refuse(refuse=True)
        contact = Contact.objects.create(wa_id="254799000111", profile_name="Wanjiru", language="en")
        conversation = conversation_create(contact=contact, account=tenant_a.whatsapp)
        Message.objects.create(
            conversation=conversation,
            direction="in",
            author_kind="customer",
            type="text",
            text="My meter token did not arrive.",
            sent_at=timezone.now(),
            wamid="wamid.RETRY1",
        )
        try:
            # Committed: the hand-off's ticket is attempted after the commit, fails, and a retry is queued.
            conversation_handoff(conversation=conversation, reason="customer asked for a person")
            conversation.refresh_from_db()
            assert conversation.status == "waiting"
            assert not Ticket.objects.filter(conversations=conversation).exists()

            # The database accepts tickets again; the worker's retry opens the ticket.
            ticket_inserts_refuse(refuse=False)
            deadline = time.monotonic() + 60
            while not Ticket.objects.filter(conversations=conversation).exists():
                assert time.monotonic() < deadline, "the retry task did not open the ticket"
                time.sleep(0.2)
            ticket = Ticket.objects.get(conversations=conversation)
            assert ticket.source == "handoff" and ticket.title.startswith("My meter token")
            assert ticket.first_response_due_at is not None

            # The Beat sweep, run by the worker in this tenant, finds nothing left to open.
            ConversationEvent.objects.filter(conversation=conversation).update(
                created=timezone.now() - timedelta(minutes=5)
            )
            result = tickets_handoff_sweep_task.apply_async(headers={"_schema_name": tenant_a.schema})
            assert result.get(timeout=30) == 0
            assert Ticket.objects.filter(conversations=conversation).count() == 1
            conversation_id = conversation.pk
        finally:
            ticket_inserts_refuse(refuse=False)
            Ticket.objects.filter(conversations=conversation).delete()
            policy.delete()
            tenant_conversations_wipe(tenant_a)
    with tenant_context(tenant_b.organization):
        assert not Ticket.objects.filter(conversations=conversation_id).exists()
