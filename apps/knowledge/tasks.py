from __future__ import annotations

from celery import shared_task
from django.conf import settings

from apps.knowledge.indexing import article_index, document_index


@shared_task(acks_late=True)
def document_index_task(document_id: int) -> str:
    document = document_index(document_id=document_id)
    return document.status if document is not None else "deleted"


@shared_task(acks_late=True)
def article_index_task(article_id: int) -> str:
    article = article_index(article_id=article_id)
    return article.index_status if article is not None else "deleted"


@shared_task
def knowledge_index_sweep_task() -> int:
    from apps.knowledge.services import knowledge_index_sweep  # services import this module

    return knowledge_index_sweep(stuck_after_seconds=settings.KNOWLEDGE_INDEX_STUCK_SECONDS)
