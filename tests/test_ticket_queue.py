"""The managers' ticket queue: who sees what, the order, the reasons in words, the page and its rows."""

from __future__ import annotations

import itertools
import re
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from apps.accounts.models import AgentProfile, Team, User
from apps.accounts.roles import AGENT, KNOWLEDGE_EDITOR, SUPPORT_MANAGER
from apps.accounts.services import user_create
from apps.core.tenancy import tenant_context
from apps.tickets.models import SLAPolicy, Ticket
from apps.tickets.queue import risk_factor_words, sla_next_target, ticket_queue_rows
from apps.tickets.services.risk import ticket_risk_refresh
from apps.tickets.services.sla import ticket_sla_check
from apps.tickets.services.tickets import ticket_create, ticket_update
from tests.conftest import PASSWORD, TenantSetup

pytestmark = pytest.mark.django_db

_numbers = itertools.count(1)


def _user(role: str, *, password: str | None = None) -> User:
    user = user_create(email=f"queue-{next(_numbers)}@example.test", password=password, role=role)
    AgentProfile.objects.filter(user=user).update(status=AgentProfile.Status.OFFLINE)
    return User.objects.get(pk=user.pk)


def _policy(priority: str, **fields: Any) -> SLAPolicy:
    SLAPolicy.objects.filter(priority=priority).update(is_active=False)
    targets: dict[str, Any] = {"first_response_minutes": 60, "next_response_minutes": 30, "resolution_minutes": 480}
    targets.update(fields)
    return SLAPolicy.objects.create(name=f"queue {priority} {next(_numbers)}", priority=priority, **targets)


def _signed_in(tenant: TenantSetup, user: User) -> Client:
    client = tenant.client()
    with tenant_context(tenant.organization):  # the session lives in the tenant's schema
        assert client.login(username=user.email, password=PASSWORD)
    return client


def test_people_see_the_queue_their_role_allows(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        team = Team.objects.create(name=f"Queue team {next(_numbers)}")
        manager, agent, colleague, editor = (_user(r) for r in (SUPPORT_MANAGER, AGENT, AGENT, KNOWLEDGE_EDITOR))
        team.members.add(agent)
        mine = ticket_create(title="Mine", by=None, assignee=agent)
        teams = ticket_create(title="Team's, unassigned", by=None, team=team)
        theirs = ticket_create(title="Colleague's", by=None, assignee=colleague)
        solved = ticket_create(title="Solved", by=None, assignee=agent)
        ticket_update(ticket=solved, by=None, status="solved")

        def ids(user: User, **filters: Any) -> set[int]:
            return {row.ticket.pk for row in ticket_queue_rows(user=user, **filters)}

        ours = {mine.pk, teams.pk, theirs.pk}
        assert ids(manager) >= ours and solved.pk not in ids(manager)  # open tickets only
        assert ids(agent) & ours == {mine.pk, teams.pk}
        assert ids(colleague) & ours == {theirs.pk}
        assert ids(editor) == set()
        assert ids(manager, mine=True) & ours == set()
        assert ids(manager, team_id=team.pk) == {teams.pk}


def test_the_queue_is_by_risk_then_the_nearest_due_time_and_words_the_reasons(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization), translation.override("en"):
        _policy("urgent", first_response_minutes=20, resolution_minutes=240)
        _policy("medium", first_response_minutes=60, resolution_minutes=480)
        manager = _user(SUPPORT_MANAGER)
        urgent = ticket_create(title="Urgent one", by=None, priority="urgent")
        later = ticket_create(title="Medium, due later", by=None, priority="medium")
        sooner = ticket_create(title="Medium, due sooner", by=None, priority="medium")
        Ticket.objects.filter(pk=sooner.pk).update(first_response_due_at=timezone.now() + timedelta(minutes=45))
        rows = [row for row in ticket_queue_rows(user=manager) if row.ticket.pk in {urgent.pk, later.pk, sooner.pk}]
        assert [row.ticket.pk for row in rows] == [urgent.pk, sooner.pk, later.pk]

        top = rows[0]
        assert top.ticket.risk_score == 65  # due within 30 min (+40) and urgent (+25)
        assert top.target is not None and top.target.metric == "first_response" and not top.target.paused
        assert len(top.reasons) == 2
        assert re.fullmatch(r"SLA due in (19|20) min \(\+40\)", top.reasons[0]), top.reasons
        assert top.reasons[1] == "Urgent priority (+25)"
        assert top.risk_level == "high"

        # A breach is worded from the live due time, in the reader's language.
        now = timezone.now()
        ticket_sla_check(ticket_id=urgent.pk, now=urgent.created + timedelta(minutes=25))
        urgent.refresh_from_db()
        target = sla_next_target(urgent)
        factor = next(f for f in urgent.risk_factors if f["factor"] == "sla")
        words = risk_factor_words(factor, target=target, now=now + timedelta(minutes=30))
        assert re.fullmatch(r"SLA breached (9|10|11) min ago \(\+40\)", words), words
        with translation.override("fr"):
            french = risk_factor_words({"factor": "urgent", "points": 25}, target=None, now=now)
        assert french == "Priorité urgente (+25)"


def test_a_paused_ticket_shows_its_clock_stopped(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _policy("high", first_response_minutes=30, resolution_minutes=300)
        manager = _user(SUPPORT_MANAGER)
        ticket = ticket_create(title="Waiting on the customer", by=None, priority="high")
        ticket = ticket_update(ticket=ticket, by=None, status="pending")
        row = next(row for row in ticket_queue_rows(user=manager) if row.ticket.pk == ticket.pk)
        assert row.target is not None and row.target.paused
        assert row.target.remaining_at_pause_seconds is not None
        assert 29 * 60 < row.target.remaining_at_pause_seconds <= 30 * 60
        ticket_risk_refresh(ticket=ticket)
        assert all(f["factor"] != "sla" for f in Ticket.objects.get(pk=ticket.pk).risk_factors)


def test_the_page_renders_rows_in_a_constant_number_of_queries(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _policy("urgent", first_response_minutes=20, resolution_minutes=240)
        manager = _user(SUPPORT_MANAGER, password=PASSWORD)
        ticket = ticket_create(title="Card charged twice", by=None, priority="urgent")
    client = _signed_in(tenant_a, manager)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/tickets/rows/").status_code == 200
        return len(queries)

    page = client.get("/tickets/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'id="ticket-{ticket.pk}"' in html and "Card charged twice" in html
    assert "Urgent priority (+25)" in html and "SLA due in" in html
    assert 'data-due="' in html and "/ws/tickets/" in html
    few = count()
    with tenant_context(tenant_a.organization):
        for n in range(4):
            ticket_create(title=f"More {n}", by=None, priority="urgent")
    assert count() == few


def test_the_page_says_when_it_shows_only_the_most_urgent(
    tenant_a: TenantSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("apps.tickets.queue.QUEUE_LIMIT", 2)
    with tenant_context(tenant_a.organization):
        Ticket.objects.all().delete()
        manager = _user(SUPPORT_MANAGER, password=PASSWORD)
        for n in range(3):
            ticket_create(title=f"Waiting {n}", by=None, priority="high" if n else "low")
    client = _signed_in(tenant_a, manager)
    rows = client.get("/tickets/rows/").content.decode()
    assert rows.count('data-ticket="') == 2
    assert "The 2 most urgent of 3 open tickets are shown." in rows
    with translation.override("sw"):
        page = client.get("/tickets/", HTTP_ACCEPT_LANGUAGE="sw").content.decode()
    assert "Tiketi 2 za dharura zaidi kati ya 3" in page
    # All of them fit: no notice.
    narrowed = client.get("/tickets/rows/", {"priority": "high"}).content.decode()
    assert narrowed.count('data-ticket="') == 2 and "most urgent of" not in narrowed


def test_the_page_refuses_people_without_tickets_and_bad_filters(tenant_a: TenantSetup, tenant_b: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        editor = _user(KNOWLEDGE_EDITOR, password=PASSWORD)
        agent = _user(AGENT, password=PASSWORD)
        hidden = ticket_create(title="Somebody else's", by=None, assignee=_user(AGENT))
    anonymous = tenant_a.client().get("/tickets/")
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    assert _signed_in(tenant_a, editor).get("/tickets/").status_code == 403
    assert _signed_in(tenant_a, editor).get("/tickets/rows/").status_code == 403
    agent_page = _signed_in(tenant_a, agent).get("/tickets/")
    assert agent_page.status_code == 200 and "Somebody else" not in agent_page.content.decode()
    bad = _signed_in(tenant_a, agent).get("/tickets/rows/?team=abc")
    assert bad.status_code == 400
    assert _signed_in(tenant_a, agent).get("/tickets/?priority=extreme").status_code == 400

    # Another business's manager sees none of these tickets.
    with tenant_context(tenant_b.organization):
        other = _user(SUPPORT_MANAGER, password=PASSWORD)
    other_page = _signed_in(tenant_b, other).get("/tickets/rows/").content.decode()
    assert "Somebody else" not in other_page and f'id="ticket-{hidden.pk}"' not in other_page


def test_inbox_and_back_office_link_to_the_queue(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        manager = _user(SUPPORT_MANAGER, password=PASSWORD)
        manager.is_staff = True
        manager.save(update_fields=["is_staff"])
    client = _signed_in(tenant_a, manager)
    assert 'href="/tickets/"' in client.get("/inbox/").content.decode()
    assert 'href="/tickets/"' in client.get("/admin/").content.decode()


def test_starter_sla_policies_are_created_once(tenant_a: TenantSetup) -> None:
    from io import StringIO

    from django.core.management import call_command

    with tenant_context(tenant_a.organization):
        SLAPolicy.objects.all().delete()
    out = StringIO()
    call_command("sla_defaults", tenant=tenant_a.organization.slug, stdout=out)
    assert "Created 4" in out.getvalue()
    call_command("sla_defaults", tenant=tenant_a.organization.slug, stdout=out)
    assert "nothing created" in out.getvalue()
    with tenant_context(tenant_a.organization):
        urgent = SLAPolicy.objects.get(priority="urgent")
        assert (urgent.first_response_minutes, urgent.resolution_minutes, urgent.calendar) == (15, 240, None)
        ticket = ticket_create(title="Countdown from the start", by=None, priority="urgent")
        assert ticket.first_response_due_at is not None
