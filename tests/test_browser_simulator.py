"""The customer simulator in a real browser: a newcomer says "hello" and sees it land.

Headless Chromium signs in to the tenant admin, chats on the simulator page, and a real
Celery worker takes the signed webhook through the whole inbound pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connections

from apps.conversations.models import Conversation, Message
from apps.conversations.services import message_send
from apps.core.tenancy import tenant_context, use_public_schema
from apps.tenants.models import WebhookEvent, WhatsAppAccount
from apps.whatsapp import messages as wa
from tests.conftest import LiveServer, TenantSetup, tenant_conversations_wipe

pytestmark = pytest.mark.usefixtures("committed_db")

CUSTOMER = "254700000042"


@pytest.fixture(autouse=True)
def _connections_closed() -> Iterator[None]:
    """While Playwright runs, the test's ORM calls get a connection of their own context
    (asgiref's Local follows contextvars); close it so the test database can be dropped."""
    yield
    connections.close_all()


@pytest.fixture
def sandbox_tenant(tenant_a: TenantSetup) -> Iterator[TenantSetup]:
    WhatsAppAccount.objects.filter(pk=tenant_a.whatsapp.pk).update(transport=WhatsAppAccount.Transport.SANDBOX)
    yield tenant_a
    use_public_schema()
    WebhookEvent.objects.filter(tenant=tenant_a.organization).delete()
    tenant_conversations_wipe(tenant_a)
    WhatsAppAccount.objects.filter(pk=tenant_a.whatsapp.pk).update(transport=WhatsAppAccount.Transport.CLOUD)


def _eventually(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def _sign_in(page: Any, server: LiveServer, tenant: TenantSetup, next_path: str) -> None:
    page.goto(server.url(tenant, f"/admin/login/?next={next_path}"))
    page.fill("input[name=username]", tenant.admin_email)
    page.fill("input[name=password]", tenant.password)
    page.click("input[type=submit]")
    page.wait_for_url(f"**{next_path}")


def test_hello_from_the_browser_lands_in_the_admin_and_buttons_work(
    browser: Any, live_server_tenants: LiveServer, celery_worker: str, sandbox_tenant: TenantSetup
) -> None:
    tenant = sandbox_tenant
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        _sign_in(page, live_server_tenants, tenant, "/simulator/")
        page.fill("#wa-id", CUSTOMER)
        page.dispatch_event("#wa-id", "change")
        page.fill("#text", "hello")
        page.click("#composer button[type=submit]")

        # The customer's bubble comes back from the stored thread, not from the page's memory.
        page.locator("#thread li.msg.customer", has_text="hello").wait_for(timeout=30_000)

        def stored() -> bool:
            with tenant_context(tenant.organization):
                return Message.objects.filter(
                    conversation__contact__wa_id=CUSTOMER, text="hello", analysed_at__isnull=False
                ).exists()

        _eventually(stored)

        # The business answers with reply buttons; the page shows them as WhatsApp does.
        with tenant_context(tenant.organization):
            conversation = Conversation.objects.get(contact__wa_id=CUSTOMER)
            message_send(
                conversation=conversation,
                outgoing=wa.buttons(
                    "How can we help?", [wa.Button("track", "Track my order"), wa.Button("agent", "Talk to us")]
                ),
                author_kind=Message.Author.BOT,
                idempotency_key="browser-test-buttons",
            )
        page.locator("#thread li.msg.business", has_text="How can we help?").wait_for(timeout=30_000)
        page.get_by_role("button", name="Track my order").click()

        def button_reply_stored() -> bool:
            with tenant_context(tenant.organization):
                return Message.objects.filter(
                    conversation__contact__wa_id=CUSTOMER, type="interactive", text="Track my order"
                ).exists()

        _eventually(button_reply_stored)

        # The back office shows the conversation with the customer's messages.
        page.goto(live_server_tenants.url(tenant, f"/admin/conversations/conversation/{conversation.pk}/change/"))
        inline = page.locator("#messages-group")
        assert inline.get_by_text("hello", exact=True).count() == 1
        assert inline.get_by_text("Track my order").count() >= 1
        assert errors == []
    finally:
        context.close()
