"""An SLA breach detected by the precise countdown task, through the real broker and worker."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.tenancy import tenant_context
from apps.tickets.models import SLAEvent, SLAPolicy, Ticket
from apps.tickets.services.tickets import ticket_create, ticket_update
from tests.conftest import TenantSetup

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
