"""GET /api/v1/reports/sla: per-period SLA figures from the recorded SLA events, CSAT, roles, tenants."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from apps.accounts.models import Team, User
from apps.accounts.roles import AGENT, SUPPORT_MANAGER
from apps.accounts.services import user_create
from apps.contacts.models import Contact
from apps.conversations.tests.factories import conversation_create
from apps.core.tenancy import tenant_context
from apps.tenants.selectors import organization_zone
from apps.tickets.models import CsatSurvey, SLAPolicy, Ticket
from apps.tickets.services.sla import ticket_sla_check
from apps.tickets.services.tickets import ticket_create, ticket_update
from tests.conftest import TenantSetup

pytestmark = pytest.mark.django_db

_numbers = itertools.count(1)


def _user(role: str) -> User:
    return user_create(email=f"report-{next(_numbers)}@example.test", password=None, role=role)


def _client(tenant: TenantSetup, user: User) -> APIClient:
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient(HTTP_HOST=tenant.domain)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def _answered(tenant: TenantSetup, ticket: Ticket, score: int, agent: User, team: Team | None) -> None:
    contact = Contact.objects.create(wa_id=f"2567{next(_numbers):08d}")
    conversation = conversation_create(contact=contact, account=tenant.whatsapp)
    now = timezone.now()
    CsatSurvey.objects.create(
        conversation=conversation,
        ticket=ticket,
        agent=agent,
        team=team,
        channel="interactive",
        score=score,
        asked_at=now,
        answered_at=now,
    )


def test_the_report_counts_targets_met_and_breached_per_period(tenant_a: TenantSetup, tenant_b: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        Ticket.objects.all().delete()
        SLAPolicy.objects.filter(priority="high").update(is_active=False)
        SLAPolicy.objects.create(name="report", priority="high", first_response_minutes=30, resolution_minutes=120)
        manager, agent = _user(SUPPORT_MANAGER), _user(AGENT)
        team = Team.objects.create(name=f"Report team {next(_numbers)}")
        # Met: answered after 10 minutes, solved in time.
        met = ticket_create(title="Met", by=None, priority="high", assignee=agent, team=team)
        Ticket.objects.filter(pk=met.pk).update(first_responded_at=met.created + timedelta(minutes=10))
        met.refresh_from_db()
        ticket_update(ticket=met, by=None, status="solved")
        # Breached: nobody answered; the checks recorded an at-risk warning, then breaches.
        late = ticket_create(title="Late", by=None, priority="high", assignee=agent, team=team)
        ticket_sla_check(ticket_id=late.pk, now=late.created + timedelta(minutes=25))
        ticket_sla_check(ticket_id=late.pk, now=late.created + timedelta(minutes=130))
        Ticket.objects.filter(pk=late.pk).update(first_responded_at=late.created + timedelta(minutes=50))
        # Another agent's ticket, opened yesterday (another period), without any SLA.
        yesterday = ticket_create(title="No SLA", by=None, priority="low")
        Ticket.objects.filter(pk=yesterday.pk).update(created=timezone.now() - timedelta(days=1))
        _answered(tenant_a, met, 5, agent, team)
        _answered(tenant_a, late, 2, agent, team)

        client = _client(tenant_a, manager)
        today = timezone.localdate(timezone=organization_zone())
        response = client.get("/api/v1/reports/sla", {"from": (today - timedelta(days=1)).isoformat()})
        assert response.status_code == 200, response.json()
        report = response.json()
        assert report["to"] == today.isoformat() and report["period"] == "day"
        assert [p["period"] for p in report["periods"]] == [
            (today - timedelta(days=1)).isoformat(),
            today.isoformat(),
        ]
        day = report["periods"][1]
        assert day["tickets"] == 2 and day["without_sla"] == 0
        assert day["first_response"] == {"met": 1, "breached": 1, "open": 0}
        assert day["resolution"] == {"met": 1, "breached": 1, "open": 0}
        # 25 min: first response at risk (24 of 30 used); 130 min: both breached (no resolution warning).
        assert day["at_risk_warnings"] == 1
        assert day["median_first_response_business_seconds"] == 30 * 60  # (10 + 50) / 2 minutes
        assert report["periods"][0]["without_sla"] == 1
        assert report["totals"]["tickets"] == 3
        assert report["csat"]["by_agent"] == [{"agent": agent.pk, "responses": 2, "average": 3.5, "csat_percent": 50.0}]
        assert report["csat"]["by_team"][0]["team"] == team.pk
        assert report["csat"]["by_period"] == [
            {"period": today.isoformat(), "responses": 2, "average": 3.5, "csat_percent": 50.0}
        ]

        # Time paused (pending, on hold) before the first response is not response time, as
        # on the first-response clock: 80 minutes with 50 of them paused count 30.
        paused = ticket_create(title="Paused", by=None, priority="high", assignee=agent, team=team)
        Ticket.objects.filter(pk=paused.pk).update(
            first_responded_at=paused.created + timedelta(minutes=80), first_response_paused_seconds=50 * 60
        )
        response = client.get("/api/v1/reports/sla", {"from": today.isoformat(), "agent": str(agent.pk)})
        # 10, 30 and 50 minutes: the median is 30 (it would be 50 with the paused time).
        assert response.json()["totals"]["median_first_response_business_seconds"] == 30 * 60
        Ticket.objects.filter(pk=paused.pk).delete()

        by_agent = client.get("/api/v1/reports/sla/", {"agent": str(agent.pk), "period": "month"}).json()
        assert by_agent["totals"]["tickets"] == 2 and len(by_agent["periods"]) == 1
        by_team = client.get("/api/v1/reports/sla/", {"team": str(team.pk)}).json()
        assert by_team["totals"]["first_response"]["breached"] == 1

    with tenant_context(tenant_b.organization):
        other = _client(tenant_b, _user(SUPPORT_MANAGER)).get("/api/v1/reports/sla/").json()
        assert other["totals"]["tickets"] == 0 and other["csat"]["by_agent"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-02-01", "to": "2026-01-01"}, "from"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, "to"),
        ({"from": "yesterday"}, "from"),
        ({"period": "hour"}, "period"),
        ({"team": 999999}, "team"),
        ({"agent": 999999}, "agent"),
        ({"team": "x"}, "team"),
    ],
)
def test_bad_report_parameters_are_clear_400s(tenant_a: TenantSetup, params: dict[str, Any], field: str) -> None:
    with tenant_context(tenant_a.organization):
        response = _client(tenant_a, _user(SUPPORT_MANAGER)).get("/api/v1/reports/sla/", params)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and field in body["extra"]["fields"], body


def test_only_managers_and_admins_read_the_report(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        refused = _client(tenant_a, _user(AGENT)).get("/api/v1/reports/sla/")
        assert refused.status_code == 403 and refused.json()["code"] == "ticket_action_denied"
        admin = User.objects.get(email=tenant_a.admin_email)
        assert _client(tenant_a, admin).get("/api/v1/reports/sla/").status_code == 200
    assert APIClient(HTTP_HOST=tenant_a.domain).get("/api/v1/reports/sla/").status_code in (401, 403)


def test_days_python_cannot_count_from_get_a_400_not_a_500(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        client = _client(tenant_a, _user(SUPPORT_MANAGER))
        # The default start is 29 days before `to`; the report's end is the day after `to`;
        # a week or a month rounds outwards: each of these stepped outside Python's calendar.
        for query in (
            "to=0001-01-05",
            "from=0001-01-01&to=0001-01-05",
            "to=9999-12-31&period=month",
            "from=9999-12-01&to=9999-12-31&period=week",
        ):
            response = client.get(f"/api/v1/reports/sla/?{query}")
            assert response.status_code == 400, (query, response.content)
            body = response.json()
            assert body["code"] == "invalid" and set(body["extra"]["fields"]) <= {"from", "to"}, body
        assert client.get("/api/v1/reports/sla/?from=2000-01-01&to=2000-01-31").status_code == 200
