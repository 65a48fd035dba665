"""Retrieval evaluation on a BEIR-style set (corpus, queries, qrels): MRR@10, recall@k, answer share."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from apps.knowledge.answers import confidence_of
from apps.knowledge.indexing import article_index
from apps.knowledge.models import Article, IndexStatus
from apps.knowledge.selectors import chunk_search

# Passages, not sources, are retrieved: fetch more than 10 so that 10 distinct sources remain.
SEARCH_DEPTH = 30


@dataclass(frozen=True)
class EvalReport:
    queries: int
    mrr_at_10: float
    recall_at_1: float
    recall_at_5: float
    recall_at_10: float
    answered: float  # share of queries whose best passage clears the answer threshold
    answered_correct: float  # … and whose best-confidence passage comes from a relevant source


def jsonl_read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def qrels_read(path: Path) -> dict[str, set[str]]:
    relevant: dict[str, set[str]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if int(row.get("score") or 1) > 0:
                relevant.setdefault(row["query-id"], set()).add(row["corpus-id"])
    return relevant


def corpus_load(rows: Iterable[dict[str, str]], *, progress: Callable[[int], None] | None = None) -> dict[int, str]:
    """Index each corpus row as a published article (title + text); return article id → corpus id.

    The rows are written directly rather than through `article_save`, which would queue a
    Celery indexing task per article: the evaluation indexes them here, synchronously.
    """
    mapping: dict[int, str] = {}
    for number, row in enumerate(rows, start=1):
        article = Article.objects.create(
            title=(row.get("title") or row["_id"])[:200],
            body=row.get("text", ""),
            status=Article.Status.PUBLISHED,
            index_status=IndexStatus.UPLOADED,
        )
        article_index(article_id=article.pk)
        mapping[article.pk] = row["_id"]
        if progress is not None:
            progress(number)
    return mapping


def _is_relevant(corpus_id: str, relevant: set[str]) -> bool:
    # A corpus of answer-level rows (`faq0000_a1`) is judged by its thread's id (`faq0000`).
    return corpus_id in relevant or corpus_id.rsplit("_", 1)[0] in relevant


def retrieval_evaluate(
    *, queries: list[dict[str, str]], qrels: dict[str, set[str]], sources: dict[int, str]
) -> EvalReport:
    judged = [query for query in queries if query["_id"] in qrels]
    reciprocal, at1, at5, at10, answered, correct = 0.0, 0, 0, 0, 0, 0
    threshold = settings.KNOWLEDGE_ANSWER_MIN_CONFIDENCE
    for query in judged:
        relevant = qrels[query["_id"]]
        hits = chunk_search(query=query["text"], k=SEARCH_DEPTH)
        ranked = list(dict.fromkeys(sources.get(hit.chunk.article_id or 0, "") for hit in hits))[:10]
        rank = next((i for i, corpus_id in enumerate(ranked, start=1) if _is_relevant(corpus_id, relevant)), None)
        if rank is not None:
            reciprocal += 1 / rank
            at1 += rank <= 1
            at5 += rank <= 5
            at10 += rank <= 10
        top = hits[: settings.KNOWLEDGE_SEARCH_K]
        best = max(top, key=lambda hit: (confidence_of(hit), hit.score), default=None)
        if best is not None and confidence_of(best) >= threshold:
            answered += 1
            correct += _is_relevant(sources.get(best.chunk.article_id or 0, ""), relevant)
    n = max(1, len(judged))
    return EvalReport(len(judged), reciprocal / n, at1 / n, at5 / n, at10 / n, answered / n, correct / n)
