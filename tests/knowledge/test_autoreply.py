"""The bot's default behaviour: answer from the knowledge base with a source, or hand off."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from apps.conversations.analysis import message_analyse
from apps.conversations.models import Conversation, Message
from apps.conversations.services import inbound_message_record
from apps.conversations.tasks import message_automation_task
from apps.core.tenancy import tenant_context
from apps.knowledge.indexing import article_index
from apps.knowledge.models import Article, KnowledgeGap
from apps.knowledge.services import article_save
from apps.whatsapp.models import OutboxMessage
from apps.whatsapp.payloads import parse_message
from tests.conftest import TenantSetup

pytestmark = pytest.mark.django_db

_numbers = itertools.count(1)

DELIVERY = (
    "We deliver anywhere in Nairobi within 24 hours, and to other towns in Kenya within 3 working days. "
    "Delivery is free for orders above 2,000 shillings."
)


def _faq() -> None:
    article = article_save(title="Delivery times", body=DELIVERY, status=Article.Status.PUBLISHED)
    assert article_index(article_id=article.pk) is not None


def _customer_analysed(tenant: TenantSetup, text: str, *, wa_id: str) -> Message:
    """The customer's message, recorded and analysed (the bot's turn not taken yet)."""
    payload: dict[str, Any] = {
        "message": {
            "from": wa_id,
            "id": f"wamid.BOT{next(_numbers)}",
            "timestamp": str(int(time.time())),
            "type": "text",
            "text": {"body": text},
        },
        "contacts": [{"wa_id": wa_id, "profile": {"name": "Wanjiru Kamau"}}],
    }
    message = inbound_message_record(account=tenant.whatsapp, inbound=parse_message(payload))
    assert message is not None
    assert message_analyse(message_id=message.pk) is not None
    return message


def _customer_says(tenant: TenantSetup, text: str, *, wa_id: str) -> Message:
    message = _customer_analysed(tenant, text, wa_id=wa_id)
    assert message_automation_task.run(message.pk) == "done"
    return message


def _bot_replies(wa_id: str) -> list[str]:
    return list(
        Message.objects.filter(conversation__contact__wa_id=wa_id, author_kind="bot")
        .order_by("id")
        .values_list("text", flat=True)
    )


def test_the_bot_answers_from_the_knowledge_base_with_its_source(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _faq()
        _customer_says(tenant_a, "How long does delivery to Nairobi take?", wa_id="254700100001")
        replies = _bot_replies("254700100001")
        assert len(replies) == 1
        assert "within 24 hours" in replies[0] and "Source: Delivery times" in replies[0]
        assert Conversation.objects.get(contact__wa_id="254700100001").status == "bot"
        assert OutboxMessage.objects.filter(to_wa_id="254700100001").count() == 1


def test_a_greeting_gets_a_greeting(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _customer_says(tenant_a, "Hello", wa_id="254700100002")
        assert _bot_replies("254700100002") == ["Hello Wanjiru! How can we help you today?"]


def test_without_an_answer_the_bot_says_so_and_hands_off(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _faq()
        message = _customer_says(tenant_a, "Can I pay my electricity bill through you?", wa_id="254700100003")
        replies = _bot_replies("254700100003")
        assert len(replies) == 1 and "connect you with a member of our team" in replies[0]
        conversation = Conversation.objects.get(pk=message.conversation_id)
        assert conversation.status in ("waiting", "assigned")
        assert KnowledgeGap.objects.filter(last_conversation=conversation).exists()
        # A retry of the automation sends nothing twice.
        assert message_automation_task.run(message.pk) == "done"
        assert len(_bot_replies("254700100003")) == 1


def test_asking_for_a_person_hands_off_with_a_notice_in_the_customers_language(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _customer_says(tenant_a, "Habari, nataka kuongea na mtu tafadhali, sio roboti", wa_id="254700100004")
        conversation = Conversation.objects.get(contact__wa_id="254700100004")
        assert conversation.status in ("waiting", "assigned")
        replies = _bot_replies("254700100004")
        assert len(replies) == 1
        assert replies[0].startswith("Asante")  # Swahili


def test_stop_gets_only_the_consent_confirmation(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _customer_says(tenant_a, "STOP", wa_id="254700100005")
        assert _bot_replies("254700100005") == []
        assert Message.objects.filter(conversation__contact__wa_id="254700100005", author_kind="system").count() == 1


def test_the_bot_stays_quiet_when_an_agent_owns_the_conversation(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        first = _customer_says(tenant_a, "Hello", wa_id="254700100006")
        Conversation.objects.filter(pk=first.conversation_id).update(status="waiting")
        _customer_says(tenant_a, "How long does delivery take?", wa_id="254700100006")
        assert len(_bot_replies("254700100006")) == 1  # only the greeting, before the hand-off


@pytest.mark.parametrize("question", ["How long does delivery to Nairobi take?", "Can I pay my electricity bill?"])
def test_the_bot_stays_quiet_when_an_agent_takes_over_while_it_looks_for_an_answer(
    tenant_a: TenantSetup, monkeypatch: pytest.MonkeyPatch, question: str
) -> None:
    """The knowledge answer is slow (retrieval, a provider): an agent may take over meanwhile."""
    from apps.accounts.roles import AGENT
    from apps.accounts.services import user_create
    from apps.conversations.lifecycle import conversation_takeover
    from apps.knowledge import answers, autoreply

    with tenant_context(tenant_a.organization):
        _faq()
        wa_id = f"2547002{next(_numbers):05d}"
        agent = user_create(email=f"autoreply-{wa_id}@example.test", password=None, role=AGENT)
        message = _customer_analysed(tenant_a, question, wa_id=wa_id)
        answer = answers.knowledge_answer

        def answer_while_an_agent_takes_over(**kwargs: Any) -> Any:
            result = answer(**kwargs)
            conversation_takeover(conversation=kwargs["conversation"], agent=agent)
            return result

        monkeypatch.setattr(autoreply, "knowledge_answer", answer_while_an_agent_takes_over)
        autoreply.bot_reply(Message.objects.get(pk=message.pk))
        assert _bot_replies(wa_id) == []
        conversation = Conversation.objects.get(pk=message.conversation_id)
        assert (conversation.status, conversation.assigned_agent) == ("assigned", agent)
        assert not conversation.events.filter(kind="handoff").exists()
