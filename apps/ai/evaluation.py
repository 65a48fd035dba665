"""Offline evaluation of the analysers on public data files (`manage.py ai_eval`)."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from apps.ai.datasets import LabelledText, afrisenti_language, afrisenti_read, ntrex_read
from apps.ai.intents import Embedder, IntentClassifier

OOS_LABEL = "oos"
# Epochs of the softmax regression when fitting thousands of rows; chosen on an inner split
# of the Banking77 train rows that the reported split never sees.
EVAL_EPOCHS = 500


def accuracy(gold: Sequence[str], pred: Sequence[str]) -> float:
    return sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold) if gold else 0.0


def weighted_f1(gold: Sequence[str], pred: Sequence[str]) -> float:
    """F1 per gold label, averaged with the label's support as weight (as sklearn's `average="weighted"`)."""
    support = Counter(gold)
    predicted = Counter(pred)
    hits = Counter(g for g, p in zip(gold, pred, strict=True) if g == p)
    total = 0.0
    for label, count in support.items():
        precision = hits[label] / predicted[label] if predicted[label] else 0.0
        recall = hits[label] / count
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        total += f1 * count
    return total / len(gold) if gold else 0.0


@dataclass(frozen=True)
class IntentReport:
    accuracy: float
    train_rows: int
    test_rows: int
    intents: int


@dataclass(frozen=True)
class OutOfScopeReport:
    in_scope_accuracy: float
    oos_recall: float
    threshold: float
    threshold_rows: int
    test_rows: int
    note: str


def _stable_fraction(text: str) -> float:
    return hashlib.sha256(text.encode()).digest()[0] / 256


def few_shot(rows: Sequence[LabelledText], shots: int | None) -> list[LabelledText]:
    """The first `shots` rows of each label, in file order (all rows when shots is None)."""
    if not shots:
        return list(rows)
    taken: Counter[str] = Counter()
    kept = []
    for text, label in rows:
        if taken[label] < shots:
            taken[label] += 1
            kept.append((text, label))
    return kept


def _fit(rows: Sequence[LabelledText], embed: Embedder) -> IntentClassifier:
    examples: dict[str, list[str]] = defaultdict(list)
    for text, label in rows:
        examples[label].append(text)
    return IntentClassifier.fit(examples, embed=embed, epochs=EVAL_EPOCHS)


def intents_evaluate(
    train: Sequence[LabelledText], test: Sequence[LabelledText], *, shots: int | None, embed: Embedder
) -> IntentReport:
    """Accuracy of the intent classifier fitted on `train` (K shots per intent) over `test`."""
    kept = few_shot(train, shots)
    classifier = _fit(kept, embed)
    proba = classifier.probabilities(embed([text for text, _ in test]))
    pred = [classifier.intents[i] for i in proba.argmax(axis=1)]
    return IntentReport(
        accuracy(gold=[label for _, label in test], pred=pred), len(kept), len(test), len(classifier.intents)
    )


def _oos_rates(
    scores: npt.NDArray[np.float32], correct: npt.NDArray[np.bool_], is_oos: npt.NDArray[np.bool_], threshold: float
) -> tuple[float, float]:
    accepted = scores >= threshold
    in_scope = float((accepted & correct)[~is_oos].mean()) if (~is_oos).any() else 0.0
    recall = float((~accepted)[is_oos].mean()) if is_oos.any() else 0.0
    return in_scope, recall


def clinc_evaluate(splits: dict[str, list[LabelledText]], *, shots: int | None, embed: Embedder) -> OutOfScopeReport:
    """Fit on train, choose the rejection threshold on val (+ oos_val), report on test (+ oos_test).

    Without a test split (the dev copy), val and oos_val are cut in two halves by a hash of
    the text: the threshold is chosen on one half and the rates reported on the other.
    """
    classifier = _fit(few_shot(splits["train"], shots), embed)
    if "test" in splits:
        tune = [*splits["val"], *splits.get("oos_val", [])]
        report = [*splits["test"], *splits.get("oos_test", [])]
        note = "threshold on val+oos_val, reported on test+oos_test"
    else:
        rows = [*splits["val"], *splits.get("oos_val", [])]
        tune = [row for row in rows if _stable_fraction(row[0]) < 0.5]
        report = [row for row in rows if _stable_fraction(row[0]) >= 0.5]
        note = "no test split: threshold on a hash half of val+oos_val, reported on the other half"

    def scored(
        rows: Sequence[LabelledText],
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        proba = classifier.probabilities(embed([text for text, _ in rows]))
        pred = np.array(classifier.intents)[proba.argmax(axis=1)]
        gold = np.array([label for _, label in rows])
        return proba.max(axis=1), pred == gold, gold == OOS_LABEL

    tune_scores, tune_correct, tune_oos = scored(tune)
    best = (-1.0, 0.0)
    for threshold in np.unique(np.round(tune_scores, 3)):
        in_scope, recall = _oos_rates(tune_scores, tune_correct, tune_oos, float(threshold))
        # Balanced: each of the two rates counts the same, however few the oos rows.
        if (in_scope + recall) / 2 > best[0]:
            best = ((in_scope + recall) / 2, float(threshold))
    threshold = best[1]
    test_scores, test_correct, test_oos = scored(report)
    in_scope, recall = _oos_rates(test_scores, test_correct, test_oos, threshold)
    return OutOfScopeReport(in_scope, recall, threshold, len(tune), len(report), note)


def sentiment_evaluate(paths: Sequence[Path], *, analyse: Callable[[str], str] | None = None) -> dict[str, float]:
    """Weighted F1 of the sentiment label per AfriSenti file's language, plus their `average`."""
    if analyse is None:
        from apps.ai.sentiment import analyse_sentiment

        def analyse(text: str) -> str:
            return analyse_sentiment(text).label

    scores: dict[str, float] = {}
    for path in paths:
        rows = afrisenti_read(path)
        scores[afrisenti_language(path)] = weighted_f1(
            [label for _, label in rows], [analyse(text) for text, _ in rows]
        )
    if scores:
        scores["average"] = sum(scores.values()) / len(scores)
    return scores


def language_evaluate(path: Path, *, detect: Callable[[str], str] | None = None) -> dict[str, float]:
    """Accuracy per language of a `lang<TAB>text` file or an AfriSenti file, plus `macro`."""
    if detect is None:
        from apps.ai.language import detect_language

        def detect(text: str) -> str:
            return detect_language(text).code

    if _is_afrisenti(path):
        code = afrisenti_language(path)
        rows = [(text, code) for text, _ in afrisenti_read(path)]
    else:
        rows = ntrex_read(path)
    by_language: dict[str, list[bool]] = defaultdict(list)
    for text, code in rows:
        by_language[code].append(detect(text) == code)
    scores = {code: sum(hits) / len(hits) for code, hits in sorted(by_language.items())}
    if scores:
        scores["macro"] = sum(scores.values()) / len(scores)
    return scores


def _is_afrisenti(path: Path) -> bool:
    with path.open(encoding="utf-8") as handle:
        return handle.readline().rstrip("\n").split("\t")[:3] == ["ID", "tweet", "label"]
