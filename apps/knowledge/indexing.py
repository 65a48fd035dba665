"""The indexing pipeline: extract → chunk → embed → swap the source's passages in one transaction.

A source (document or article) is never half-indexed: passages are computed and embedded
outside any transaction, then the old set is replaced by the new one atomically. Passages
whose content hash did not change keep their row and vector; only new text is embedded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.ai.language import detect_language
from apps.knowledge.chunking import Passage, passages_build
from apps.knowledge.embedding import passages_embed
from apps.knowledge.events import document_progress_publish
from apps.knowledge.exceptions import DocumentEmpty, DocumentError
from apps.knowledge.extraction import Block, blocks_extract
from apps.knowledge.formats import kind_detect
from apps.knowledge.models import Article, Chunk, Document, IndexStatus

logger = logging.getLogger(__name__)

# PostgreSQL ships Snowball stemmers for these; everything else (Swahili, Yoruba, Zulu, …)
# is indexed with 'simple', which lowercases without stemming.
SEARCH_CONFIGS = {
    "en": "english",
    "fr": "french",
    "pt": "portuguese",
    "es": "spanish",
    "it": "italian",
    "de": "german",
    "nl": "dutch",
    "ar": "arabic",
}
SIMPLE = "simple"


def search_config_for(language: str) -> str:
    return SEARCH_CONFIGS.get(language, SIMPLE)


def _language_of(blocks: list[Block]) -> str:
    sample = " ".join(block.text for block in blocks)[:2000]
    result = detect_language(sample)
    return result.code if result.reliable else ""


@dataclass(frozen=True)
class IndexStats:
    embedded: int
    reused: int
    deleted: int


Progress = Callable[[int], None]


def _source_filter(source: Document | Article) -> dict[str, object]:
    return {"document": source} if isinstance(source, Document) else {"article": source}


def _source_live(source: Document | Article) -> bool:
    if isinstance(source, Document):
        return source.published and source.status == IndexStatus.READY
    return source.status == Article.Status.PUBLISHED


def _tsvector_refresh(chunk_ids: list[int]) -> None:
    if not chunk_ids:
        return
    # Language-stemmed lexemes for recall, plus 'simple' ones so that exact words (product
    # codes, names, Swahili) match whatever the question's language.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE knowledge_chunk SET search_vector =
                setweight(to_tsvector(search_config::regconfig, heading_path), 'A')
                || to_tsvector(search_config::regconfig, text)
                || to_tsvector('simple'::regconfig, heading_path || ' ' || text)
            WHERE id = ANY(%s)
            """,
            [chunk_ids],
        )


def _chunks_plan(where: dict[str, object], passages: list[Passage]) -> tuple[dict[int, int], list[int], list[int]]:
    """Which passages keep a stored row (index → chunk id), which need a new one, and the rows left over."""
    available: dict[str, list[int]] = {}
    for chunk_id, content_hash in Chunk.objects.filter(**where).values_list("id", "content_hash").order_by("id"):
        available.setdefault(content_hash, []).append(chunk_id)
    reuse: dict[int, int] = {}
    todo: list[int] = []
    for index, passage in enumerate(passages):
        ids = available.get(passage.content_hash)
        if ids:
            reuse[index] = ids.pop(0)
        else:
            todo.append(index)
    return reuse, todo, [chunk_id for ids in available.values() for chunk_id in ids]


def chunks_replace(
    *,
    source: Document | Article,
    passages: list[Passage],
    search_config: str,
    progress: Progress | None = None,
    still_current: Callable[[], bool] | None = None,
) -> IndexStats | None:
    """Make the source's passages exactly `passages`; None if the source changed meanwhile."""
    where = _source_filter(source)
    _reuse, todo, _stale = _chunks_plan(where, passages)
    vectors: dict[int, npt.NDArray[np.float32]] = {}
    batch = max(1, settings.KNOWLEDGE_EMBED_BATCH)
    for start in range(0, len(todo), batch):
        indexes = todo[start : start + batch]
        for index, vector in zip(indexes, passages_embed([passages[i].embed_text for i in indexes]), strict=True):
            vectors[index] = vector
        if progress is not None:
            progress(min(start + batch, len(todo)) * 100 // len(todo))

    category_id = source.category_id
    tags = list(source.tags)
    with transaction.atomic():
        if still_current is not None and not still_current():
            return None
        # still_current locked the source's row. Plan again from the rows as they are now: a
        # concurrent run of the same version (re-index clicked during the first) may have
        # committed its passages while this one was embedding; keeping those instead of
        # inserting its own is what stops the passages being duplicated.
        reuse, todo, stale = _chunks_plan(where, passages)
        missing = [index for index in todo if index not in vectors]
        if missing:  # rows this run meant to keep were deleted meanwhile (rare)
            vectors.update(zip(missing, passages_embed([passages[i].embed_text for i in missing]), strict=True))
        live = _source_live(source) if isinstance(source, Article) else source.published
        Chunk.objects.filter(id__in=stale).delete()
        kept = list(Chunk.objects.filter(id__in=reuse.values()))
        by_id = {chunk.pk: chunk for chunk in kept}
        reindex_text: list[int] = []
        for index, chunk_id in reuse.items():
            chunk, passage = by_id[chunk_id], passages[index]
            if chunk.search_config != search_config:
                reindex_text.append(chunk_id)
            chunk.ordinal, chunk.page, chunk.heading_path = index, passage.page, passage.heading_path[:500]
            chunk.search_config, chunk.is_live, chunk.category_id, chunk.tags = search_config, live, category_id, tags
        Chunk.objects.bulk_update(
            kept, ["ordinal", "page", "heading_path", "search_config", "is_live", "category_id", "tags"]
        )
        created = Chunk.objects.bulk_create(
            [
                Chunk(
                    **where,
                    ordinal=index,
                    text=passages[index].text,
                    heading_path=passages[index].heading_path[:500],
                    page=passages[index].page,
                    token_count=passages[index].token_count,
                    content_hash=passages[index].content_hash,
                    embedding=vectors[index],
                    search_config=search_config,
                    is_live=live,
                    category_id=category_id,
                    tags=tags,
                )
                for index in todo
            ]
        )
        _tsvector_refresh([chunk.pk for chunk in created] + reindex_text)
    return IndexStats(embedded=len(todo), reused=len(reuse), deleted=len(stale))


# --- Documents ----------------------------------------------------------------------------


def _document_step(document: Document, status: str, progress: int) -> None:
    Document.objects.filter(pk=document.pk).update(status=status, progress=progress, updated=timezone.now())
    document.status, document.progress = status, progress
    document_progress_publish(document)


def document_fail(*, document: Document, code: str, message: str) -> Document:
    with transaction.atomic():
        Chunk.objects.filter(document=document).delete()
        document.status, document.progress = IndexStatus.FAILED, 0
        document.error_code, document.error_message = code, message
        document.chunks_embedded = document.chunks_reused = 0
        document.save(
            update_fields=["status", "progress", "error_code", "error_message", "chunks_embedded", "chunks_reused"]
        )
    document_progress_publish(document)
    return document


def document_index(*, document_id: int) -> Document | None:
    """Run the whole pipeline for one document; failures end as status=failed with a message."""
    document = Document.objects.filter(pk=document_id).first()
    if document is None:
        return None  # deleted before its turn came
    version = document.sha256
    try:
        _document_step(document, IndexStatus.EXTRACTING, 5)
        with document.file.open("rb") as handle:
            data = handle.read()
        kind = kind_detect(data, document.original_name)
        if kind != document.kind:
            Document.objects.filter(pk=document.pk).update(kind=kind)
            document.kind = kind
        blocks = blocks_extract(data, kind)
        _document_step(document, IndexStatus.CHUNKING, 20)
        passages = passages_build(
            blocks,
            max_tokens=settings.KNOWLEDGE_CHUNK_MAX_TOKENS,
            overlap_tokens=settings.KNOWLEDGE_CHUNK_OVERLAP_TOKENS,
        )
        if not passages:
            # Ready with nothing to search would look like success: say why instead.
            raise DocumentEmpty(_("No text was found in this document (a scanned PDF needs OCR first)."))
        language = _language_of(blocks)
        _document_step(document, IndexStatus.EMBEDDING, 30)

        def progress(percent: int) -> None:
            _document_step(document, IndexStatus.EMBEDDING, 30 + percent * 65 // 100)

        def still_current() -> bool:
            # Lock the row: a replace or delete that commits meanwhile wins over this run.
            row = Document.objects.select_for_update().filter(pk=document.pk).values("sha256").first()
            return row is not None and row["sha256"] == version

        stats = chunks_replace(
            source=document,
            passages=passages,
            search_config=search_config_for(language),
            progress=progress,
            still_current=still_current,
        )
        if stats is None:
            logger.info("document %s changed while indexing; the newer run indexes it", document.pk)
            return document
        document.status, document.progress, document.language = IndexStatus.READY, 100, language
        document.error_code = document.error_message = ""
        document.chunks_embedded, document.chunks_reused = stats.embedded, stats.reused
        document.indexed_at = timezone.now()
        document.save(
            update_fields=[
                "status", "progress", "language", "error_code", "error_message",
                "chunks_embedded", "chunks_reused", "indexed_at", "updated",
            ]
        )  # fmt: skip
        document_progress_publish(document)
        return document
    except DocumentError as exc:
        return document_fail(document=document, code=exc.code, message=exc.message)
    except FileNotFoundError:
        return document_fail(document=document, code="document_missing", message=_("The stored file is missing."))
    except Exception:
        # A bug or an outage, not the document's fault: record it so the row is not stuck.
        logger.exception("indexing document %s failed", document_id)
        document_fail(
            document=document, code="index_error", message=_("Indexing failed unexpectedly. Try re-indexing.")
        )
        raise


# --- Articles -----------------------------------------------------------------------------


def article_fail(*, article: Article, version: int, message: str) -> Article:
    """Record a failed indexing of this version; a newer version's run is left alone."""
    with transaction.atomic():
        # Like a document's: the previous text's passages are not served as the edited article.
        if Article.objects.filter(pk=article.pk, version=version).update(
            index_status=IndexStatus.FAILED, index_error=message
        ):
            Chunk.objects.filter(article=article).delete()
            article.index_status, article.index_error = IndexStatus.FAILED, message
    return article


def article_index(*, article_id: int) -> Article | None:
    """Index the article's current version; a failure is recorded on the row (index_error) and raised."""
    article = Article.objects.filter(pk=article_id).first()
    if article is None:
        return None
    version = article.version
    try:
        Article.objects.filter(pk=article.pk).update(index_status=IndexStatus.EMBEDDING)
        blocks = [Block("heading", article.title, level=1), *blocks_extract_markdown(article.body)]
        passages = passages_build(
            blocks,
            max_tokens=settings.KNOWLEDGE_CHUNK_MAX_TOKENS,
            overlap_tokens=settings.KNOWLEDGE_CHUNK_OVERLAP_TOKENS,
        )
        language = _language_of(blocks)

        def still_current() -> bool:
            row = Article.objects.select_for_update().filter(pk=article.pk).values("version").first()
            return row is not None and row["version"] == version

        stats = chunks_replace(
            source=article, passages=passages, search_config=search_config_for(language), still_current=still_current
        )
    except Exception:
        # Recorded as failed, so the sweep does not queue it again every few minutes; the task
        # retries a transient failure a bounded number of times.
        logger.exception("indexing article %s failed", article_id)
        article_fail(article=article, version=version, message=_("Indexing failed unexpectedly. Try re-indexing."))
        raise
    if stats is not None:
        Article.objects.filter(pk=article.pk).update(index_status=IndexStatus.READY, language=language, index_error="")
        article.index_status, article.language, article.index_error = IndexStatus.READY, language, ""
    return article


def blocks_extract_markdown(body: str) -> list[Block]:
    try:
        return blocks_extract(body.encode(), Document.Kind.MARKDOWN)
    except DocumentEmpty:
        return []  # a title-only draft is allowed; it simply has no passages


def chunks_flags_sync(*, source: Document | Article) -> int:
    """Copy the source's publication, category and tags onto its passages (no re-embedding)."""
    return Chunk.objects.filter(**_source_filter(source)).update(
        is_live=_source_live(source), category_id=source.category_id, tags=list(source.tags)
    )
