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
from apps.conversations.tests.factories import conversation_create
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
    with tenant_context(tenant_a.organization):
        # Opening the inbox puts an agent online, and the bot hands this customer off (the
        # knowledge base has no answer): neither agent speaks Swahili, so nobody is assigned
        # automatically and the conversation waits in the queue both agents see.
        AgentProfile.objects.filter(user__in=[agents.amina, agents.baraka]).update(languages=["fr"])
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

        # Both of Alpha's agents see it arrive without a reload, and it waits for a person.
        for page in (amina, baraka):
            page.locator("#conversations li", has_text="Neema").wait_for(timeout=60_000)

        def handed_off() -> bool:
            with tenant_context(tenant_a.organization):
                return Conversation.objects.filter(contact__wa_id=CUSTOMER, status="waiting").exists()

        _eventually(handed_off)

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
            # The reply's row (the bot's hand-off notice went out before it).
            wamid = OutboxMessage.objects.get(to_wa_id=CUSTOMER, payload__text__body__icontains="imetumwa").wamid
        assert wamid
        wp.post(wp.status(tenant_a.whatsapp.phone_number_id, wamid, "read", timestamp=int(time.time())))
        amina.locator("#messages li.agent .ticks.read").wait_for(timeout=30_000)

        # The side pane shows the ticket the hand-off opened, with its escalation risk.
        amina.locator("#ticket .risk").wait_for(timeout=20_000)
        assert "Escalation risk" in amina.inner_text("#ticket")
        assert amina.locator("#ticket-open").is_hidden()  # one ticket per conversation

        # The other business's agent saw nothing at all.
        assert zuri.locator("#conversations li").count() == 0
        assert "Neema" not in zuri.content()
        assert errors == []
    finally:
        for page in (amina, baraka, zuri):
            page.context.close()


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8


@pytest.fixture
def outbound_files_removed(tenant_a: TenantSetup) -> Iterator[None]:
    """The server and the worker share the stored files (MEDIA_ROOT): remove the test's afterwards."""
    from apps.whatsapp.models import Media

    yield
    with tenant_context(tenant_a.organization):
        for media in Media.objects.exclude(file=""):
            media.file.delete(save=False)
        Media.objects.all().delete()


def test_an_agent_sends_a_photo_and_sees_it_with_its_ticks(
    browser: Any,
    live_server_tenants: LiveServer,
    celery_worker: str,
    graph_api: FakeGraphApi,
    tenant_a: TenantSetup,
    agents: Agents,
    outbound_files_removed: None,
) -> None:
    errors: list[str] = []
    amina = _signed_in_inbox(browser, live_server_tenants, tenant_a, agents.amina.email)
    amina.on("pageerror", lambda error: errors.append(str(error)))
    try:
        number = tenant_a.whatsapp.phone_number_id
        wp.post(wp.text(number, "wamid.ATTACH1", "Send me a photo", from_wa_id=CUSTOMER, name="Wanjiru"))
        # By name: the list's preview moves on to the bot's answer.
        amina.locator("#conversations li", has_text="Wanjiru").wait_for(timeout=60_000)
        amina.locator("#conversations li", has_text="Wanjiru").click()
        amina.locator("#messages li.customer", has_text="Send me a photo").wait_for(timeout=30_000)
        # The window is open: a countdown of the time left, free text and attachments.
        assert "Window closes in 23h" in amina.inner_text("#window-countdown")
        assert amina.locator("#template-picker").is_hidden()

        amina.set_input_files("#attachment", files=[{"name": "parcel.jpg", "mimeType": "image/jpeg", "buffer": JPEG}])
        amina.locator("#attachment-chosen", has_text="parcel.jpg").wait_for(timeout=5_000)
        amina.fill("#reply", "Your parcel, packed")
        amina.press("#reply", "Enter")
        photo = amina.locator("#messages li.agent", has_text="Your parcel, packed")
        photo.locator("img.media").wait_for(timeout=20_000)
        assert amina.locator("#attachment-chosen").is_hidden()  # the composer is empty again

        # The worker uploads the file, then sends it by its media id.
        _eventually(lambda: any(m.body.get("type") == "image" for m in graph_api.sent_messages()))
        sent = next(m for m in graph_api.sent_messages() if m.body.get("type") == "image")
        assert sent.body["to"] == CUSTOMER and sent.body["image"]["caption"] == "Your parcel, packed"
        assert graph_api.uploads[sent.body["image"]["id"]].content == JPEG
        # The picture the agent sees is the stored file.
        src = photo.locator("img.media").get_attribute("src")
        assert src is not None
        assert amina.evaluate("async (src) => (await (await fetch(src)).arrayBuffer()).byteLength", src) == len(JPEG)

        with tenant_context(tenant_a.organization):
            wamid = OutboxMessage.objects.get(to_wa_id=CUSTOMER, kind="media").wamid
        assert wamid
        wp.post(wp.status(tenant_a.whatsapp.phone_number_id, wamid, "delivered", timestamp=int(time.time())))
        photo.locator(".ticks.delivered").wait_for(timeout=30_000)
        assert errors == []
    finally:
        amina.context.close()


def test_outside_the_window_the_composer_is_a_template_picker(
    browser: Any,
    live_server_tenants: LiveServer,
    celery_worker: str,
    graph_api: FakeGraphApi,
    tenant_a: TenantSetup,
    agents: Agents,
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from apps.contacts.models import Contact
    from apps.conversations.models import Message
    from apps.tenants.models import WhatsAppAccount
    from apps.whatsapp.message_templates import message_templates_sync

    graph_api.templates["WABA-BROWSER"] = [
        {"id": "1", "name": "order_ready", "language": "en", "status": "APPROVED", "category": "UTILITY",
         "components": [{"type": "BODY", "text": "Hello {{1}}, your order {{2}} is ready."}]},
        {"id": "2", "name": "order_ready", "language": "sw", "status": "APPROVED", "category": "UTILITY",
         "components": [{"type": "BODY", "text": "Habari {{1}}, oda yako {{2}} iko tayari."}]},
        {"id": "3", "name": "draft", "language": "sw", "status": "PENDING", "category": "MARKETING",
         "components": [{"type": "BODY", "text": "Not approved"}]},
    ]  # fmt: skip
    WhatsAppAccount.objects.filter(pk=tenant_a.whatsapp.pk).update(waba_id="WABA-BROWSER")
    errors: list[str] = []
    try:
        with tenant_context(tenant_a.organization):
            account = WhatsAppAccount.objects.get(pk=tenant_a.whatsapp.pk)
            message_templates_sync(account=account)
            closed = timezone.now() - timedelta(hours=2)
            contact = Contact.objects.create(wa_id=CUSTOMER, profile_name="Neema", language="sw")
            conversation = conversation_create(
                contact=contact, account=account, language="sw", window_expires_at=closed, last_message_at=closed
            )
            Message.objects.create(
                conversation=conversation, direction="in", author_kind="customer", type="text",
                text="Nitakuja kesho", sent_at=closed - timedelta(hours=22), wamid="wamid.OLD1",
            )  # fmt: skip
        amina = _signed_in_inbox(browser, live_server_tenants, tenant_a, agents.amina.email)
        amina.on("pageerror", lambda error: errors.append(str(error)))
        amina.locator("#conversations li", has_text="Neema").click()
        amina.locator("#template-picker").wait_for(state="visible", timeout=20_000)
        assert amina.locator("#free-form").is_hidden() and amina.locator("#window-countdown").is_hidden()
        assert "Window closed" in amina.inner_text("#window")
        # Approved templates only, the customer's language (Swahili) first.
        amina.locator("#template-variables input").first.wait_for(timeout=20_000)  # loaded and chosen
        options = amina.locator("#template option").all_inner_texts()
        assert options[1:] == ["order_ready · sw", "order_ready · en"]
        assert amina.input_value("#template") != ""
        assert amina.locator("#send").is_disabled()  # two variables to fill first
        amina.fill("#template-variables input[data-index='1']", "Neema")
        amina.fill("#template-variables input[data-index='2']", "A-42")
        assert amina.inner_text("#template-preview") == "Habari Neema, oda yako A-42 iko tayari."
        amina.click("#send")
        amina.locator("#messages li.agent", has_text="Habari Neema, oda yako A-42 iko tayari.").wait_for(timeout=20_000)
        _eventually(lambda: any(m.body.get("type") == "template" for m in graph_api.sent_messages()))
        sent = next(m for m in graph_api.sent_messages() if m.body.get("type") == "template")
        assert sent.body["to"] == CUSTOMER
        assert sent.body["template"]["name"] == "order_ready" and sent.body["template"]["language"] == {"code": "sw"}
        assert [p["text"] for p in sent.body["template"]["components"][0]["parameters"]] == ["Neema", "A-42"]
        assert errors == []
        amina.context.close()
    finally:
        WhatsAppAccount.objects.filter(pk=tenant_a.whatsapp.pk).update(waba_id="")
        with tenant_context(tenant_a.organization):
            from apps.whatsapp.models import MessageTemplate

            MessageTemplate.objects.all().delete()
