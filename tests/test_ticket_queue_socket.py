"""The ticket queue's socket (/ws/tickets/): ticket events under the tickets' visibility rule, per tenant."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import transaction

from apps.accounts.models import AgentProfile, Team, User
from apps.accounts.roles import AGENT, KNOWLEDGE_EDITOR, SUPPORT_MANAGER
from apps.accounts.services import user_create
from apps.core.tenancy import tenant_context
from apps.tickets.consumers import CLOSE_FORBIDDEN
from apps.tickets.models import SLAPolicy, Ticket
from apps.tickets.services.sla import ticket_sla_check
from apps.tickets.services.tickets import ticket_create, ticket_update
from imaradesk.asgi import application
from tests.conftest import TenantSetup, session_key_for

pytestmark = pytest.mark.usefixtures("committed_db")

_numbers = itertools.count(1)


@dataclass
class People:
    manager: User
    amina: User
    baraka: User
    editor: User
    team: Team
    other_manager: User


@pytest.fixture
def people(tenant_a: TenantSetup, tenant_b: TenantSetup) -> Iterator[People]:
    tag = next(_numbers)
    with tenant_context(tenant_a.organization):
        team = Team.objects.create(name=f"Queue socket team {tag}")
        SLAPolicy.objects.filter(priority="high").update(is_active=False)
        policy = SLAPolicy.objects.create(
            name=f"socket {tag}", priority="high", first_response_minutes=30, resolution_minutes=300
        )
        amina = user_create(email=f"qsock-a{tag}@alpha.test", password=None, role=AGENT)
        team.members.add(amina)
        people = People(
            manager=user_create(email=f"qsock-m{tag}@alpha.test", password=None, role=SUPPORT_MANAGER),
            amina=amina,
            baraka=user_create(email=f"qsock-b{tag}@alpha.test", password=None, role=AGENT),
            editor=user_create(email=f"qsock-e{tag}@alpha.test", password=None, role=KNOWLEDGE_EDITOR),
            team=team,
            other_manager=amina,  # replaced below, in the other tenant
        )
        AgentProfile.objects.update(status=AgentProfile.Status.OFFLINE)
    with tenant_context(tenant_b.organization):
        people.other_manager = user_create(email=f"qsock-o{tag}@beta.test", password=None, role=SUPPORT_MANAGER)
    yield people
    with tenant_context(tenant_a.organization):
        Ticket.objects.all().delete()
        policy.delete()
        User.objects.filter(email__startswith="qsock-").delete()
        Team.objects.filter(pk=team.pk).delete()
    with tenant_context(tenant_b.organization):
        User.objects.filter(email__startswith="qsock-").delete()


def _socket(tenant: TenantSetup, user: User) -> WebsocketCommunicator:
    key = session_key_for(tenant.schema, user)
    headers = [
        (b"host", tenant.domain.encode()),
        (b"origin", f"http://{tenant.domain}".encode()),
        (b"cookie", f"{settings.SESSION_COOKIE_NAME}={key}".encode()),
    ]
    return WebsocketCommunicator(application, "/ws/tickets/", headers=headers)


async def _open(tenant: TenantSetup, user: User) -> WebsocketCommunicator:
    socket: WebsocketCommunicator = await database_sync_to_async(_socket)(tenant, user)
    ok, _code = await socket.connect()
    assert ok
    assert (await socket.receive_json_from(timeout=5))["type"] == "hello"
    return socket


async def _drain(socket: WebsocketCommunicator, timeout: float = 0.8) -> list[dict[str, Any]]:
    received = []
    while not await socket.receive_nothing(timeout=timeout):
        received.append(await socket.receive_json_from(timeout=5))
    return received


@database_sync_to_async
def _in_tenant(tenant: TenantSetup, action: Any) -> Any:
    with tenant_context(tenant.organization), transaction.atomic():
        return action()


def _tickets(events: list[dict[str, Any]], kind: str | None = None) -> set[int]:
    return {e["data"]["ticket"] for e in events if kind is None or e["type"] == kind}


async def test_each_person_hears_about_the_tickets_they_may_see(
    tenant_a: TenantSetup, tenant_b: TenantSetup, people: People
) -> None:
    sockets = {name: await _open(tenant_a, getattr(people, name)) for name in ("manager", "amina", "baraka")}
    sockets["other_tenant"] = await _open(tenant_b, people.other_manager)
    try:
        teams = await _in_tenant(
            tenant_a, lambda: ticket_create(title="Team's", by=None, priority="high", team=people.team)
        )
        barakas = await _in_tenant(
            tenant_a, lambda: ticket_create(title="Baraka's", by=None, priority="high", assignee=people.baraka)
        )
        heard = {name: _tickets(await _drain(socket)) for name, socket in sockets.items()}
        assert heard["manager"] == {teams.pk, barakas.pk}
        assert heard["amina"] == {teams.pk}
        assert heard["baraka"] == {barakas.pk}
        assert heard["other_tenant"] == set()

        # The breach, as the sweep records it: announced to those who may see it, once each.
        await _in_tenant(
            tenant_a, lambda: ticket_sla_check(ticket_id=barakas.pk, now=barakas.created + timedelta(minutes=31))
        )
        heard_events = {name: await _drain(socket) for name, socket in sockets.items()}
        breaches = [e for e in heard_events["baraka"] if e["type"] == "ticket.sla_breached"]
        assert len(breaches) == 1 and breaches[0]["data"]["metric"] == "first_response"
        assert _tickets(heard_events["manager"], "ticket.sla_breached") == {barakas.pk}
        assert _tickets(heard_events["amina"]) == set()
        assert heard_events["other_tenant"] == []

        # A manager moves the team's ticket to Baraka: Amina hears it leave, Baraka hears it come.
        await _in_tenant(tenant_a, lambda: ticket_update(ticket=teams, by=people.manager, assignee=people.baraka))
        assert teams.pk in _tickets(await _drain(sockets["amina"]), "ticket.updated")
        assert teams.pk in _tickets(await _drain(sockets["baraka"]), "ticket.updated")
        assert await _drain(sockets["other_tenant"]) == []
    finally:
        for socket in sockets.values():
            await socket.disconnect()


async def test_people_without_tickets_and_strangers_are_refused(tenant_a: TenantSetup, people: People) -> None:
    editor: WebsocketCommunicator = await database_sync_to_async(_socket)(tenant_a, people.editor)
    ok, code = await editor.connect()
    assert not ok and code == CLOSE_FORBIDDEN
    await editor.disconnect()
    anonymous = WebsocketCommunicator(
        application, "/ws/tickets/", headers=[(b"host", tenant_a.domain.encode()), (b"origin", b"http://x")]
    )
    ok, _code = await anonymous.connect()
    assert not ok
    await anonymous.disconnect()
