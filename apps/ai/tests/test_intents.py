from __future__ import annotations

import numpy as np
import pytest

from apps.ai.intents import (
    KNN_NEIGHBOURS,
    KNN_TEMPERATURE,
    KNN_WEIGHT,
    UNKNOWN,
    Floats,
    IntentClassifier,
    LinearHead,
    classifier_get,
    classify_intent,
    merged_examples,
)
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


def _unit(*rows: tuple[float, float]) -> Floats:
    vectors = np.array(rows, dtype=np.float32)
    unit: Floats = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    return unit


def _uniform_head(dim: int, classes: int) -> LinearHead:
    return LinearHead(np.zeros((dim, classes), dtype=np.float32), np.zeros(classes, dtype=np.float32))


def test_neighbour_vote_weighs_the_nearest_examples_by_similarity() -> None:
    # One example of intent 0 at angle 0, seven of intent 1 a little further; the query sits on intent 0's.
    angles = [0.0] + [0.3] * 7
    examples = _unit(*[(np.cos(a), np.sin(a)) for a in angles])
    labels = np.array([0] + [1] * 7, dtype=np.int64)
    classifier = IntentClassifier(("a", "b"), _uniform_head(2, 2), examples, labels)
    vote = classifier.neighbour_vote(_unit((1.0, 0.0)))[0]
    # Only KNN_NEIGHBOURS examples vote: intent 0's with weight 1, four of intent 1's with e^(-gap/T) each.
    gap = 1.0 - float(np.cos(0.3))
    others = (KNN_NEIGHBOURS - 1) * np.exp(-gap / KNN_TEMPERATURE)
    assert vote[0] == pytest.approx(1 / (1 + others), rel=1e-4)
    assert vote.sum() == pytest.approx(1.0)
    # The final probabilities: the heads' (uniform here) with the vote's share.
    proba = classifier.probabilities(_unit((1.0, 0.0)))[0]
    assert proba[0] == pytest.approx((1 - KNN_WEIGHT) * 0.5 + KNN_WEIGHT * vote[0], rel=1e-4)


def test_neighbour_vote_averages_the_english_similarities_in() -> None:
    # MiniLM's examples are the other way round from e5's.
    examples = _unit((1.0, 0.0), (0.0, 1.0))
    english_examples = _unit((0.0, 1.0), (1.0, 0.0))
    labels = np.array([0, 1], dtype=np.int64)
    classifier = IntentClassifier(
        ("a", "b"), _uniform_head(2, 2), examples, labels, _uniform_head(2, 2), english_examples
    )
    # e5 leans a little to intent 0 (0.74 against 0.67); MiniLM is sure of intent 1 (0.99 against 0.11).
    query, english_query = _unit((1.0, 0.9)), _unit((0.9, 0.1))
    assert classifier.neighbour_vote(query)[0].argmax() == 0
    assert classifier.neighbour_vote(query, english_query)[0].argmax() == 1
    assert classifier.probabilities(query, english_query)[0].argmax() == 1
