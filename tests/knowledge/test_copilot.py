"""Agent copilot suggestions (knowledge base, provider), outcomes, and the context window."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.accounts.roles import AGENT, KNOWLEDGE_EDITOR
from apps.accounts.services import user_create
from apps.contacts.models import Contact
from apps.conversations import context as conversation_context_module
from apps.conversations.context import conversation_context, conversation_summary_refresh
from apps.conversations.lifecycle import conversation_takeover
from apps.conversations.models import Conversation, Message
from apps.conversations.services import conversation_reply
from apps.conversations.tests.factories import conversation_create
from apps.core.tenancy import tenant_context
from apps.knowledge.copilot import copilot_outcome_record, copilot_suggest
from apps.knowledge.indexing import article_index
from apps.knowledge.models import Article, CopilotSuggestion, KnowledgeGap
from apps.knowledge.services import article_save
from tests.ai_support import Fakes, ai_configure, ai_fakes, ai_fakes_server
from tests.conftest import TenantSetup

pytestmark = pytest.mark.django_db
__all__ = ["ai_fakes", "ai_fakes_server"]

_numbers = itertools.count(1)
REFUNDS = "Refunds go back to the M-Pesa number you paid with within 3 working days after we receive the item."


def _conversation(tenant: TenantSetup, *texts: str) -> Conversation:
    contact = Contact.objects.create(wa_id=f"2547{next(_numbers):08d}")
    conversation = conversation_create(
        contact=contact,
        account=tenant.whatsapp,
        language="en",
        window_expires_at=timezone.now() + timedelta(hours=20),
    )
    start = timezone.now() - timedelta(minutes=len(texts))
    for i, text in enumerate(texts):
        Message.objects.create(
            conversation=conversation,
            direction="in",
            author_kind="customer",
            type="text",
            text=text,
            sent_at=start + timedelta(minutes=i),
        )
    return conversation


def _kb() -> None:
    article = article_save(title="Returns and refunds", body=REFUNDS, status=Article.Status.PUBLISHED)
    assert article_index(article_id=article.pk) is not None


def test_offline_the_copilot_suggests_the_knowledge_base_answer(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    with tenant_context(tenant_a.organization):
        _kb()
        agent = user_create(email="copilot-1@alpha.test", password=None, role=AGENT)
        conversation = _conversation(tenant_a, "Hi", "When will I get my refund?")
        suggestions = copilot_suggest(conversation=conversation, by=agent)
        assert [s.source for s in suggestions] == ["knowledge"]
        assert "3 working days" in suggestions[0].text
        assert suggestions[0].citations[0]["title"] == "Returns and refunds"
        assert not KnowledgeGap.objects.exists()  # an agent's question is not a customer's gap
        assert ai_fakes.openai.calls() == []


def test_with_a_provider_it_also_writes_one_from_the_context(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    ai_fakes.openai.text = "Hello! Your refund reaches your M-Pesa within 3 working days."
    with tenant_context(tenant_a.organization):
        ai_configure(ai_fakes, keys=("openai",))
        _kb()
        agent = user_create(email="copilot-2@alpha.test", password=None, role=AGENT)
        conversation = _conversation(tenant_a, "When will I get my refund?")
        suggestions = copilot_suggest(conversation=conversation, by=agent)
        assert [s.source for s in suggestions] == ["knowledge", "provider"]
        assert suggestions[1].text == ai_fakes.openai.text and suggestions[1].provider == "openai"
        request = json.dumps(ai_fakes.openai.calls("generate")[-1].body)
        assert "When will I get my refund?" in request and "3 working days" in request


def test_outcomes_are_recorded_from_what_was_sent(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _kb()
        agent = user_create(email="copilot-3@alpha.test", password=None, role=AGENT)
        conversation = _conversation(tenant_a, "When will I get my refund?")
        conversation = conversation_takeover(conversation=conversation, agent=agent)
        as_is, edited, ignored = (copilot_suggest(conversation=conversation, by=agent)[0] for _ in range(3))
        sent = conversation_reply(conversation=conversation, agent=agent, text=as_is.text)
        assert copilot_outcome_record(suggestion=as_is, outcome="accepted", by=agent, reply=sent).outcome == "accepted"
        other = conversation_reply(conversation=conversation, agent=agent, text="Within 3 days, promise!")
        assert copilot_outcome_record(suggestion=edited, outcome="accepted", by=agent, reply=other).outcome == "edited"
        assert copilot_outcome_record(suggestion=ignored, outcome="ignored", by=agent).outcome == "ignored"
        assert sorted(CopilotSuggestion.objects.values_list("outcome", flat=True)) == ["accepted", "edited", "ignored"]


def test_the_api_follows_the_visibility_rule(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _kb()
        agent = user_create(email="copilot-4@alpha.test", password=None, role=AGENT)
        colleague = user_create(email="copilot-5@alpha.test", password=None, role=AGENT)
        editor = user_create(email="copilot-6@alpha.test", password=None, role=KNOWLEDGE_EDITOR)
        conversation = conversation_takeover(
            conversation=_conversation(tenant_a, "When will I get my refund?"), agent=agent
        )

        def client(user: User) -> APIClient:
            api = APIClient(HTTP_HOST=tenant_a.domain)
            api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
            return api

        ok = client(agent).post(f"/api/v1/conversations/{conversation.pk}/suggestions/")
        assert ok.status_code == 201 and ok.json()[0]["origin"] == "knowledge"
        for outsider in (colleague, editor):
            assert client(outsider).post(f"/api/v1/conversations/{conversation.pk}/suggestions/").status_code == 404
            outcome = client(outsider).post(
                f"/api/v1/copilot/suggestions/{ok.json()[0]['id']}/outcome/", {"outcome": "ignored"}, format="json"
            )
            assert outcome.status_code == 404


def test_the_context_window_keeps_the_latest_turns_within_budget(
    tenant_a: TenantSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    with tenant_context(tenant_a.organization):
        texts = [f"message number {i} " + "word " * 20 for i in range(30)]
        conversation = _conversation(tenant_a, *texts)
        context = conversation_context(conversation=conversation, window=12, budget=200)
        assert context.tokens <= 200
        assert context.messages[-1].content.startswith("message number 29")
        assert all(m.role == "user" for m in context.messages)
        assert len(context.messages) < 12  # the budget, not the window, decided

        # The newest message alone over the budget: its beginning, not nothing.
        pasted = _conversation(tenant_a, "invoice " * 1000)
        clipped = conversation_context(conversation=pasted, budget=100)
        assert clipped.tokens <= 100 and clipped.messages[0].content.startswith("invoice invoice")
        assert clipped.messages[0].content.endswith("…")

        monkeypatch.setattr(conversation_context_module, "SUMMARY_EVERY", 5)
        assert conversation_summary_refresh(conversation=conversation, window=12)
        conversation.refresh_from_db()
        assert conversation.summary and conversation.summary_upto > 0
        assert not conversation_summary_refresh(conversation=conversation, window=12)  # nothing new left the window


def test_the_context_budget_is_the_answering_models(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    with tenant_context(tenant_a.organization):
        texts = [f"message number {i} " + "word " * 150 for i in range(12)]
        conversation = _conversation(tenant_a, *texts)
        offline = conversation_context(conversation=conversation)  # no provider: the offline budget
        assert offline.tokens <= 1500
        ai_configure(ai_fakes, keys=("openai",))  # gpt-4o answers: a longer memory
        strong = conversation_context(conversation=conversation)
        assert 1500 < strong.tokens <= 4000
        assert len(strong.messages) > len(offline.messages)
        ai_configure(ai_fakes, keys=("openai",), task_models={"generate": {"openai": "gpt-4o-mini-2024-07-18"}})
        assert conversation_context(conversation=conversation).tokens <= 2000
