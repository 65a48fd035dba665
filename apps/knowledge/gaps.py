"""Knowledge gaps: questions nobody could answer, grouped by meaning, turned into articles."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.db.models import Count, IntegerField, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce
from pgvector.django import CosineDistance

from apps.accounts.models import User
from apps.knowledge.embedding import Vector
from apps.knowledge.models import Article, KnowledgeGap


def knowledge_gap_group_assign(*, gap: KnowledgeGap, vector: Vector) -> KnowledgeGap:
    """Store the question's vector and join the group of the most similar open question, if close enough."""
    gap.embedding = vector
    leader = (
        KnowledgeGap.objects.filter(group__isnull=True, resolved=False, embedding__isnull=False)
        .exclude(pk=gap.pk)
        .annotate(distance=CosineDistance("embedding", vector))
        .order_by("distance")
        .first()
    )
    if leader is not None and 1 - leader.distance >= settings.KNOWLEDGE_GAP_GROUP_SIMILARITY:
        gap.group = leader
    gap.save(update_fields=["embedding", "group"])
    return gap


def knowledge_gap_groups() -> QuerySet[KnowledgeGap]:
    """Open group leaders with their group's size and how often its questions were asked."""
    open_members = Q(members__resolved=False)
    return (
        KnowledgeGap.objects.filter(group__isnull=True, resolved=False)
        .annotate(
            similar_count=Count("members", filter=open_members),
            group_asked=Coalesce(Sum("members__count", filter=open_members), Value(0), output_field=IntegerField()),
        )
        .order_by("-group_asked", "-count")
    )


@transaction.atomic
def knowledge_gaps_resolve(*, gaps: Iterable[KnowledgeGap]) -> int:
    """Mark gaps resolved, with the similar questions grouped under them."""
    ids = [gap.pk for gap in gaps]
    return KnowledgeGap.objects.filter(Q(pk__in=ids) | Q(group_id__in=ids), resolved=False).update(resolved=True)


@transaction.atomic
def knowledge_gap_article_create(*, gap: KnowledgeGap, by: User | None = None) -> Article:
    """A draft article titled by the question, linked to the gap (and its group) until it is published."""
    from apps.knowledge.services import article_save  # services resolve gaps on publication

    # The body stays empty: the editor writes the answer (the admin form requires it), and
    # the group's other wordings are listed on the gap's page.
    article = article_save(title=gap.question.strip()[:200], body="", status=Article.Status.DRAFT, author=by)
    KnowledgeGap.objects.filter(Q(pk=gap.pk) | Q(group=gap)).filter(article__isnull=True).update(article=article)
    return article


def knowledge_gaps_resolve_for_article(*, article: Article) -> int:
    """A published article answers the gaps it was written for."""
    if article.status != Article.Status.PUBLISHED:
        return 0
    return KnowledgeGap.objects.filter(article=article, resolved=False).update(resolved=True)
