"""Answering from the knowledge base, offline: the best passage, cited, with a confidence score.

Below the confidence threshold the answerer says it does not know, signals a handoff, and
records the question as a knowledge gap for the editors.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.conversations.models import Conversation
from apps.knowledge.models import KnowledgeGap
from apps.knowledge.selectors import SearchHit, chunk_search

# multilingual-e5-small puts an unrelated question and passage at a cosine similarity of
# about 0.71-0.83 and a question with the passage that answers it at 0.85-0.92 (measured on
# the test corpus); confidence maps that band linearly onto 0..1.
SIMILARITY_FLOOR = 0.81
SIMILARITY_CEILING = 0.88
# Both retrievers putting the passage in their top 3 is evidence the similarity alone lacks.
AGREEMENT_RANK = 3
KEYWORD_BONUS = 0.1
ANSWER_MAX_CHARS = 1000  # WhatsApp allows 4,096; a chat answer should be much shorter
CITATION_MARGIN = 0.02
_QA = re.compile(r"^Q:.*?\nA:\s*(?P<answer>.+)$", re.DOTALL)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


@dataclass(frozen=True)
class Citation:
    chunk_id: int
    source: str  # "document" | "article"
    source_id: int
    title: str
    page: int | None
    heading_path: str


@dataclass(frozen=True)
class KnowledgeAnswer:
    text: str
    confidence: float
    handoff: bool
    citations: list[Citation] = field(default_factory=list)
    gap_id: int | None = None


def _citation(hit: SearchHit) -> Citation:
    chunk = hit.chunk
    if chunk.document is not None:
        return Citation(chunk.pk, "document", chunk.document.pk, chunk.document.title, chunk.page, chunk.heading_path)
    article = chunk.article
    if article is None:  # the check constraint guarantees a source; this keeps the types honest
        return Citation(chunk.pk, "document", 0, "", chunk.page, chunk.heading_path)
    return Citation(chunk.pk, "article", article.pk, article.title, None, chunk.heading_path)


def confidence_of(hit: SearchHit) -> float:
    span = SIMILARITY_CEILING - SIMILARITY_FLOOR
    value = (hit.similarity - SIMILARITY_FLOOR) / span
    if (hit.text_rank or AGREEMENT_RANK + 1) <= AGREEMENT_RANK and (hit.vector_rank or 99) <= AGREEMENT_RANK:
        value += KEYWORD_BONUS
    return round(min(1.0, max(0.0, value)), 3)


def _extract(text: str) -> str:
    match = _QA.match(text)
    answer = match.group("answer").strip() if match else text.strip()
    if len(answer) <= ANSWER_MAX_CHARS:
        return answer
    cut = answer[:ANSWER_MAX_CHARS]
    ends = [m.start() for m in _SENTENCE_END.finditer(cut)]
    return (cut[: ends[-1]] if ends else cut).rstrip() + " …"


def gap_key(question: str) -> str:
    folded = unicodedata.normalize("NFKC", question).casefold()
    words = re.findall(r"\w+", folded)
    return hashlib.sha256(" ".join(words).encode()).hexdigest()


def knowledge_gap_record(*, question: str, confidence: float, conversation: Conversation | None = None) -> KnowledgeGap:
    """Count an unanswered question (by its normalised words), once per asking."""
    key, now = gap_key(question), timezone.now()
    updates = {
        "count": F("count") + 1,
        "last_asked": now,
        "question": question[:1000],
        "best_confidence": Greatest(F("best_confidence"), confidence),
        "resolved": False,
    }
    if conversation is not None:
        updates["last_conversation"] = conversation
    for _attempt in range(2):
        if KnowledgeGap.objects.filter(key=key).update(**updates):
            return KnowledgeGap.objects.get(key=key)
        try:
            with transaction.atomic():
                return KnowledgeGap.objects.create(
                    key=key,
                    question=question[:1000],
                    best_confidence=confidence,
                    first_asked=now,
                    last_asked=now,
                    last_conversation=conversation,
                )
        except IntegrityError:
            continue  # another worker created it between our UPDATE and INSERT: update it
    return KnowledgeGap.objects.get(key=key)


def knowledge_answer(
    *, question: str, conversation: Conversation | None = None, record_gap: bool = True
) -> KnowledgeAnswer:
    """Answer a customer's question from published knowledge, or signal a handoff and log the gap.

    `record_gap=False` for an agent's copilot: only customers' unanswered questions are gaps.
    """
    language = conversation.language if conversation is not None else ""
    hits = chunk_search(query=question, k=settings.KNOWLEDGE_SEARCH_K, language=language)
    best = max(hits, key=lambda hit: (confidence_of(hit), hit.score), default=None)
    confidence = confidence_of(best) if best is not None else 0.0
    if best is None or confidence < settings.KNOWLEDGE_ANSWER_MIN_CONFIDENCE:
        gap = (
            knowledge_gap_record(question=question, confidence=confidence, conversation=conversation)
            if record_gap
            else None
        )
        return KnowledgeAnswer(
            text=_("I don't have an answer to that yet. Let me connect you with a member of our team."),
            confidence=confidence,
            handoff=True,
            gap_id=gap.pk if gap is not None else None,
        )
    supporting = [hit for hit in hits if hit is not best and hit.similarity >= best.similarity - CITATION_MARGIN][:2]
    return KnowledgeAnswer(
        text=_extract(best.chunk.text),
        confidence=confidence,
        handoff=False,
        citations=[_citation(best), *(_citation(hit) for hit in supporting)],
    )
