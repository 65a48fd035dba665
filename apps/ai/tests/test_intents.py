from __future__ import annotations

import pytest

from apps.ai.intents import UNKNOWN, classify_intent


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
