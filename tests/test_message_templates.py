"""Message templates: synced from the Graph API (paginated), picked and sent outside the 24-hour window."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from apps.accounts.models import AgentProfile, User
from apps.accounts.roles import AGENT
from apps.accounts.services import user_create
from apps.contacts.models import Contact, ServiceWindow
from apps.contacts.services import contact_consent_set
from apps.conversations.exceptions import ContactOptedOut, TemplateNotApproved
from apps.conversations.models import Conversation, Message
from apps.conversations.services import message_send
from apps.conversations.tests.factories import conversation_create
from apps.core.tenancy import tenant_context
from apps.tenants.models import WhatsAppAccount
from apps.whatsapp import messages as wa
from apps.whatsapp.client import GraphApiError
from apps.whatsapp.message_templates import TemplatesUnavailable, message_templates_sync
from apps.whatsapp.models import MessageTemplate, OutboxMessage
from apps.whatsapp.outbox import outbox_deliver
from apps.whatsapp.tasks import message_templates_refresh_task
from tests.conftest import PASSWORD, TenantSetup
from tests.fakes.graph_api import FakeGraphApi, Reply

pytestmark = pytest.mark.django_db

_numbers = itertools.count(1)
WABA = "WABA-ALPHA-1"


def _template(name: str, language: str, body: str, *, status: str = "APPROVED", **extra: Any) -> dict[str, Any]:
    components: list[dict[str, Any]] = [{"type": "BODY", "text": body}]
    components += extra.pop("components", [])
    return {
        "id": f"{name}-{language}",
        "name": name,
        "language": language,
        "status": status,
        "category": extra.pop("category", "UTILITY"),
        "components": components,
    }


CATALOGUE = [
    _template("order_ready", "en", "Hello {{1}}, your order {{2}} is ready for pickup."),
    _template("order_ready", "sw", "Habari {{1}}, oda yako {{2}} iko tayari."),
    _template("order_ready", "fr", "Bonjour {{1}}, votre commande {{2}} est prête."),
    _template("thanks", "en", "Thank you for shopping with us!"),
    _template("promo", "sw", "Punguzo la {{1}} wiki hii!", status="PENDING", category="MARKETING"),
    _template(
        "receipt",
        "en",
        "Here is your receipt.",
        components=[{"type": "HEADER", "format": "DOCUMENT"}],
    ),
    _template(
        "track",
        "en",
        "Track your parcel.",
        components=[{"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Track", "url": "https://x.test/{{1}}"}]}],
    ),
    _template("login_code", "en", "{{1}} is your code.", category="AUTHENTICATION"),
]


@pytest.fixture(autouse=True)
def _numbers_restored(tenant_a: TenantSetup, tenant_b: TenantSetup) -> Iterator[None]:
    yield
    # The session's number objects outlive each test's rolled-back transaction.
    for tenant in (tenant_a, tenant_b):
        tenant.whatsapp.waba_id = ""


@pytest.fixture
def cloud_number(tenant_a: TenantSetup) -> WhatsAppAccount:
    account = tenant_a.whatsapp
    WhatsAppAccount.objects.filter(pk=account.pk).update(waba_id=WABA)
    account.refresh_from_db()
    return account


def _client(tenant: TenantSetup, user: User) -> APIClient:
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient(HTTP_HOST=tenant.domain)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def _agent() -> User:
    user = user_create(email=f"tmpl-{next(_numbers)}@example.test", password=PASSWORD, role=AGENT)
    AgentProfile.objects.filter(user=user).update(status=AgentProfile.Status.OFFLINE)
    return user


def _conversation(account: WhatsAppAccount, *, window_open: bool, language: str = "sw") -> Conversation:
    window = timezone.now() + (timedelta(hours=5) if window_open else -timedelta(hours=3))
    contact = Contact.objects.create(wa_id=f"2547{next(_numbers):08d}", profile_name="Neema", language=language)
    return conversation_create(
        contact=contact, account=account, language=language, last_message_at=timezone.now(), window_expires_at=window
    )


def test_sync_reads_every_page_and_keeps_the_catalogue_current(
    tenant_a: TenantSetup, cloud_number: WhatsAppAccount, graph_api: FakeGraphApi
) -> None:
    graph_api.templates[WABA] = list(CATALOGUE)  # the fake pages them two at a time
    with tenant_context(tenant_a.organization):
        report = message_templates_sync(account=cloud_number)
        assert (report.created, report.updated, report.removed) == (len(CATALOGUE), 0, 0)
        pages = [r for r in graph_api.requests if "/message_templates" in r.path]
        assert len(pages) == 4 and all(r.headers["Authorization"] == "Bearer token-alpha" for r in pages)
        ready_sw = MessageTemplate.objects.get(name="order_ready", language="sw")
        assert (ready_sw.variable_count, ready_sw.is_sendable, ready_sw.status) == (2, True, "APPROVED")
        assert ready_sw.body_text == "Habari {{1}}, oda yako {{2}} iko tayari."
        assert MessageTemplate.objects.get(name="thanks").variable_count == 0
        # Templates needing more than body variables cannot be sent from the inbox.
        assert not MessageTemplate.objects.get(name="receipt").is_sendable  # a document header
        assert not MessageTemplate.objects.get(name="track").is_sendable  # a URL button variable
        assert not MessageTemplate.objects.get(name="login_code").is_sendable  # a one-time code

        # Meta's side changes: one template is deleted, another is approved.
        graph_api.templates[WABA] = [
            {**t, "status": "APPROVED"} if t["name"] == "promo" else t for t in CATALOGUE if t["name"] != "thanks"
        ]
        report = message_templates_sync(account=cloud_number)
        assert (report.created, report.updated, report.removed) == (0, len(CATALOGUE) - 1, 1)
        assert not MessageTemplate.objects.filter(name="thanks").exists()
        assert MessageTemplate.objects.get(name="promo").status == "APPROVED"


def test_sync_errors_are_clear(tenant_a: TenantSetup, graph_api: FakeGraphApi) -> None:
    with tenant_context(tenant_a.organization):
        with pytest.raises(TemplatesUnavailable, match="WhatsApp Business account ID"):
            message_templates_sync(account=tenant_a.whatsapp)  # no WABA id yet
        WhatsAppAccount.objects.filter(pk=tenant_a.whatsapp.pk).update(waba_id="UNKNOWN-WABA")
        tenant_a.whatsapp.refresh_from_db()
        with pytest.raises(GraphApiError) as error:
            message_templates_sync(account=tenant_a.whatsapp)
        assert error.value.code == 100 and not error.value.retryable
        graph_api.templates["UNKNOWN-WABA"] = list(CATALOGUE)
        graph_api.script("templates", Reply(500))
        with pytest.raises(GraphApiError) as error:
            message_templates_sync(account=tenant_a.whatsapp)
        assert error.value.retryable
        assert not MessageTemplate.objects.exists()  # nothing half-synced


def test_the_periodic_refresh_covers_this_tenants_numbers_only(
    tenant_a: TenantSetup, tenant_b: TenantSetup, cloud_number: WhatsAppAccount, graph_api: FakeGraphApi
) -> None:
    graph_api.templates[WABA] = list(CATALOGUE)
    WhatsAppAccount.objects.filter(pk=tenant_b.whatsapp.pk).update(waba_id="WABA-BETA")
    graph_api.templates["WABA-BETA"] = [_template("beta_only", "en", "Beta {{1}}")]
    with tenant_context(tenant_a.organization):
        assert message_templates_refresh_task() == 1
        assert set(MessageTemplate.objects.values_list("name", flat=True)) >= {"order_ready", "thanks"}
        assert not MessageTemplate.objects.filter(name="beta_only").exists()
    with tenant_context(tenant_b.organization):
        assert not MessageTemplate.objects.exists()  # Alpha's refresh wrote nothing in Beta's schema
        assert message_templates_refresh_task() == 1
        assert list(MessageTemplate.objects.values_list("name", flat=True)) == ["beta_only"]


def test_the_picker_offers_approved_templates_in_the_customers_language_first(
    tenant_a: TenantSetup, cloud_number: WhatsAppAccount, graph_api: FakeGraphApi
) -> None:
    graph_api.templates[WABA] = list(CATALOGUE)
    with tenant_context(tenant_a.organization):
        message_templates_sync(account=cloud_number)
        client = _client(tenant_a, _agent())
        conversation = _conversation(cloud_number, window_open=False, language="sw")
        detail = client.get(f"/api/v1/conversations/{conversation.pk}/").json()
        assert detail["window_open"] is False
        listed = client.get(f"/api/v1/conversations/{conversation.pk}/templates/").json()
    names = [(t["name"], t["language"]) for t in listed]
    assert names[0] == ("order_ready", "sw")  # the customer's language first
    assert set(names) == {("order_ready", "sw"), ("order_ready", "en"), ("order_ready", "fr"), ("thanks", "en")}
    assert listed[0]["variable_count"] == 2 and "{{1}}" in listed[0]["body_text"]


def test_outside_the_window_text_is_refused_and_a_template_is_sent(
    tenant_a: TenantSetup, cloud_number: WhatsAppAccount, graph_api: FakeGraphApi
) -> None:
    graph_api.templates[WABA] = list(CATALOGUE)
    with tenant_context(tenant_a.organization):
        message_templates_sync(account=cloud_number)
        agent = _agent()
        client = _client(tenant_a, agent)
        conversation = _conversation(cloud_number, window_open=False)
        url = f"/api/v1/conversations/{conversation.pk}/messages/"

        text = client.post(url, {"text": "Are you there?"}, format="json")
        assert text.status_code == 409 and text.json()["code"] == "window_closed"
        assert "template" in text.json()["message"]

        template = MessageTemplate.objects.get(name="order_ready", language="sw")
        short = client.post(url, {"template": {"id": template.pk, "variables": ["Neema"]}}, format="json")
        assert short.status_code == 400 and short.json()["code"] == "message_invalid"
        assert short.json()["extra"]["expected"] == 2

        pending = MessageTemplate.objects.get(name="promo")
        refused = client.post(url, {"template": {"id": pending.pk, "variables": ["10%"]}}, format="json")
        assert refused.status_code == 404 and refused.json()["code"] == "template_not_found"

        sent = client.post(
            url, {"template": {"id": template.pk, "variables": ["Neema", "A-42"]}, "client_id": "t-1"}, format="json"
        )
        assert sent.status_code == 201, sent.content
        assert sent.json()["type"] == "template"
        assert sent.json()["text"] == "Habari Neema, oda yako A-42 iko tayari."  # what the customer reads
        again = client.post(
            url, {"template": {"id": template.pk, "variables": ["Neema", "A-42"]}, "client_id": "t-1"}, format="json"
        )
        assert again.json()["id"] == sent.json()["id"]
        row = OutboxMessage.objects.get(to_wa_id=conversation.contact.wa_id)
        assert outbox_deliver(outbox_id=row.pk).state == "sent"
        conversation.refresh_from_db()
        assert conversation.assigned_agent_id == agent.pk
    body = graph_api.sent_messages()[0].body
    assert body["type"] == "template"
    assert body["template"] == {
        "name": "order_ready",
        "language": {"code": "sw"},
        "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Neema"}, {"type": "text", "text": "A-42"}]}
        ],
    }


def test_templates_of_another_tenant_are_out_of_reach(
    tenant_a: TenantSetup, tenant_b: TenantSetup, cloud_number: WhatsAppAccount, graph_api: FakeGraphApi
) -> None:
    graph_api.templates[WABA] = list(CATALOGUE)
    with tenant_context(tenant_a.organization):
        message_templates_sync(account=cloud_number)
        alpha_template = MessageTemplate.objects.get(name="thanks").pk
    with tenant_context(tenant_b.organization):
        client = _client(tenant_b, _agent())
        conversation = _conversation(tenant_b.whatsapp, window_open=False)
        assert client.get(f"/api/v1/conversations/{conversation.pk}/templates/").json() == []
        refused = client.post(
            f"/api/v1/conversations/{conversation.pk}/messages/",
            {"template": {"id": alpha_template, "variables": []}},
            format="json",
        )
        assert refused.status_code == 404
        assert not OutboxMessage.objects.exists()


def test_a_sandbox_number_gets_the_sample_templates(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        sandbox = WhatsAppAccount.objects.create(
            tenant=tenant_a.organization, name="Demo", phone_number_id="999000111", transport="sandbox"
        )
        report = message_templates_sync(account=sandbox)
        assert report.created == 3
        assert MessageTemplate.objects.get(account=sandbox, name="follow_up", language="sw").variable_count == 2


def test_the_back_office_lists_each_tenants_own_templates(
    tenant_a: TenantSetup, tenant_b: TenantSetup, cloud_number: WhatsAppAccount, graph_api: FakeGraphApi
) -> None:
    graph_api.templates[WABA] = list(CATALOGUE)
    with tenant_context(tenant_a.organization):
        message_templates_sync(account=cloud_number)
    alpha = tenant_a.client()
    alpha.post("/admin/login/", {"username": tenant_a.admin_email, "password": PASSWORD})
    listing = alpha.get("/admin/whatsapp/messagetemplate/")
    assert listing.status_code == 200 and b"order_ready" in listing.content and b"login_code" in listing.content

    beta = tenant_b.client()
    beta.post("/admin/login/", {"username": tenant_b.admin_email, "password": PASSWORD})
    empty = beta.get("/admin/whatsapp/messagetemplate/")
    assert empty.status_code == 200 and b"order_ready" not in empty.content
    assert b"No templates yet" in empty.content
    # Fetching needs the number's WhatsApp Business account ID: the action says so, queues nothing.
    action = beta.post(
        "/admin/tenants/whatsappaccount/",
        {"action": "templates_sync", "_selected_action": [str(tenant_b.whatsapp.pk)]},
        follow=True,
    )
    assert action.status_code == 200
    assert b"has no WhatsApp Business account ID" in action.content
    # Alpha's number is not Beta's to act on: the selection finds nothing.
    foreign = beta.post(
        "/admin/tenants/whatsappaccount/",
        {"action": "templates_sync", "_selected_action": [str(tenant_a.whatsapp.pk)]},
        follow=True,
    )
    assert b"Fetching the templates" not in foreign.content


def test_a_customer_who_opted_out_is_neither_offered_nor_sent_marketing_templates(
    tenant_a: TenantSetup, cloud_number: WhatsAppAccount, graph_api: FakeGraphApi
) -> None:
    graph_api.templates[WABA] = [
        *CATALOGUE,
        _template("weekly_offer", "sw", "Punguzo la {{1}} wiki hii!", category="MARKETING"),
    ]
    with tenant_context(tenant_a.organization):
        message_templates_sync(account=cloud_number)
        client = _client(tenant_a, _agent())
        offer = MessageTemplate.objects.get(name="weekly_offer")
        utility = MessageTemplate.objects.get(name="order_ready", language="sw")

        subscribed = _conversation(cloud_number, window_open=False)
        listed = client.get(f"/api/v1/conversations/{subscribed.pk}/templates/").json()
        assert "weekly_offer" in {t["name"] for t in listed}

        conversation = _conversation(cloud_number, window_open=False)
        contact_consent_set(contact=conversation.contact, action="opt_out", source="keyword", evidence="STOP")
        listed = client.get(f"/api/v1/conversations/{conversation.pk}/templates/").json()
        assert {t["name"] for t in listed} == {"order_ready", "thanks"}  # utility only

        url = f"/api/v1/conversations/{conversation.pk}/messages/"
        refused = client.post(url, {"template": {"id": offer.pk, "variables": ["10%"]}}, format="json")
        assert refused.status_code == 409, refused.content
        assert refused.json()["code"] == "contact_opted_out"
        assert not OutboxMessage.objects.filter(to_wa_id=conversation.contact.wa_id).exists()

        sent = client.post(url, {"template": {"id": utility.pk, "variables": ["Neema", "A-42"]}}, format="json")
        assert sent.status_code == 201, sent.content

        # Inside the 24-hour window a reply is service, not marketing: still allowed.
        ServiceWindow.objects.filter(pk=conversation.window_id).update(expires_at=timezone.now() + timedelta(hours=2))
        reply = client.post(url, {"text": "Your order is on its way."}, format="json")
        assert reply.status_code == 201, reply.content

        # Opting in again lifts it.
        contact_consent_set(contact=conversation.contact, action="opt_in", source="keyword", evidence="START")
        again = client.post(url, {"template": {"id": offer.pk, "variables": ["10%"]}}, format="json")
        assert again.status_code == 201, again.content


def test_no_sender_gets_a_marketing_template_to_a_customer_who_opted_out(
    cloud_number: WhatsAppAccount, graph_api: FakeGraphApi, tenant_a: TenantSetup
) -> None:
    """The rule holds in `message_send`, whoever sends: the inbox, a flow, a survey, code to come."""
    graph_api.templates[WABA] = [*CATALOGUE, _template("weekly_offer", "en", "Sale: {{1}} off!", category="MARKETING")]
    with tenant_context(tenant_a.organization):
        message_templates_sync(account=cloud_number)
        conversation = _conversation(cloud_number, window_open=False, language="en")
        contact_consent_set(contact=conversation.contact, action="opt_out", source="keyword", evidence="STOP")
        with pytest.raises(ContactOptedOut) as refused:
            message_send(
                conversation=conversation,
                outgoing=wa.template("weekly_offer", "en", body_params=["10%"]),
                author_kind=Message.Author.SYSTEM,
                idempotency_key="test:offer",
            )
        assert refused.value.extra == {"template": "weekly_offer", "language": "en", "category": "MARKETING"}
        assert not OutboxMessage.objects.filter(idempotency_key="test:offer").exists()
        sent = message_send(
            conversation=conversation,
            outgoing=wa.template("order_ready", "en", body_params=["Neema", "A-42"]),
            author_kind=Message.Author.SYSTEM,
            idempotency_key="test:ready",
        )
        assert sent.outbox is not None


def test_no_sender_sends_a_template_whatsapp_has_paused(
    cloud_number: WhatsAppAccount, graph_api: FakeGraphApi, tenant_a: TenantSetup
) -> None:
    """Meta's status webhook paused it: the send stops here with the reason, not at Meta (error 132015)."""
    graph_api.templates[WABA] = list(CATALOGUE)
    with tenant_context(tenant_a.organization):
        message_templates_sync(account=cloud_number)
        MessageTemplate.objects.filter(account=cloud_number, name="order_ready").update(status="PAUSED")
        conversation = _conversation(cloud_number, window_open=False, language="en")
        with pytest.raises(TemplateNotApproved) as refused:
            message_send(
                conversation=conversation,
                outgoing=wa.template("order_ready", "en", body_params=["Neema", "A-42"]),
                author_kind=Message.Author.SYSTEM,
                idempotency_key="test:paused",
            )
        assert refused.value.extra == {"template": "order_ready", "language": "en", "status": ["PAUSED"]}
        assert "Paused" in refused.value.message
        assert not OutboxMessage.objects.filter(idempotency_key="test:paused").exists()
        # A template the catalogue does not know (never fetched) still goes: WhatsApp has the last word.
        sent = message_send(
            conversation=conversation,
            outgoing=wa.template("not_in_the_catalogue", "en"),
            author_kind=Message.Author.SYSTEM,
            idempotency_key="test:unknown",
        )
        assert sent.outbox is not None
