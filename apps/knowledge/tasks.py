from __future__ import annotations

from celery import Task, shared_task
from django.conf import settings

from apps.knowledge.indexing import article_index, document_index


@shared_task(acks_late=True)
def document_index_task(document_id: int) -> str:
    document = document_index(document_id=document_id)
    return document.status if document is not None else "deleted"


# A failed run is recorded on the article (index_error) and retried a few times, 16, 32 and
# 64 s apart (an embedding or database outage); then it stays failed until the next edit.
ARTICLE_INDEX_RETRIES = 3


@shared_task(bind=True, max_retries=ARTICLE_INDEX_RETRIES, acks_late=True)
def article_index_task(self: Task, article_id: int) -> str:  # type: ignore[type-arg]
    try:
        article = article_index(article_id=article_id)
    except Exception as exc:  # article_index logged and recorded it
        raise self.retry(exc=exc, countdown=2 ** (self.request.retries + 4)) from exc
    return article.index_status if article is not None else "deleted"


@shared_task
def knowledge_index_sweep_task() -> int:
    from apps.knowledge.services import knowledge_index_sweep  # services import this module

    return knowledge_index_sweep(stuck_after_seconds=settings.KNOWLEDGE_INDEX_STUCK_SECONDS)
