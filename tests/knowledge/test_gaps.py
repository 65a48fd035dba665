"""Knowledge gaps: grouped by meaning, turned into draft articles, resolved on publication."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.accounts.roles import KNOWLEDGE_EDITOR
from apps.accounts.services import user_create
from apps.core.tenancy import tenant_context
from apps.knowledge.answers import knowledge_gap_record
from apps.knowledge.gaps import knowledge_gap_article_create, knowledge_gap_groups, knowledge_gaps_resolve
from apps.knowledge.models import Article, KnowledgeGap
from apps.knowledge.services import article_save
from tests.conftest import TenantSetup

pytestmark = pytest.mark.django_db

RESET = ("How do I reset my password?", "I forgot my password, how can I reset it?", "how do i reset my password")
OTHER = "Do you deliver furniture to Kisumu?"


def _gaps() -> tuple[KnowledgeGap, KnowledgeGap]:
    for question in (*RESET, OTHER, RESET[0]):
        knowledge_gap_record(question=question, confidence=0.1)
    return KnowledgeGap.objects.get(question=RESET[0]), KnowledgeGap.objects.get(question=OTHER)


def test_similar_questions_are_grouped_with_counts(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        reset, other = _gaps()
        assert KnowledgeGap.objects.count() == 3  # RESET[2] has the same words as RESET[0]
        assert reset.group is None and other.group is None
        assert KnowledgeGap.objects.get(question=RESET[1]).group == reset
        groups = {gap.pk: (gap.similar_count, gap.count + gap.group_asked) for gap in knowledge_gap_groups()}  # type: ignore[attr-defined]
        assert groups == {reset.pk: (1, 4), other.pk: (0, 1)}
        assert knowledge_gaps_resolve(gaps=[reset]) == 2
        assert list(KnowledgeGap.objects.filter(resolved=False)) == [other]


def test_an_article_from_a_gap_resolves_its_group_when_published(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        reset, _other = _gaps()
        article = knowledge_gap_article_create(gap=reset)
        assert (article.title, article.status) == (RESET[0], Article.Status.DRAFT)
        assert set(KnowledgeGap.objects.filter(article=article).values_list("question", flat=True)) == set(RESET[:2])
        assert not KnowledgeGap.objects.filter(article=article, resolved=True).exists()
        article_save(article=article, title=article.title, body="Tap *Forgot password*.", status="published")
        assert KnowledgeGap.objects.filter(article=article, resolved=True).count() == 2
        assert KnowledgeGap.objects.filter(resolved=False).count() == 1


def test_the_admin_groups_creates_the_draft_and_resolves(tenant_a: TenantSetup) -> None:
    client: Client = tenant_a.client()
    with tenant_context(tenant_a.organization):
        reset, other = _gaps()
        client.force_login(user_create(email="gap-editor@alpha.test", password="pw-gaps-123456", role=KNOWLEDGE_EDITOR))
    listing = client.get("/admin/knowledge/knowledgegap/?grouping=groups")
    assert listing.status_code == 200
    assert RESET[0] in listing.content.decode() and RESET[1] not in listing.content.decode()
    created = client.post(
        "/admin/knowledge/knowledgegap/", {"action": "create_article", "_selected_action": [reset.pk]}
    )
    assert created.status_code == 302 and "/admin/knowledge/article/" in created["Location"]
    resolved = client.post(
        "/admin/knowledge/knowledgegap/", {"action": "mark_resolved", "_selected_action": [other.pk]}
    )
    assert resolved.status_code == 302
    with tenant_context(tenant_a.organization):
        assert Article.objects.filter(title=RESET[0], status="draft").exists()
        assert KnowledgeGap.objects.get(pk=other.pk).resolved
