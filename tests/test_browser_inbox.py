"""The live inbox in real headless Chromium, with a real Celery worker and the fake Graph API.

Two agents of one business and one agent of another are signed in. A customer writes
through the signed webhook; the message appears in both agents' open inboxes without a
reload; one replies, the reply reaches the Graph API, and the other sees the conversation
leave their queue. The other business's agent sees nothing at any point.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connections

from apps.accounts.models import AgentProfile, User
from apps.accounts.roles import AGENT
from apps.accounts.services import user_create
from apps.conversations.models import CannedResponse, Conversation
from apps.core.tenancy import tenant_context, use_public_schema
from apps.tenants.models import WebhookEvent
from apps.whatsapp.models import OutboxMessage
from tests import whatsapp_payloads as wp
from tests.conftest import PASSWORD, LiveServer, TenantSetup, tenant_conversations_wipe
from tests.fakes.graph_api import FakeGraphApi

pytestmark = pytest.mark.usefixtures("committed_db")

CUSTOMER = "254711555001"


@dataclass(frozen=True)
class Agents:
    amina: User
    baraka: User
    other_tenant: User


def _cleanup(tenant: TenantSetup) -> None:
    use_public_schema()
    WebhookEvent.objects.filter(tenant=tenant.organization).delete()
    tenant_conversations_wipe(tenant)
    with tenant_context(tenant.organization):
        User.objects.filter(email__startswith="inbox-").delete()
        CannedResponse.objects.all().delete()


@pytest.fixture(autouse=True)
def _connections_closed() -> Iterator[None]:
    yield
    connections.close_all()  # see test_browser_simulator: Playwright's context gets its own connection


@pytest.fixture
def agents(tenant_a: TenantSetup, tenant_b: TenantSetup) -> Iterator[Agents]:
    with tenant_context(tenant_a.organization):
        amina = user_create(email="inbox-amina@alpha.test", password=PASSWORD, role=AGENT, first_name="Amina")
        baraka = user_create(email="inbox-baraka@alpha.test", password=PASSWORD, role=AGENT, first_name="Baraka")
        # Nobody is online for automatic assignment: the agents act themselves.
        AgentProfile.objects.update(status=AgentProfile.Status.OFFLINE)
        CannedResponse.objects.create(shortcut="karibu", title="Welcome", text="Karibu Neema! Oda yako imetumwa leo.")
    with tenant_context(tenant_b.organization):
        other = user_create(email="inbox-zuri@beta.test", password=PASSWORD, role=AGENT, first_name="Zuri")
    yield Agents(amina, baraka, other)
    _cleanup(tenant_a)
    _cleanup(tenant_b)


def _eventually(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def _signed_in_inbox(browser: Any, server: LiveServer, tenant: TenantSetup, email: str) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(server.url(tenant, "/login/?next=/inbox/"))
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/inbox/")
    page.locator("#connection.live").wait_for(timeout=20_000)  # the socket is up
    return page


def test_a_live_conversation_across_two_agents_and_another_tenant(
    browser: Any,
    live_server_tenants: LiveServer,
    celery_worker: str,
    graph_api: FakeGraphApi,
    tenant_a: TenantSetup,
    tenant_b: TenantSetup,
    agents: Agents,
) -> None:
    errors: list[str] = []
    amina = _signed_in_inbox(browser, live_server_tenants, tenant_a, agents.amina.email)
    baraka = _signed_in_inbox(browser, live_server_tenants, tenant_a, agents.baraka.email)
    zuri = _signed_in_inbox(browser, live_server_tenants, tenant_b, agents.other_tenant.email)
    for page in (amina, baraka, zuri):
        page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        # A customer writes to Alpha's number through the signed webhook.
        response = wp.post(
            wp.text(
                tenant_a.whatsapp.phone_number_id,
                "wamid.INBOX1",
                "Habari, oda yangu iko wapi?",
                from_wa_id=CUSTOMER,
                name="Neema",
            )
        )
        assert response.status_code == 200

        # Both of Alpha's agents see it arrive without a reload.
        for page in (amina, baraka):
            page.locator("#conversations li", has_text="Neema").wait_for(timeout=60_000)

        # Amina opens it and replies; the reply goes through the outbox to the Graph API.
        amina.locator("#conversations li", has_text="Neema").click()
        amina.locator("#messages li.customer", has_text="Habari, oda yangu iko wapi?").wait_for(timeout=20_000)
        # A canned response by its shortcut: "/kar" + Enter inserts it (it is not sent as "/kar").
        amina.locator("#reply").press_sequentially("/kar")
        amina.locator("#suggestions .canned").wait_for(timeout=10_000)
        amina.press("#reply", "Enter")
        assert amina.input_value("#reply") == "Karibu Neema! Oda yako imetumwa leo."
        amina.press("#reply", "Enter")
        amina.locator("#messages li.agent", has_text="Oda yako imetumwa leo").wait_for(timeout=20_000)
        _eventually(lambda: any("imetumwa" in str(m.body) for m in graph_api.sent_messages()))
        sent = [m for m in graph_api.sent_messages() if "imetumwa" in str(m.body)]
        assert len(sent) == 1 and sent[0].body["to"] == CUSTOMER

        # Replying took the conversation over: it leaves Baraka's queue, live.
        baraka.locator("#conversations li", has_text="Neema").wait_for(state="detached", timeout=20_000)
        with tenant_context(tenant_a.organization):
            conversation = Conversation.objects.get(contact__wa_id=CUSTOMER)
            assert (conversation.status, conversation.assigned_agent_id) == ("assigned", agents.amina.pk)
        # The delivery ticks follow the statuses Meta (here the test) sends back.
        with tenant_context(tenant_a.organization):
            wamid = OutboxMessage.objects.get(to_wa_id=CUSTOMER).wamid
        assert wamid
        wp.post(wp.status(tenant_a.whatsapp.phone_number_id, wamid, "read", timestamp=int(time.time())))
        amina.locator("#messages li.agent .ticks.read").wait_for(timeout=30_000)

        # The side pane shows the conversation's ticket; an agent opens one from the thread.
        amina.locator("#ticket", has_text="No ticket yet.").wait_for(timeout=20_000)
        amina.click("#ticket-open")
        amina.locator("#ticket .risk").wait_for(timeout=20_000)
        assert "Escalation risk" in amina.inner_text("#ticket")

        # The other business's agent saw nothing at all.
        assert zuri.locator("#conversations li").count() == 0
        assert "Neema" not in zuri.content()
        assert errors == []
    finally:
        for page in (amina, baraka, zuri):
            page.context.close()
