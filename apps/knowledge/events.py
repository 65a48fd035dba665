"""Live events of the knowledge base (the back office shows indexing progress)."""

from __future__ import annotations

import logging

from apps.core.realtime import event_publish
from apps.knowledge.models import Document

logger = logging.getLogger(__name__)

DOCUMENT_PROGRESS = "knowledge.document.progress"


def document_progress_publish(document: Document) -> None:
    # Progress is a courtesy to whoever watches: a channel-layer hiccup must not fail indexing.
    try:
        event_publish(
            event_type=DOCUMENT_PROGRESS,
            data={
                "id": document.pk,
                "status": document.status,
                "progress": document.progress,
                "error": document.error_message,
            },
        )
    except Exception:
        logger.warning("could not publish progress of document %s", document.pk, exc_info=True)
