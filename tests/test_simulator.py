"""The customer simulator: page, API and command, through the real webhook ingest."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.accounts.models import User
from apps.accounts.roles import AGENT, KNOWLEDGE_EDITOR
from apps.accounts.services import user_create
from apps.conversations.models import Message
from apps.conversations.services import conversation_note_add
from apps.core.tenancy import tenant_context
from apps.tenants.models import WebhookEvent, WhatsAppAccount
from apps.whatsapp import messages as wa
from apps.whatsapp.outbox import outbox_deliver
from apps.whatsapp.processing import webhook_event_process
from tests.conftest import PASSWORD, TenantSetup

pytestmark = pytest.mark.django_db


@pytest.fixture
def sandbox(tenant_a: TenantSetup) -> WhatsAppAccount:
    WhatsAppAccount.objects.filter(pk=tenant_a.whatsapp.pk).update(transport=WhatsAppAccount.Transport.SANDBOX)
    tenant_a.whatsapp.refresh_from_db()
    return tenant_a.whatsapp


def _process_all() -> None:
    for event_id in WebhookEvent.objects.filter(state=WebhookEvent.State.PENDING).values_list("pk", flat=True):
        webhook_event_process(event_id=event_id)


def _signed_in(tenant: TenantSetup):  # type: ignore[no-untyped-def]
    client = tenant.client()
    client.post("/admin/login/", {"username": tenant.admin_email, "password": tenant.password})
    return client


def test_the_page_needs_a_sign_in_and_a_sandbox_number(tenant_a: TenantSetup) -> None:
    assert tenant_a.client().get("/simulator/").status_code == 302
    page = _signed_in(tenant_a).get("/simulator/")
    assert page.status_code == 200
    assert "needs an active sandbox WhatsApp number" in page.content.decode()


def test_hello_from_the_page_lands_as_a_stored_message(tenant_a: TenantSetup, sandbox: WhatsAppAccount) -> None:
    client = _signed_in(tenant_a)
    page = client.get("/simulator/")
    assert page.status_code == 200
    assert b"WhatsApp customer simulator" in page.content
    sent = client.post(
        "/simulator/send/",
        {"wa_id": "254700000009", "name": "Zawadi", "text": "hello"},
        content_type="application/json",
    )
    assert sent.status_code == 201, sent.content
    event = WebhookEvent.objects.get(dedup_key=f"m:{sent.json()['wamid']}")
    assert event.signature == "platform"  # signed like Meta's, verified by the real ingest
    _process_all()
    with tenant_context(tenant_a.organization):
        message = Message.objects.get(wamid=sent.json()["wamid"])
        assert (message.text, message.conversation.contact.profile_name) == ("hello", "Zawadi")
        # The business answers with buttons; the customer's view shows them and the ticks.
        from apps.conversations.services import message_send

        reply = message_send(
            conversation=message.conversation,
            outgoing=wa.buttons("How can we help?", [wa.Button("track", "Track order"), wa.Button("agent", "Agent")]),
            author_kind=Message.Author.BOT,
            idempotency_key="sim-reply-1",
        )
        assert reply.outbox is not None
        outbox_deliver(outbox_id=reply.outbox.pk)
    thread = client.get("/simulator/thread/", {"wa_id": "254700000009"}).json()["messages"]
    assert [m["from_customer"] for m in thread] == [True, False]
    assert thread[1]["buttons"] == [{"id": "track", "title": "Track order"}, {"id": "agent", "title": "Agent"}]
    assert thread[1]["ticks"] == "sent"
    tap = client.post(
        "/simulator/send/",
        {"wa_id": "254700000009", "reply_kind": "button_reply", "reply_id": "track", "reply_title": "Track order"},
        content_type="application/json",
    )
    assert tap.status_code == 201
    _process_all()
    with tenant_context(tenant_a.organization):
        tapped = Message.objects.get(wamid=tap.json()["wamid"])
        assert tapped.content["reply"] == {"kind": "button_reply", "id": "track", "title": "Track order"}


def test_the_simulator_api_refuses_bad_input(tenant_a: TenantSetup, sandbox: WhatsAppAccount) -> None:
    client = _signed_in(tenant_a)
    bad = client.post("/simulator/send/", {"wa_id": "+12", "text": "x"}, content_type="application/json")
    assert bad.status_code == 400
    assert "wa_id" in bad.json()["extra"]["fields"]
    empty = client.post("/simulator/send/", {"wa_id": "254700000009", "text": "  "}, content_type="application/json")
    assert empty.status_code == 400
    assert empty.json()["code"] == "simulator_unavailable"
    assert tenant_a.client().post("/simulator/send/", {}, content_type="application/json").status_code in (401, 403)


def test_another_tenants_sandbox_is_not_reachable(
    tenant_a: TenantSetup, tenant_b: TenantSetup, sandbox: WhatsAppAccount
) -> None:
    page = _signed_in(tenant_b).get("/simulator/")
    assert "needs an active sandbox WhatsApp number" in page.content.decode()


def test_the_command_chats_through_the_ingest(tenant_a: TenantSetup, sandbox: WhatsAppAccount) -> None:
    out = StringIO()
    call_command("wa_simulate", "--tenant", "alpha", "--message", "habari", "--wait", "0", stdout=out)
    assert "Chatting with Alpha support as +254700000001" in out.getvalue()
    assert WebhookEvent.objects.filter(tenant=tenant_a.organization, kind="message").count() == 1
    _process_all()
    with tenant_context(tenant_a.organization):
        assert Message.objects.filter(text="habari").exists()
    with pytest.raises(CommandError, match="No organization"):
        call_command("wa_simulate", "--tenant", "nobody", "--message", "x")


def test_only_people_who_respond_to_conversations_may_use_the_simulator(
    tenant_a: TenantSetup, sandbox: WhatsAppAccount
) -> None:
    with tenant_context(tenant_a.organization):
        editor = user_create(email="sim-editor@alpha.test", password=PASSWORD, role=KNOWLEDGE_EDITOR)
        agent = user_create(email="sim-agent@alpha.test", password=PASSWORD, role=AGENT)
    admin = _signed_in(tenant_a)
    sent = admin.post("/simulator/send/", {"wa_id": "254700000077", "text": "hello"}, content_type="application/json")
    assert sent.status_code == 201
    _process_all()
    with tenant_context(tenant_a.organization):
        conversation = Message.objects.get(wamid=sent.json()["wamid"]).conversation
        conversation_note_add(
            conversation=conversation, author=User.objects.get(email=tenant_a.admin_email), text="VIP, refund quietly"
        )

    editor_client, agent_client = tenant_a.client(), tenant_a.client()
    with tenant_context(tenant_a.organization):
        editor_client.force_login(editor)
        agent_client.force_login(agent)
    assert editor_client.get("/simulator/").status_code == 403
    thread = editor_client.get("/simulator/thread/", {"wa_id": "254700000077"})
    assert thread.status_code == 403 and "VIP" not in thread.content.decode()
    injected = editor_client.post(
        "/simulator/send/", {"wa_id": "254700000077", "text": "fake"}, content_type="application/json"
    )
    assert injected.status_code == 403
    assert WebhookEvent.objects.filter(state=WebhookEvent.State.PENDING).count() == 0  # nothing injected

    assert agent_client.get("/simulator/").status_code == 200
    shown = agent_client.get("/simulator/thread/", {"wa_id": "254700000077"})
    assert shown.status_code == 200
    # The customer's view: an internal note is never part of it.
    assert [m["text"] for m in shown.json()["messages"] if m["from_customer"]] == ["hello"]
    assert "VIP" not in shown.content.decode()
