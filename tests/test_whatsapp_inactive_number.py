"""A number switched off: customers' messages are still stored and shown, the bot is silent, sends are held."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.accounts.roles import AGENT
from apps.accounts.services import user_create
from apps.conversations.analysis import message_analyse
from apps.conversations.models import Message
from apps.conversations.services import inbound_message_record
from apps.conversations.tasks import message_automation_task
from apps.core.tenancy import tenant_context
from apps.knowledge.indexing import article_index
from apps.knowledge.models import Article
from apps.knowledge.services import article_save
from apps.tenants.models import WhatsAppAccount
from apps.whatsapp import messages as wa
from apps.whatsapp.models import OutboxMessage
from apps.whatsapp.outbox import outbox_deliver, outbox_drain, outbox_drain_cycle, outbox_enqueue, scheduling
from apps.whatsapp.outbox.sending import outbox_stuck_list
from apps.whatsapp.payloads import parse_message
from tests.conftest import PASSWORD, TenantSetup
from tests.fakes.graph_api import FakeGraphApi

pytestmark = pytest.mark.django_db

_numbers = itertools.count(1)
QUESTION = "How long does delivery to Nairobi take?"


def _switch(tenant: TenantSetup, *, active: bool) -> None:
    WhatsAppAccount.objects.filter(pk=tenant.whatsapp.pk).update(is_active=active)
    tenant.whatsapp.refresh_from_db()


@pytest.fixture
def switched_off(tenant_a: TenantSetup) -> Iterator[TenantSetup]:
    _switch(tenant_a, active=False)
    yield tenant_a
    tenant_a.whatsapp.is_active = True  # the session's object outlives the rolled-back transaction


def _says(tenant: TenantSetup, wa_id: str, text: str) -> Message:
    body: dict[str, Any] = {"from": wa_id, "id": f"wamid.OFF{next(_numbers)}", "timestamp": str(int(time.time()))}
    body |= {"type": "text", "text": {"body": text}}
    payload = {"message": body, "contacts": [{"wa_id": wa_id, "profile": {"name": "Wanjiru"}}]}
    message = inbound_message_record(account=tenant.whatsapp, inbound=parse_message(payload))
    assert message is not None and message_analyse(message_id=message.pk) is not None
    return message


def _bot(wa_id: str) -> list[str]:
    return list(
        Message.objects.filter(conversation__contact__wa_id=wa_id, author_kind="bot").values_list("text", flat=True)
    )


def test_a_switched_off_number_keeps_customers_messages_but_the_bot_stays_silent(switched_off: TenantSetup) -> None:
    tenant = switched_off
    with tenant_context(tenant.organization):
        article = article_save(
            title="Delivery", body="We deliver anywhere in Nairobi within 24 hours.", status=Article.Status.PUBLISHED
        )
        article_index(article_id=article.pk)
        message = _says(tenant, "254733000001", QUESTION)
        message_automation_task.run(message.pk)
        assert Message.objects.filter(pk=message.pk).exists()  # stored, in the inbox
        assert _bot("254733000001") == []
        assert not OutboxMessage.objects.exists()

        _switch(tenant, active=True)
        again = _says(tenant, "254733000002", QUESTION)
        assert message_automation_task.run(again.pk) == "done"
        assert len(_bot("254733000002")) == 1  # the same question is answered on an active number


def _client(tenant: TenantSetup, user: User) -> APIClient:
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient(HTTP_HOST=tenant.domain)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def test_sends_from_a_switched_off_number_are_held_then_sent_once_it_is_back(
    switched_off: TenantSetup, graph_api: FakeGraphApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = switched_off
    asked: list[int] = []
    monkeypatch.setattr(scheduling, "outbox_drain_request", lambda **kwargs: asked.append(kwargs["account_id"]))
    with tenant_context(tenant.organization):
        message = _says(tenant, "254733000003", "Hello, is my order ready?")
        agent = user_create(email=f"off-{next(_numbers)}@alpha.test", password=PASSWORD, role=AGENT)
        client = _client(tenant, agent)
        url = f"/api/v1/conversations/{message.conversation_id}/"
        reply = client.post(url + "messages/", {"text": "Yes, it is ready."}, format="json")
        assert reply.status_code == 201, reply.content  # accepted and kept: nothing is lost
        delivery: dict[str, Any] = reply.json()["delivery"]
        assert delivery["status"] == "held" and "switched off" in delivery["error"]
        detail = client.get(url).json()
        assert detail["number_active"] is False
        assert detail["messages"][-1]["delivery"]["status"] == "held"

        row = OutboxMessage.objects.get(to_wa_id="254733000003")
        assert outbox_deliver(outbox_id=row.pk).state == "held"
        assert outbox_drain(account_id=tenant.whatsapp.pk).sent == 0
        outbox_drain_cycle(account_id=tenant.whatsapp.pk)
        assert asked == []  # no drain asks for the next drain while the number is off
        OutboxMessage.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=10))
        assert outbox_stuck_list() == {}  # held is not stuck: the sweeper leaves it alone
        row.refresh_from_db()
        assert row.status == OutboxMessage.Status.PENDING and row.attempts == 0
        assert graph_api.sent_messages() == []

        _switch(tenant, active=True)
        assert outbox_stuck_list() == {tenant.whatsapp.pk: 1}  # the sweeper sends it now
        assert outbox_drain(account_id=tenant.whatsapp.pk).sent == 1
        assert client.get(url).json()["messages"][-1]["delivery"]["status"] == "sent"
    assert graph_api.sent_messages()[0].body["text"]["body"] == "Yes, it is ready."


def test_a_send_is_still_queued_for_a_switched_off_number(switched_off: TenantSetup) -> None:
    with tenant_context(switched_off.organization):
        row = outbox_enqueue(
            account=switched_off.whatsapp,
            to_wa_id="254733000004",
            message=wa.text("held"),
            idempotency_key="held-1",
            window_expires_at=timezone.now() + timedelta(hours=1),
        )
        assert row.status == OutboxMessage.Status.PENDING
