from __future__ import annotations

import pytest

from apps.ai.intents import UNKNOWN, classifier_get, classify_intent, merged_examples
from apps.core.lru import LruCache


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("Good morning!", "greeting"),
        ("Where is my parcel? It has been five days", "order_status"),
        ("Je veux parler à quelqu'un, pas à un robot", "human_request"),
        ("Nimekatwa pesa mara mbili kwenye kadi yangu", "billing_payment"),
        ("O aplicativo está a dar erro quando faço login", "technical_issue"),
        ("I wan book appointment for Saturday", "booking"),
    ],
)
def test_default_intents(text: str, intent: str) -> None:
    result = classify_intent(text)
    assert result.intent == intent
    assert 0.0 < result.confidence <= 1.0
    assert set(result.scores) >= {"greeting", "complaint", "feedback"}


@pytest.mark.parametrize("text", ["zxqv blorp wug", "what is the boiling point of mercury"])
def test_out_of_scope_is_unknown(text: str) -> None:
    assert classify_intent(text).intent == UNKNOWN


def test_tenant_intent_without_retraining_step() -> None:
    extra = {"loan_application": ["how do I apply for a loan", "nataka mkopo", "je veux demander un prêt"]}
    assert classify_intent("Can I get a loan for my business?", extra_examples=extra).intent == "loan_application"
    assert classify_intent("Can I get a loan for my business?").intent != "loan_application"


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("Good morning!", "greeting"),
        ("Where is my parcel? It has been five days", "order_status"),
        ("I was charged twice for the same order", "billing_payment"),
        ("I want to speak to a real person", "human_request"),
        ("The app keeps crashing when I log in", "technical_issue"),
    ],
)
def test_english_messages_get_the_english_head(text: str, intent: str) -> None:
    classifier = classifier_get(merged_examples(None))
    assert classifier.english is not None
    english = classify_intent(text, language="en")
    assert english.intent == intent
    assert english.scores != classify_intent(text).scores  # the English head's probabilities are averaged in


@pytest.mark.parametrize("text", ["zxqv blorp wug", "what is the boiling point of mercury"])
def test_out_of_scope_is_unknown_in_english_too(text: str) -> None:
    assert classify_intent(text, language="en").intent == UNKNOWN


def test_without_the_english_encoder_e5_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    from apps.ai import intents

    monkeypatch.setattr(intents, "english_embedder", lambda: None)
    monkeypatch.setattr(intents, "_classifiers", LruCache(intents.CLASSIFIER_CACHE_SIZE))
    result = classify_intent("Where is my parcel? It has been five days", language="en")
    assert result.intent == "order_status"
    assert classifier_get(merged_examples(None)).english is None
