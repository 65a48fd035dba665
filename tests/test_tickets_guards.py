"""Tickets stay usable when the back office holds bad settings: calendars, refused admin saves."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import time, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.accounts.models import AgentProfile
from apps.accounts.roles import KNOWLEDGE_EDITOR
from apps.accounts.services import user_create
from apps.contacts.models import Contact
from apps.conversations.lifecycle import conversation_handoff
from apps.conversations.tests.factories import conversation_create
from apps.core.tenancy import tenant_context
from apps.tickets.models import BusinessCalendar, BusinessHoursPeriod, SLAPolicy, Ticket
from apps.tickets.services.tickets import ticket_create, ticket_update
from tests.conftest import PASSWORD, TenantSetup

pytestmark = pytest.mark.django_db

_numbers = itertools.count(1)
Capture = Callable[..., Any]


def _policy(priority: str, calendar: BusinessCalendar | None) -> SLAPolicy:
    SLAPolicy.objects.filter(priority=priority).update(is_active=False)
    return SLAPolicy.objects.create(
        name=f"{priority} {next(_numbers)}",
        priority=priority,
        calendar=calendar,
        first_response_minutes=60,
        next_response_minutes=30,
        resolution_minutes=480,
    )


def _open_all_week(calendar: BusinessCalendar) -> BusinessCalendar:
    for day in range(7):
        BusinessHoursPeriod.objects.create(calendar=calendar, weekday=day, start=time(0), end=time(0))
    return calendar


def _admin_client(tenant: TenantSetup) -> Any:
    client = tenant.client()
    login = client.post("/admin/login/", {"username": tenant.admin_email, "password": tenant.password})
    assert login.status_code == 302
    return client


def test_a_calendar_time_zone_must_be_one_the_clocks_can_read(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        for bad in ("EAT", "Nairobi", "Africa/Nairobi ", "localtime"):
            with pytest.raises(ValidationError, match="Unknown time zone"):
                BusinessCalendar(name=f"Bad {next(_numbers)}", time_zone=bad).full_clean()
        for good in ("Africa/Nairobi", ""):
            BusinessCalendar(name=f"Good {next(_numbers)}", time_zone=good).full_clean()

    client = _admin_client(tenant_a)
    page = client.get("/admin/tickets/businesscalendar/add/")
    assert page.status_code == 200
    assert b'<option value="Africa/Nairobi">' in page.content  # a list to pick from, not free text
    form = {
        "name": "Typed by hand",
        "time_zone": "EAT",
        "periods-TOTAL_FORMS": "0",
        "periods-INITIAL_FORMS": "0",
        "holidays-TOTAL_FORMS": "0",
        "holidays-INITIAL_FORMS": "0",
    }
    refused = client.post("/admin/tickets/businesscalendar/add/", form)
    assert refused.status_code == 200 and b"errorlist" in refused.content
    with tenant_context(tenant_a.organization):
        assert not BusinessCalendar.objects.filter(name="Typed by hand").exists()
    added = client.post("/admin/tickets/businesscalendar/add/", {**form, "time_zone": "Africa/Nairobi"})
    assert added.status_code == 302, added.content[:2000]
    with tenant_context(tenant_a.organization):
        assert BusinessCalendar.objects.get(name="Typed by hand").time_zone == "Africa/Nairobi"


def test_a_stored_unknown_time_zone_or_an_empty_calendar_never_fails_a_ticket(
    tenant_a: TenantSetup, django_capture_on_commit_callbacks: Capture
) -> None:
    with tenant_context(tenant_a.organization):
        # Saved before the admin checked the name: the organisation's zone stands in for it.
        bad = _open_all_week(BusinessCalendar.objects.create(name=f"EAT {next(_numbers)}", time_zone="EAT"))
        _policy("medium", bad)
        ticket = ticket_create(title="Wrong zone", by=None)
        assert ticket.first_response_due_at is not None
        assert abs((ticket.first_response_due_at - ticket.created) - timedelta(minutes=60)) < timedelta(seconds=1)
        ticket = ticket_update(ticket=ticket, by=None, status="on_hold")
        ticket = ticket_update(ticket=ticket, by=None, status="open")
        assert ticket.resolution_due_at is not None

        # A calendar with no hours would never come due: its clocks run around the clock.
        empty = BusinessCalendar.objects.create(name=f"No hours {next(_numbers)}")
        _policy("high", empty)
        urgent = ticket_create(title="No hours", by=None, priority="high")
        assert urgent.first_response_due_at is not None
        assert abs((urgent.first_response_due_at - urgent.created) - timedelta(minutes=60)) < timedelta(seconds=1)

        # A hand-off under that policy gets its ticket at once.
        AgentProfile.objects.update(status=AgentProfile.Status.OFFLINE)
        window = timezone.now() + timedelta(hours=5)
        contact = Contact.objects.create(wa_id=f"2547990{next(_numbers):05d}")
        conversation = conversation_create(
            contact=contact,
            account=tenant_a.whatsapp,
            priority="high",
            last_message_at=timezone.now(),
            window_expires_at=window,
        )
        with django_capture_on_commit_callbacks(execute=True):
            conversation_handoff(conversation=conversation, reason="customer asked for a person")
        handed = Ticket.objects.get(conversations=conversation)
        assert handed.first_response_due_at is not None


def test_a_ticket_the_service_refuses_in_the_admin_is_an_error_on_the_form(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        # A knowledge editor given the admin's ticket permissions, but not the role's capability.
        editor = user_create(email=f"editor-{next(_numbers)}@example.test", password=PASSWORD, role=KNOWLEDGE_EDITOR)
        editor.user_permissions.add(
            *Permission.objects.filter(content_type__app_label="tickets", codename__in=["add_ticket", "view_ticket"])
        )
        before = Ticket.objects.count()
    client = tenant_a.client()
    assert client.post("/admin/login/", {"username": editor.email, "password": PASSWORD}).status_code == 302
    response = client.post(
        "/admin/tickets/ticket/add/",
        {
            "title": "Not mine to open",
            "description": "",
            "status": "new",
            "priority": "high",
            "tags": "",
            "conversations": "",
            "events-TOTAL_FORMS": "0",
            "events-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert b"Your role does not allow this." in response.content and b"errornote" in response.content
    with tenant_context(tenant_a.organization):
        assert Ticket.objects.count() == before
