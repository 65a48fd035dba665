"""Every inbound message is analysed offline: language, intent, sentiment, translation status."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.conversations.analysis import message_analyse, messages_unanalysed
from apps.conversations.models import Conversation, Message
from apps.conversations.services import inbound_message_record
from apps.conversations.tasks import message_analyse_task
from apps.core.tenancy import tenant_context
from apps.whatsapp.payloads import parse_message
from tests.ai_support import Fakes, ai_configure, ai_fakes, ai_fakes_server
from tests.conftest import TenantSetup
from tests.fakes.llm_apis import Reply

pytestmark = pytest.mark.django_db
__all__ = ["ai_fakes", "ai_fakes_server"]  # fixtures used by name

_sequence = iter(range(1, 1_000_000))


def _receive(tenant: TenantSetup, body: dict[str, Any], *, wa_id: str = "254711000777") -> Message:
    wamid = f"wamid.ANALYSIS{next(_sequence)}"
    payload = {
        "message": {"from": wa_id, "id": wamid, "timestamp": str(int(time.time())), **body},
        "contacts": [{"wa_id": wa_id, "profile": {"name": "Amani"}}],
    }
    message = inbound_message_record(account=tenant.whatsapp, inbound=parse_message(payload))
    assert message is not None
    return message


def _text(tenant: TenantSetup, text: str, **kwargs: Any) -> Message:
    return _receive(tenant, {"type": "text", "text": {"body": text}}, **kwargs)


def _analysed(message: Message) -> Message:
    result = message_analyse(message_id=message.pk)
    assert result is not None
    return Message.objects.get(pk=message.pk)


def test_recording_a_message_queues_its_analysis(
    tenant_a: TenantSetup, django_capture_on_commit_callbacks: Any
) -> None:
    with tenant_context(tenant_a.organization):
        with django_capture_on_commit_callbacks() as callbacks:
            message = _text(tenant_a, "Hello there")
        # Two after-commit callbacks: the analysis task and the realtime event.
        assert len(callbacks) == 2
        assert message.analysed_at is None


def test_an_angry_english_complaint(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        message = _analysed(_text(tenant_a, "This is unacceptable, I want to complain about your terrible service 😡"))
        assert message.language == "en"
        assert message.intent == "complaint"
        assert message.intent_confidence is not None and 0 < message.intent_confidence <= 1
        assert message.sentiment is not None and message.sentiment < -0.3
        assert message.analysed_at is not None
        assert message.analysis["provider"] == "local"
        # The tenant works in English: nothing to translate.
        assert message.analysis["translation"]["status"] == "not_needed"
        assert message.analysis["intent"]["name"] == "complaint"
        assert message.conversation.language == "en"


def test_a_grateful_swahili_customer_and_a_short_reply_keeps_the_language(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        first = _analysed(
            _text(tenant_a, "Asante sana kwa huduma nzuri, nimefurahi sana na bidhaa yenu 🙏", wa_id="254711000778")
        )
        assert first.language == "sw"
        assert first.sentiment is not None and first.sentiment > 0.3
        # Offline there is no translator: the message says so, and no translation is made up.
        assert first.analysis["translation"] == {
            "status": "untranslated",
            "target": "en",
            "reason": "no translation provider is available",
        }
        assert (first.translation, first.translated_to) == ("", "")
        # "ok" alone says nothing about the language: the conversation's history decides.
        short = _analysed(_text(tenant_a, "ok", wa_id="254711000778"))
        assert short.language == "sw"
        assert Conversation.objects.get(pk=short.conversation_id).language == "sw"


def test_a_first_hi_is_a_guess_and_a_plain_english_question_then_sets_the_language(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        hi = _analysed(_text(tenant_a, "Hi", wa_id="254711000781"))
        assert hi.analysis["language"]["reliable"] is False
        # A guess on two letters neither becomes the conversation's language nor buys a translation.
        assert Conversation.objects.get(pk=hi.conversation_id).language == ""
        assert hi.analysis["translation"]["status"] in ("not_needed", "untranslated")
        assert hi.analysis["translation"].get("reason") != "no translation provider is available"
        # lingua alone gives English only 0.45 here; with CLD2 agreeing it is reliable.
        question = _analysed(_text(tenant_a, "Where is my order?", wa_id="254711000781"))
        assert (question.language, question.analysis["language"]["reliable"]) == ("en", True)
        assert Conversation.objects.get(pk=question.conversation_id).language == "en"


def test_an_english_question_in_a_swahili_conversation_is_english(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _analysed(_text(tenant_a, "Habari, oda yangu haijafika bado", wa_id="254711000782"))
        switched = _analysed(_text(tenant_a, "I want to talk to a human please", wa_id="254711000782"))
        assert switched.language == "en"
        assert Conversation.objects.get(pk=switched.conversation_id).language == "en"


def test_a_failure_after_the_results_leaves_the_message_to_be_analysed_again(
    tenant_a: TenantSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apps.conversations import analysis

    fired: list[int] = []

    def rules_fail_once(_hook: Any, message: Message) -> None:
        fired.append(message.pk)
        if len(fired) == 1:
            raise RuntimeError("the rules' database went away")

    monkeypatch.setattr(analysis, "hooks_fire", rules_fail_once)
    with tenant_context(tenant_a.organization):
        message = _text(tenant_a, "I need to talk to a person please", wa_id="254711000783")
        with pytest.raises(RuntimeError):
            message_analyse(message_id=message.pk)
        # Nothing of it was kept: not the results, not the hand-off.
        assert Message.objects.get(pk=message.pk).analysed_at is None
        assert Conversation.objects.get(pk=message.conversation_id).status == Conversation.Status.BOT
        # The retry does all of it.
        assert message_analyse(message_id=message.pk) is not None
        assert fired == [message.pk, message.pk]
        assert Conversation.objects.get(pk=message.conversation_id).status == Conversation.Status.WAITING


def test_a_failing_summary_does_not_cost_the_hand_off(tenant_a: TenantSetup, monkeypatch: pytest.MonkeyPatch) -> None:
    from apps.conversations import analysis

    def summary_fails(**_kwargs: Any) -> bool:
        raise RuntimeError("provider and fallback both broke")

    monkeypatch.setattr(analysis, "conversation_summary_refresh", summary_fails)
    with tenant_context(tenant_a.organization):
        message = _text(tenant_a, "I need to talk to a person please", wa_id="254711000784")
        with pytest.raises(RuntimeError):
            message_analyse(message_id=message.pk)
        assert Message.objects.get(pk=message.pk).analysed_at is not None
        assert Conversation.objects.get(pk=message.conversation_id).status == Conversation.Status.WAITING


def test_a_message_without_text_keeps_the_conversation_language(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        _analysed(
            _text(tenant_a, "Bonjour, je voudrais savoir où en est ma commande s'il vous plaît", wa_id="254711000779")
        )
        photo = _receive(
            tenant_a,
            {"type": "image", "image": {"id": "MEDIA-1", "mime_type": "image/jpeg", "sha256": "x"}},
            wa_id="254711000779",
        )
        analysed = _analysed(photo)
        assert analysed.analysis["skipped"] == "no text"
        assert analysed.language == "fr"
        assert analysed.intent == ""
        assert analysed.sentiment is None


def test_analysis_happens_once(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        message = _analysed(_text(tenant_a, "Where is my order? It was due yesterday"))
        stamp = message.analysed_at
        assert message_analyse(message_id=message.pk) is None
        assert Message.objects.get(pk=message.pk).analysed_at == stamp


def test_the_sweeper_finds_messages_whose_analysis_was_lost(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        lost = _text(tenant_a, "I need to talk to a person please")
        fresh = _text(tenant_a, "hello")
        Message.objects.filter(pk=lost.pk).update(created=timezone.now() - timedelta(minutes=5))
        due = messages_unanalysed(older_than=timedelta(minutes=2))
        assert lost.pk in due
        assert fresh.pk not in due
        assert message_analyse_task.run(lost.pk) == "analysed"
        assert lost.pk not in messages_unanalysed(older_than=timedelta(minutes=2))


def test_a_tenant_cannot_analyse_another_tenants_message(tenant_a: TenantSetup, tenant_b: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        message = _text(tenant_a, "Please refund my payment, I was charged twice")
    with tenant_context(tenant_b.organization):
        # The same id in tenant B's schema is another row or none: A's message is untouched.
        message_analyse(message_id=message.pk)
    with tenant_context(tenant_a.organization):
        assert Message.objects.get(pk=message.pk).analysed_at is None
        assert _analysed(message).intent == "billing_payment"


def test_with_a_provider_the_intent_comes_from_it_and_the_message_is_translated(
    tenant_a: TenantSetup, ai_fakes: Fakes
) -> None:
    classification = json.dumps({"intent": "order_status", "confidence": 0.93})
    ai_fakes.openai.script("generate", Reply(text=classification), Reply(text="Where is my order? It is late."))
    with tenant_context(tenant_a.organization):
        ai_configure(ai_fakes, keys=("openai",))
        message = _analysed(
            _text(tenant_a, "Oda yangu iko wapi? Imechelewa sana, nimesubiri wiki mbili", wa_id="254711000790")
        )
    assert message.language == "sw"
    assert (message.intent, message.intent_confidence) == ("order_status", 0.93)
    assert message.analysis["provider"] == "openai"
    assert (message.translation, message.translated_to) == ("Where is my order? It is late.", "en")
    assert message.analysis["translation"]["status"] == "translated"
    prompts = [json.dumps(call.body) for call in ai_fakes.openai.calls("generate")]
    assert len(prompts) == 2 and "Oda yangu iko wapi" in prompts[1]


def test_a_provider_outage_still_analyses_the_message_offline(tenant_a: TenantSetup, ai_fakes: Fakes) -> None:
    ai_fakes.openai.script("generate", *[Reply(500)] * 6)
    with tenant_context(tenant_a.organization):
        ai_configure(ai_fakes, keys=("openai",))
        message = _analysed(_text(tenant_a, "Nataka kuongea na mtu, tafadhali", wa_id="254711000791"))
    assert message.analysed_at is not None
    assert message.analysis["provider"] == "local"
    assert message.analysis["translation"]["status"] == "untranslated"


def test_a_tenants_own_intent_is_learnt_from_a_few_phrases(tenant_a: TenantSetup, tenant_b: TenantSetup) -> None:
    from django.core.exceptions import ValidationError

    from apps.ai.models import CustomIntent
    from apps.ai.selectors import custom_intents_forget

    with tenant_context(tenant_a.organization):
        CustomIntent.objects.create(
            name="loan_application",
            examples="I want to apply for a loan\nHow do I get a loan from you?\nNataka mkopo\nCan I borrow money?",
        )
        custom_intents_forget()
        message = _analysed(
            _text(tenant_a, "I would like to apply for a loan of 50,000 shillings", wa_id="254711000792")
        )
        assert message.intent == "loan_application"
        reserved = CustomIntent(name="greeting", examples="hi\nhello\nhey")
        with pytest.raises(ValidationError):
            reserved.full_clean()
        with pytest.raises(ValidationError):
            CustomIntent(name="refund_status", examples="only one").full_clean()
    with tenant_context(tenant_b.organization):
        custom_intents_forget()
        other = _analysed(_text(tenant_b, "I would like to apply for a loan of 50,000 shillings", wa_id="254711000793"))
        assert other.intent != "loan_application"  # tenant A's intent is A's alone
