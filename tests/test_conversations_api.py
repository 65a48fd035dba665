"""The conversations API: auth, roles, tenancy, shapes, replies through the outbox, notes."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from apps.accounts.models import AgentProfile, User
from apps.accounts.roles import AGENT, KNOWLEDGE_EDITOR, SUPPORT_MANAGER
from apps.accounts.services import user_create
from apps.contacts.models import Contact
from apps.conversations.models import Conversation, Message
from apps.conversations.tests.factories import conversation_create
from apps.core.tenancy import tenant_context
from apps.whatsapp.models import OutboxMessage
from tests.ai_support import Fakes, ai_configure, ai_fakes, ai_fakes_server
from tests.conftest import TenantSetup

pytestmark = pytest.mark.django_db
__all__ = ["ai_fakes", "ai_fakes_server"]  # fixtures used by name

_numbers = itertools.count(1)


def _client(tenant: TenantSetup, user: User) -> APIClient:
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient(HTTP_HOST=tenant.domain)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def _user(role: str) -> User:
    user = user_create(email=f"api-{next(_numbers)}@example.test", password=None, role=role)
    AgentProfile.objects.filter(user=user).update(status=AgentProfile.Status.OFFLINE)
    return user


def _conversation(tenant: TenantSetup, *, window_open: bool = True, **fields: Any) -> Conversation:
    window = timezone.now() + (timedelta(hours=5) if window_open else -timedelta(hours=1))
    contact = Contact.objects.create(wa_id=f"2547{next(_numbers):08d}", profile_name="Neema")
    conversation = conversation_create(
        contact=contact, account=tenant.whatsapp, last_message_at=timezone.now(), window_expires_at=window, **fields
    )
    Message.objects.create(
        conversation=conversation,
        direction="in",
        author_kind="customer",
        type="text",
        text="Where is my parcel?",
        sent_at=timezone.now(),
        wamid=f"wamid.API{next(_numbers)}",
    )
    return conversation


def test_anonymous_callers_get_401(tenant_a: TenantSetup) -> None:
    response = APIClient(HTTP_HOST=tenant_a.domain).get("/api/v1/conversations/")
    assert response.status_code == 401


def test_a_client_id_is_scoped_to_its_conversation(tenant_a: TenantSetup) -> None:
    """An integrator numbering its messages per conversation ("1", "2", …) must not have
    conversation B's message swallowed by conversation A's."""
    with tenant_context(tenant_a.organization):
        agent = _user(AGENT)
        first, second = _conversation(tenant_a), _conversation(tenant_a)
        client = _client(tenant_a, agent)
        a = client.post(f"/api/v1/conversations/{first.pk}/messages/", {"text": "Hi A", "client_id": "1"})
        b = client.post(f"/api/v1/conversations/{second.pk}/messages/", {"text": "Hi B", "client_id": "1"})
        assert a.status_code == b.status_code == 201, b.content
        assert b.json()["id"] != a.json()["id"] and b.json()["text"] == "Hi B"
        assert OutboxMessage.objects.get(to_wa_id=second.contact.wa_id).payload["text"]["body"] == "Hi B"
        again = client.post(f"/api/v1/conversations/{second.pk}/messages/", {"text": "Hi B", "client_id": "1"})
        assert again.json()["id"] == b.json()["id"]  # a true retry still sends once
        assert OutboxMessage.objects.filter(to_wa_id=second.contact.wa_id).count() == 1


def test_an_agent_lists_what_they_may_see_and_replies(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        agent = _user(AGENT)
        other = _user(AGENT)
        bot_owned = _conversation(tenant_a)
        colleagues = _conversation(tenant_a, status="assigned", assigned_agent=other)
        client = _client(tenant_a, agent)

        listing = client.get("/api/v1/conversations/")
        assert listing.status_code == 200
        ids = {row["id"] for row in listing.json()["results"]}
        assert bot_owned.pk in ids and colleagues.pk not in ids
        row = next(r for r in listing.json()["results"] if r["id"] == bot_owned.pk)
        assert row["contact"]["profile_name"] == "Neema" and row["status"] == "bot"

        assert client.get(f"/api/v1/conversations/{colleagues.pk}/").status_code == 404
        detail = client.get(f"/api/v1/conversations/{bot_owned.pk}/").json()
        assert [m["text"] for m in detail["messages"]] == ["Where is my parcel?"]

        sent = client.post(
            f"/api/v1/conversations/{bot_owned.pk}/messages/",
            {"text": "It left our warehouse this morning.", "client_id": "c-1"},
            format="json",
        )
        assert sent.status_code == 201, sent.content
        assert sent.json()["author_kind"] == "agent" and sent.json()["delivery"]["status"] == "pending"
        again = client.post(
            f"/api/v1/conversations/{bot_owned.pk}/messages/",
            {"text": "It left our warehouse this morning.", "client_id": "c-1"},
            format="json",
        )
        assert again.json()["id"] == sent.json()["id"]  # a retried request sends once
        assert OutboxMessage.objects.filter(to_wa_id=bot_owned.contact.wa_id).count() == 1
        bot_owned.refresh_from_db()
        assert (bot_owned.status, bot_owned.assigned_agent) == ("assigned", agent)  # replying took it over

        note = client.post(
            f"/api/v1/conversations/{bot_owned.pk}/messages/",
            {"text": "Customer is a reseller", "note": True},
            format="json",
        )
        assert note.status_code == 201 and note.json()["type"] == "note" and note.json()["delivery"] is None
        assert OutboxMessage.objects.filter(to_wa_id=bot_owned.contact.wa_id).count() == 1  # notes are never sent

        resolved = client.post(f"/api/v1/conversations/{bot_owned.pk}/resolve/", {"reason": "done"}, format="json")
        assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"

        history = client.get(f"/api/v1/customers/{bot_owned.contact_id}/history/")
        assert [row["id"] for row in history.json()] == [bot_owned.pk]


def test_clear_errors_for_a_closed_window_and_empty_text(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        agent = _user(AGENT)
        conversation = _conversation(tenant_a, window_open=False)
        client = _client(tenant_a, agent)
        closed = client.post(f"/api/v1/conversations/{conversation.pk}/messages/", {"text": "Hello?"}, format="json")
        assert closed.status_code == 409
        assert closed.json()["code"] == "window_closed" and "template" in closed.json()["message"]
        empty = client.post(f"/api/v1/conversations/{conversation.pk}/messages/", {"text": "   "}, format="json")
        assert empty.status_code == 400
        assert not OutboxMessage.objects.filter(to_wa_id=conversation.contact.wa_id).exists()


def test_escalate_hands_off_and_a_manager_sees_everything(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        manager = _user(SUPPORT_MANAGER)
        conversation = _conversation(tenant_a)
        client = _client(tenant_a, manager)
        escalated = client.post(
            f"/api/v1/conversations/{conversation.pk}/escalate/",
            {"reason": "angry customer", "priority": "urgent"},
            format="json",
        )
        assert escalated.status_code == 200, escalated.content
        assert (escalated.json()["status"], escalated.json()["priority"]) == ("waiting", "urgent")
        assert escalated.json()["handoff_reason"] == "angry customer"
        waiting = client.get("/api/v1/conversations/?status=waiting").json()["results"]
        assert conversation.pk in {row["id"] for row in waiting}
        bad = client.get("/api/v1/conversations/?status=nonsense")
        assert bad.status_code == 400 and bad.json()["code"] == "invalid" and "status" in bad.json()["extra"]["fields"]


def test_a_knowledge_editor_sees_no_conversations(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        editor = _user(KNOWLEDGE_EDITOR)
        conversation = _conversation(tenant_a)
        client = _client(tenant_a, editor)
        assert client.get("/api/v1/conversations/").json()["results"] == []
        assert client.get(f"/api/v1/conversations/{conversation.pk}/").status_code == 404
        reply = client.post(f"/api/v1/conversations/{conversation.pk}/messages/", {"text": "hi"}, format="json")
        assert reply.status_code == 404


def test_the_list_is_constant_in_queries(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        manager = _user(SUPPORT_MANAGER)
        client = _client(tenant_a, manager)
        _conversation(tenant_a)

        def count() -> int:
            with CaptureQueriesContext(connection) as queries:
                assert client.get("/api/v1/conversations/").status_code == 200
            return len(queries)

        few = count()
        for _ in range(5):
            _conversation(tenant_a)
        assert count() == few


def test_a_token_of_one_tenant_opens_nothing_on_another(tenant_a: TenantSetup, tenant_b: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        manager = _user(SUPPORT_MANAGER)
        conversation = _conversation(tenant_a)
        token, _ = Token.objects.get_or_create(user=manager)
    other = APIClient(HTTP_HOST=tenant_b.domain)
    other.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert other.get("/api/v1/conversations/").status_code == 401
    assert other.get(f"/api/v1/conversations/{conversation.pk}/").status_code == 401


def test_canned_responses_by_shortcut(tenant_a: TenantSetup) -> None:
    from apps.conversations.models import CannedResponse

    with tenant_context(tenant_a.organization):
        agent = _user(AGENT)
        CannedResponse.objects.create(shortcut="refund", title="Refund times", text="Refunds take 3 working days.")
        CannedResponse.objects.create(shortcut="hours", title="Opening hours", text="We open at 8 am.")
        CannedResponse.objects.create(shortcut="old", title="Retired", text="x", is_active=False)
        client = _client(tenant_a, agent)
        assert [r["shortcut"] for r in client.get("/api/v1/canned-responses/?q=/ref").json()] == ["refund"]
        assert [r["shortcut"] for r in client.get("/api/v1/canned-responses/").json()] == ["hours", "refund"]


def test_the_tickets_of_one_conversation(tenant_a: TenantSetup) -> None:
    from apps.tickets.services.tickets import ticket_create_from_conversation

    with tenant_context(tenant_a.organization):
        manager = _user(SUPPORT_MANAGER)
        with_ticket = _conversation(tenant_a)
        without = _conversation(tenant_a)
        ticket = ticket_create_from_conversation(conversation=with_ticket, by=manager)
        client = _client(tenant_a, manager)
        found = client.get(f"/api/v1/tickets/?conversation={with_ticket.pk}").json()["results"]
        assert [t["id"] for t in found] == [ticket.pk]
        assert found[0]["conversations"] == [with_ticket.pk]
        assert client.get(f"/api/v1/tickets/?conversation={without.pk}").json()["results"] == []


def test_an_agents_reply_goes_out_in_the_customers_language(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    from apps.ai.models import AIUsage

    ai_fakes.openai.text = "Kifurushi chako kiko njiani."
    with tenant_context(tenant_a.organization):
        ai_configure(ai_fakes, keys=("openai",))
        agent = _user(AGENT)
        client = _client(tenant_a, agent)
        conversation = _conversation(tenant_a, language="sw")
        sent = client.post(
            f"/api/v1/conversations/{conversation.pk}/messages/", {"text": "Your parcel is on its way."}, format="json"
        )
        assert sent.status_code == 201, sent.content
        message = Message.objects.get(pk=sent.json()["id"])
        assert message.text == "Kifurushi chako kiko njiani."
        assert message.content["original"] == "Your parcel is on its way."
        assert message.content["translated_by"] == "openai"

        # With the window closed the send is refused: no translation is bought for it.
        closed = _conversation(tenant_a, window_open=False, language="sw")
        refused = client.post(f"/api/v1/conversations/{closed.pk}/messages/", {"text": "Hello?"}, format="json")
        assert refused.status_code == 409
        assert AIUsage.objects.get(task="translate", provider="openai").requests == 1


def test_canned_responses_refuse_a_search_the_database_cannot_hold(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        client = _client(tenant_a, _user(AGENT))
        response = client.get("/api/v1/canned-responses/", {"q": "ref\x00und"})
        assert response.status_code == 400, response.content
        assert response.json()["code"] == "invalid" and "q" in response.json()["extra"]["fields"]


def test_a_password_change_revokes_the_users_api_token(tenant_a: TenantSetup) -> None:
    # Changing a password is what one does after a leak: the API token must not outlive it.
    with tenant_context(tenant_a.organization):
        manager = _user(SUPPORT_MANAGER)
        old, _ = Token.objects.get_or_create(user=manager)
        manager.last_name = "Renamed"
        manager.save()  # a save that changes no access keeps the token
        assert Token.objects.filter(key=old.key).exists()
        manager.set_password("a-new-long-password-2026")
        manager.save()
        assert not Token.objects.filter(user=manager).exists()
    client = APIClient(HTTP_HOST=tenant_a.domain)
    client.credentials(HTTP_AUTHORIZATION=f"Token {old.key}")
    assert client.get("/api/v1/conversations/").status_code == 401
