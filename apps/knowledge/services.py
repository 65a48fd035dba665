"""Every write of the knowledge base: documents, articles and their versions, feedback."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path, PurePath
from typing import IO, Literal

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.core.exceptions import ApplicationError
from apps.core.queue import enqueue_on_commit
from apps.knowledge.events import document_progress_publish
from apps.knowledge.exceptions import (
    ArticleVersionUnknown,
    DocumentError,
    DocumentTooLarge,
    DocumentUnsupported,
)
from apps.knowledge.formats import Kind, kind_detect
from apps.knowledge.gaps import knowledge_gaps_resolve_for_article
from apps.knowledge.imports import import_items
from apps.knowledge.indexing import chunks_flags_sync, document_fail, document_index
from apps.knowledge.models import Article, ArticleVersion, Category, Document, IndexStatus
from apps.knowledge.tasks import article_index_task, document_index_task


def _tags_clean(tags: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for tag in tags:
        cleaned = tag.strip().lower()[:50]
        if cleaned:
            seen[cleaned] = None
    return list(seen)


def _upload_read(upload: IO[bytes]) -> bytes:
    limit = settings.KNOWLEDGE_MAX_UPLOAD_BYTES
    data = upload.read(limit + 1)
    if len(data) > limit:
        raise DocumentTooLarge(
            _("The file is larger than %(mb)s MB.") % {"mb": limit // (1024 * 1024)}, extra={"max_bytes": limit}
        )
    return data


def _file_delete_on_commit(document: Document, name: str) -> None:
    storage = document.file.storage
    transaction.on_commit(lambda: storage.delete(name) if name else None)


def _content_store(document: Document, data: bytes, filename: str) -> None:
    document.original_name = PurePath(filename).name[:255]
    document.size = len(data)
    document.sha256 = hashlib.sha256(data).hexdigest()
    document.error_code = document.error_message = ""
    document.progress = 0
    try:
        document.kind = kind_detect(data, filename)
        if document.kind == Kind.UNKNOWN:
            raise DocumentUnsupported(
                _("This file type is not supported. Upload PDF, DOCX, XLSX, TXT, CSV, Markdown or HTML.")
            )
        document.status = IndexStatus.UPLOADED
    except DocumentError as exc:
        # The upload is kept and shown as failed with the reason: the editor sees what went wrong.
        document.status, document.error_code, document.error_message = IndexStatus.FAILED, exc.code, exc.message
    # The storage name is a UUID (document_upload_to). Django has no on-rollback hook, so a
    # rolled-back upload leaves its file behind: the only step after this one is the INSERT.
    document.file.save(PurePath(filename).name or "upload", ContentFile(data), save=False)


@transaction.atomic
def document_create(
    *,
    upload: IO[bytes],
    filename: str,
    title: str = "",
    category: Category | None = None,
    tags: Iterable[str] = (),
    published: bool = True,
    by: User | None = None,
    queue_index: bool = True,
) -> Document:
    """Store an upload and queue its indexing; a file that cannot be indexed is stored as failed."""
    data = _upload_read(upload)
    document = Document(
        title=(title or PurePath(filename).stem or _("Untitled"))[:200],
        category=category,
        tags=_tags_clean(tags),
        published=published,
        uploaded_by=by,
    )
    _content_store(document, data, filename)
    document.save()
    if queue_index and document.status == IndexStatus.UPLOADED:
        enqueue_on_commit(document_index_task, document.pk)
    document_progress_publish(document)
    return document


@transaction.atomic
def document_replace(*, document: Document, upload: IO[bytes], filename: str) -> Document:
    """Swap in a new file; unchanged passages keep their vectors when it is indexed."""
    data = _upload_read(upload)
    old_name = document.file.name or ""
    _content_store(document, data, filename)
    document.save()
    _file_delete_on_commit(document, old_name)
    if document.status == IndexStatus.UPLOADED:
        enqueue_on_commit(document_index_task, document.pk)
    else:
        document_fail(document=document, code=document.error_code, message=document.error_message)
    return document


@transaction.atomic
def document_update(
    *,
    document: Document,
    title: str,
    category: Category | None,
    tags: Iterable[str],
    published: bool,
) -> Document:
    """Change what describes a document; its passages follow without re-embedding."""
    document.title, document.category = title[:200], category
    document.tags, document.published = _tags_clean(tags), published
    document.save()
    chunks_flags_sync(source=document)
    return document


@transaction.atomic
def document_reindex(*, document: Document) -> Document:
    document.status, document.progress = IndexStatus.UPLOADED, 0
    document.save(update_fields=["status", "progress", "updated"])
    enqueue_on_commit(document_index_task, document.pk)
    return document


@transaction.atomic
def document_delete(*, document: Document) -> None:
    """Delete the document, its passages (cascade) and, once committed, its file."""
    name = document.file.name or ""
    _file_delete_on_commit(document, name)
    document.delete()


# --- Articles -----------------------------------------------------------------------------


@transaction.atomic
def article_save(
    *,
    article: Article | None = None,
    title: str,
    body: str,
    status: str = Article.Status.DRAFT,
    category: Category | None = None,
    tags: Iterable[str] = (),
    author: User | None = None,
) -> Article:
    """Create or edit an article; every save is a new version, and changed text is re-indexed."""
    if article is None:
        article = Article(author=author)
        text_changed = True
    else:
        article = Article.objects.select_for_update().get(pk=article.pk)
        # A failed indexing is tried again by the next save, even one that keeps the text.
        text_changed = (article.title, article.body) != (title, body) or article.index_status == IndexStatus.FAILED
    article.title, article.body, article.status = title[:200], body, status
    article.category, article.tags = category, _tags_clean(tags)
    article.version += 1
    if text_changed:
        article.index_status, article.index_error = IndexStatus.UPLOADED, ""
    article.save()
    ArticleVersion.objects.create(
        article=article, number=article.version, title=article.title, body=body, status=status, author=author
    )
    if text_changed:
        enqueue_on_commit(article_index_task, article.pk)
    chunks_flags_sync(source=article)
    knowledge_gaps_resolve_for_article(article=article)
    return article


def article_restore(*, article: Article, number: int, by: User | None = None) -> Article:
    """Bring back an earlier version's text as a new version (history is never rewritten)."""
    version = ArticleVersion.objects.filter(article=article, number=number).first()
    if version is None:
        raise ArticleVersionUnknown(_("This article has no version %(n)s.") % {"n": number})
    return article_save(
        article=article,
        title=version.title,
        body=version.body,
        status=article.status,
        category=article.category,
        tags=article.tags,
        author=by,
    )


@transaction.atomic
def article_reindex(*, article: Article) -> Article:
    article.index_status, article.index_error = IndexStatus.UPLOADED, ""
    article.save(update_fields=["index_status", "index_error", "updated"])
    enqueue_on_commit(article_index_task, article.pk)
    return article


@transaction.atomic
def article_delete(*, article: Article) -> None:
    article.delete()


def article_view_record(*, article: Article) -> None:
    Article.objects.filter(pk=article.pk).update(view_count=F("view_count") + 1)


def article_feedback_record(*, article: Article, helpful: bool) -> None:
    field = "helpful_count" if helpful else "not_helpful_count"
    Article.objects.filter(pk=article.pk).update(**{field: F(field) + 1})


ACTIVE_STATES = (IndexStatus.UPLOADED, IndexStatus.EXTRACTING, IndexStatus.CHUNKING, IndexStatus.EMBEDDING)


def knowledge_index_sweep(*, stuck_after_seconds: int, now: datetime | None = None) -> int:
    """Queue again the sources whose indexing stopped moving (a lost task or a killed worker)."""
    cutoff = (now or timezone.now()) - timedelta(seconds=stuck_after_seconds)
    swept = 0
    for document in Document.objects.filter(status__in=ACTIVE_STATES, updated__lt=cutoff):
        document_reindex(document=document)
        swept += 1
    for article_id in Article.objects.filter(index_status__in=ACTIVE_STATES, updated__lt=cutoff).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            enqueue_on_commit(article_index_task, article_id)
        swept += 1
    return swept


def category_get_or_create(*, name: str) -> Category:
    category, _created = Category.objects.get_or_create(name=name.strip()[:100])
    return category


@dataclass(frozen=True)
class ImportOutcome:
    documents: list[Document]
    refused: list[tuple[str, str, str]]  # (file name, error code, message)


@dataclass(frozen=True)
class ImportStep:
    """One file of an import, reported as soon as it is done (kb_import's progress lines)."""

    number: int  # 1-based
    total: int
    name: str  # path inside the folder or archive
    document: Document | None  # None when the file was refused before a document existed
    refused: tuple[str, str] | None = None  # (error code, message)


def documents_import(
    *,
    path: Path,
    name: str = "",
    published: bool = True,
    by: User | None = None,
    index: Literal["queue", "now"] = "queue",
    on_step: Callable[[ImportStep], None] | None = None,
) -> ImportOutcome:
    """Import a file, folder or zip: one document per file, its first folder its category.

    A DOCX or XLSX is one file, not an archive. `name` is what a single file is called when
    `path` is a temporary copy (an upload): the document keeps the uploaded name.

    The API and `kb_import` both come here. `index="queue"` hands each document to the Celery
    pipeline (after commit); `index="now"` indexes it in this process before the next file,
    so that a caller without a worker ends with searchable documents. `on_step` hears about
    every file once it is done. A file that cannot be read is kept as a failed document with
    its error (or refused when no document could be stored, e.g. too large); the archive as a
    whole is refused only when it is unsafe (zip bomb) or a file exceeds the upload limit.
    """
    documents: list[Document] = []
    refused: list[tuple[str, str, str]] = []
    items = list(import_items(path, name=name))
    for number, item in enumerate(items, start=1):
        try:
            document = document_create(
                upload=io.BytesIO(item.data),
                filename=item.name,
                category=category_get_or_create(name=item.folder) if item.folder else None,
                published=published,
                by=by,
                queue_index=index == "queue",
            )
        except ApplicationError as exc:
            refused.append((item.name, exc.code, exc.message))
            if on_step is not None:
                on_step(ImportStep(number, len(items), item.name, None, (exc.code, exc.message)))
            continue
        if index == "now" and document.status == IndexStatus.UPLOADED:
            document = document_index(document_id=document.pk) or document
        documents.append(document)
        if on_step is not None:
            on_step(ImportStep(number, len(items), item.name, document))
    return ImportOutcome(documents, refused)
