"""WhatsApp's 24-hour window belongs to a customer and ONE business number, not to the customer.

A customer's message to number A lets only A send them free-form messages for 24 hours. A
tenant with two numbers must refuse free text on B (our clear 409 `window_closed`, a
template still goes) instead of letting Meta answer 131047, and show each number's own
window in the inbox.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from apps.accounts.models import AgentProfile, User
from apps.accounts.roles import AGENT
from apps.accounts.services import user_create
from apps.contacts.models import ServiceWindow
from apps.contacts.services import contact_seen, service_window_extend
from apps.conversations.lifecycle import conversation_close, conversation_resolve
from apps.conversations.models import Conversation, Message
from apps.conversations.services import inbound_message_record, message_send
from apps.core.tenancy import tenant_context
from apps.tenants.models import WhatsAppAccount
from apps.tickets.models import CsatSurvey
from apps.whatsapp import messages as wa
from apps.whatsapp.models import MessageTemplate, OutboxMessage
from apps.whatsapp.outbox import WindowClosed
from apps.whatsapp.payloads import InboundMessage
from tests.conftest import TenantSetup, admin_user

pytestmark = pytest.mark.django_db

Capture = Callable[..., Any]
CUSTOMER = "254711000077"
_ids = itertools.count(1)


@pytest.fixture
def sales(tenant_a: TenantSetup) -> WhatsAppAccount:
    """Alpha's second number (the first, `tenant_a.whatsapp`, is its support line)."""
    return WhatsAppAccount.objects.create(
        tenant=tenant_a.organization,
        name="Alpha sales",
        phone_number_id="100000000000077",
        display_phone_number="+254 700 000077",
        access_token="token-alpha-sales",
    )


# Whole seconds, as in a webhook; fixed per module so that a test crossing a second still agrees.
NOW = timezone.now().replace(microsecond=0)


def _ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


def _inbound(account: WhatsAppAccount, text: str, at: datetime) -> Conversation:
    inbound = InboundMessage(
        wamid=f"wamid.WIN{next(_ids)}", from_wa_id=CUSTOMER, timestamp=at, type="text", text=text, profile_name="Amani"
    )
    message = inbound_message_record(account=account, inbound=inbound)
    assert message is not None
    return message.conversation


def _agent() -> User:
    user = user_create(email=f"window-{next(_ids)}@example.test", password=None, role=AGENT)
    AgentProfile.objects.filter(user=user).update(status=AgentProfile.Status.OFFLINE)
    return user


def _client(tenant: TenantSetup, user: User) -> APIClient:
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient(HTTP_HOST=tenant.domain)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def _template(account: WhatsAppAccount) -> MessageTemplate:
    return MessageTemplate.objects.create(
        account=account,
        name="follow_up",
        language="en",
        category=MessageTemplate.Category.UTILITY,
        status=MessageTemplate.Status.APPROVED,
        components=[{"type": "BODY", "text": "Hello, we have news about your order."}],
        body_text="Hello, we have news about your order.",
        synced_at=timezone.now(),
    )


def _two_numbers(
    tenant: TenantSetup, sales: WhatsAppAccount, *, replayed_late: bool
) -> tuple[Conversation, Conversation]:
    """The customer wrote to support an hour ago and to sales 30 hours ago: only support's window is open.

    `replayed_late`: the old message to sales is recorded after the new one to support (an
    orphan replayed once its number was added, or a webhook Meta retried for hours).
    """
    if replayed_late:
        support = _inbound(tenant.whatsapp, "Where is my order?", _ago(1))
        old = _inbound(sales, "Do you deliver to Mombasa?", _ago(30))
    else:
        old = _inbound(sales, "Do you deliver to Mombasa?", _ago(30))
        support = _inbound(tenant.whatsapp, "Where is my order?", _ago(1))
    assert support.pk != old.pk and support.contact_id == old.contact_id
    # Fresh rows, as a later request or task would load them.
    return Conversation.objects.get(pk=support.pk), Conversation.objects.get(pk=old.pk)


@pytest.mark.parametrize("replayed_late", [False, True], ids=["in-order", "replayed-late"])
def test_a_message_to_one_number_opens_that_numbers_window_only(
    tenant_a: TenantSetup, sales: WhatsAppAccount, replayed_late: bool
) -> None:
    with tenant_context(tenant_a.organization):
        support, old = _two_numbers(tenant_a, sales, replayed_late=replayed_late)
        client = _client(tenant_a, _agent())

        shown = {row["id"]: row for row in client.get("/api/v1/conversations/").json()["results"]}
        assert shown[support.pk]["window_open"] is True
        assert datetime.fromisoformat(shown[support.pk]["window_expires_at"]) == _ago(1) + timedelta(hours=24)
        assert shown[old.pk]["window_open"] is False
        assert datetime.fromisoformat(shown[old.pk]["window_expires_at"]) == _ago(30) + timedelta(hours=24)
        detail = client.get(f"/api/v1/conversations/{old.pk}/").json()
        assert detail["window_open"] is False


@pytest.mark.parametrize("replayed_late", [False, True], ids=["in-order", "replayed-late"])
def test_an_agent_reply_on_the_other_number_is_refused_and_a_template_still_goes(
    tenant_a: TenantSetup, sales: WhatsAppAccount, replayed_late: bool
) -> None:
    with tenant_context(tenant_a.organization):
        support, old = _two_numbers(tenant_a, sales, replayed_late=replayed_late)
        client = _client(tenant_a, _agent())

        refused = client.post(f"/api/v1/conversations/{old.pk}/messages/", {"text": "Yes we do!"}, format="json")
        assert refused.status_code == 409, refused.content
        assert refused.json()["code"] == "window_closed"
        assert "template" in refused.json()["message"]
        assert not OutboxMessage.objects.filter(account=sales).exists()

        template = _template(sales)
        sent = client.post(
            f"/api/v1/conversations/{old.pk}/messages/", {"template": {"id": template.pk}}, format="json"
        )
        assert sent.status_code == 201, sent.content
        row = OutboxMessage.objects.get(account=sales)
        assert (row.kind, row.to_wa_id) == ("template", CUSTOMER)

        answered = client.post(
            f"/api/v1/conversations/{support.pk}/messages/", {"text": "It ships today."}, format="json"
        )
        assert answered.status_code == 201, answered.content
        assert OutboxMessage.objects.get(account=tenant_a.whatsapp).payload["text"]["body"] == "It ships today."


def test_an_attachment_on_the_other_number_is_refused_before_it_is_stored(
    tenant_a: TenantSetup, sales: WhatsAppAccount
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    png = (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
        b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
    )
    with tenant_context(tenant_a.organization):
        _support, old = _two_numbers(tenant_a, sales, replayed_late=True)
        client = _client(tenant_a, _agent())
        upload = SimpleUploadedFile("map.png", png, content_type="image/png")
        refused = client.post(f"/api/v1/conversations/{old.pk}/messages/", {"file": upload}, format="multipart")
        assert refused.status_code == 409, refused.content
        assert refused.json()["code"] == "window_closed"
        assert not old.messages.filter(direction=Message.Direction.OUTBOUND).exists()


@pytest.mark.parametrize("replayed_late", [False, True], ids=["in-order", "replayed-late"])
def test_a_bot_reply_on_the_other_number_is_refused_before_meta_sees_it(
    tenant_a: TenantSetup, sales: WhatsAppAccount, replayed_late: bool
) -> None:
    with tenant_context(tenant_a.organization):
        support, old = _two_numbers(tenant_a, sales, replayed_late=replayed_late)
        with pytest.raises(WindowClosed) as refused:
            message_send(
                conversation=old, outgoing=wa.text("Yes we do!"), author_kind=Message.Author.BOT, idempotency_key="b1"
            )
        assert refused.value.code == "window_closed"
        assert not OutboxMessage.objects.filter(account=sales).exists()
        message_send(
            conversation=old,
            outgoing=wa.template("follow_up", "en"),
            author_kind=Message.Author.BOT,
            idempotency_key="b2",
        )
        message_send(
            conversation=support, outgoing=wa.text("On its way"), author_kind=Message.Author.BOT, idempotency_key="b3"
        )
        assert sorted(OutboxMessage.objects.values_list("account_id", "kind")) == sorted(
            [(sales.pk, "template"), (tenant_a.whatsapp.pk, "text")]
        )


def test_csat_on_the_other_number_is_a_template(
    tenant_a: TenantSetup, sales: WhatsAppAccount, django_capture_on_commit_callbacks: Capture
) -> None:
    with tenant_context(tenant_a.organization):
        support, old = _two_numbers(tenant_a, sales, replayed_late=True)
        with django_capture_on_commit_callbacks(execute=True):
            conversation_resolve(conversation=old, by=None)
            conversation_resolve(conversation=support, by=None)
        assert CsatSurvey.objects.get(conversation=old).channel == CsatSurvey.Channel.TEMPLATE
        assert CsatSurvey.objects.get(conversation=support).channel == CsatSurvey.Channel.INTERACTIVE


def test_a_new_conversation_on_a_number_keeps_that_numbers_open_window(
    tenant_a: TenantSetup, sales: WhatsAppAccount
) -> None:
    """The customer wrote to support 2 h ago; that conversation was closed; then to sales. A
    late, older message to support starts a new conversation there: support's window is still
    the one the message of 2 h ago opened (not the late message's, nor sales')."""
    with tenant_context(tenant_a.organization):
        first = _inbound(tenant_a.whatsapp, "Where is my order?", _ago(2))
        conversation_close(conversation=first, by=None)
        _inbound(sales, "And do you deliver to Mombasa?", _ago(1))
        later = _inbound(tenant_a.whatsapp, "Hello?", _ago(30))
        assert later.pk != first.pk and later.status != Conversation.Status.CLOSED

        client = _client(tenant_a, _agent())
        detail = client.get(f"/api/v1/conversations/{later.pk}/").json()
        assert detail["window_open"] is True
        assert datetime.fromisoformat(detail["window_expires_at"]) == _ago(2) + timedelta(hours=24)
        sent = client.post(f"/api/v1/conversations/{later.pk}/messages/", {"text": "Still with us?"}, format="json")
        assert sent.status_code == 201, sent.content


def test_a_window_moves_only_forward_and_only_on_its_own_number(tenant_a: TenantSetup, sales: WhatsAppAccount) -> None:
    with tenant_context(tenant_a.organization):
        contact = contact_seen(wa_id=CUSTOMER, profile_name="Amani", at=_ago(3))
        support = service_window_extend(contact=contact, account=tenant_a.whatsapp, at=_ago(3))
        assert support.expires_at == _ago(3) + timedelta(hours=24)

        other = service_window_extend(contact=contact, account=sales, at=_ago(1))
        assert other.pk != support.pk and other.expires_at == _ago(1) + timedelta(hours=24)
        support.refresh_from_db()
        assert support.expires_at == _ago(3) + timedelta(hours=24)  # sales' message leaves it alone

        late = service_window_extend(contact=contact, account=tenant_a.whatsapp, at=_ago(20))
        assert late.pk == support.pk and late.expires_at == _ago(3) + timedelta(hours=24)  # never shortened
        later = service_window_extend(contact=contact, account=tenant_a.whatsapp, at=_ago(2))
        assert later.expires_at == _ago(2) + timedelta(hours=24)
        assert ServiceWindow.objects.filter(contact=contact).count() == 2


def test_the_back_office_shows_each_numbers_window(tenant_a: TenantSetup, sales: WhatsAppAccount) -> None:
    with tenant_context(tenant_a.organization):
        support, old = _two_numbers(tenant_a, sales, replayed_late=True)
        client = tenant_a.client()
        client.force_login(admin_user(tenant_a))
        page = client.get(f"/admin/conversations/conversation/{old.pk}/change/")
        assert page.status_code == 200
        assert page.context["adminform"].form.instance.window.expires_at == _ago(30) + timedelta(hours=24)
        assert b"24-hour window ends" in page.content
        contact = client.get(f"/admin/contacts/contact/{support.contact_id}/change/")
        assert contact.status_code == 200
        assert b"Alpha sales" in contact.content and b"Alpha support" in contact.content  # one window per number
