"""Documents and articles, the chunks they are indexed into, and the questions nobody could answer."""

from __future__ import annotations

import uuid
from pathlib import PurePath

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.utils.translation import gettext_lazy as _
from pgvector.django import VectorField

from apps.conversations.models import Conversation
from apps.core.tenancy import tenant_storage_path


def document_upload_to(instance: Document, filename: str) -> str:
    # The stored name is a UUID: user-chosen names never reach the storage backend.
    suffix = PurePath(filename).suffix.lower()[:10]
    return tenant_storage_path("knowledge", f"{uuid.uuid4().hex}{suffix}")


class Category(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)

    class Meta:
        verbose_name = _("category")
        verbose_name_plural = _("categories")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class IndexStatus(models.TextChoices):
    UPLOADED = "uploaded", _("Uploaded")
    EXTRACTING = "extracting", _("Extracting text")
    CHUNKING = "chunking", _("Splitting into passages")
    EMBEDDING = "embedding", _("Embedding")
    READY = "ready", _("Ready")
    FAILED = "failed", _("Failed")


class Document(models.Model):
    class Kind(models.TextChoices):
        PDF = "pdf", "PDF"
        DOCX = "docx", "DOCX"
        TXT = "txt", _("Plain text")
        CSV = "csv", "CSV"
        MARKDOWN = "md", "Markdown"
        HTML = "html", "HTML"
        XLSX = "xlsx", "XLSX"
        UNKNOWN = "unknown", _("Unsupported")

    title = models.CharField(_("title"), max_length=200)
    file = models.FileField(_("file"), upload_to=document_upload_to, max_length=200)
    original_name = models.CharField(_("original file name"), max_length=255, blank=True)
    kind = models.CharField(_("type"), max_length=10, choices=Kind.choices, default=Kind.UNKNOWN)
    size = models.PositiveBigIntegerField(_("size in bytes"), default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    category = models.ForeignKey(
        Category, on_delete=models.SET_NULL, null=True, blank=True, related_name="documents", verbose_name=_("category")
    )
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True, verbose_name=_("tags"))
    published = models.BooleanField(_("published"), default=True)
    language = models.CharField(_("language"), max_length=8, blank=True)
    status = models.CharField(_("status"), max_length=12, choices=IndexStatus.choices, default=IndexStatus.UPLOADED)
    progress = models.PositiveSmallIntegerField(_("progress %"), default=0)
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(_("error"), blank=True)
    chunks_embedded = models.PositiveIntegerField(default=0, help_text=_("Passages embedded by the last indexing."))
    chunks_reused = models.PositiveIntegerField(default=0, help_text=_("Unchanged passages kept by the last indexing."))
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    indexed_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("document")
        verbose_name_plural = _("documents")
        ordering = ["-created"]
        constraints = [
            models.CheckConstraint(condition=models.Q(progress__lte=100), name="knowledge_document_progress_max"),
        ]

    def __str__(self) -> str:
        return self.title


class Article(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        PUBLISHED = "published", _("Published")
        ARCHIVED = "archived", _("Archived")

    title = models.CharField(_("title"), max_length=200)
    body = models.TextField(_("body (Markdown)"))
    category = models.ForeignKey(
        Category, on_delete=models.SET_NULL, null=True, blank=True, related_name="articles", verbose_name=_("category")
    )
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True, verbose_name=_("tags"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.DRAFT)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    version = models.PositiveIntegerField(_("version"), default=0)
    language = models.CharField(_("language"), max_length=8, blank=True)
    view_count = models.PositiveIntegerField(_("views"), default=0)
    helpful_count = models.PositiveIntegerField(_("helpful"), default=0)
    not_helpful_count = models.PositiveIntegerField(_("not helpful"), default=0)
    index_status = models.CharField(
        _("index status"), max_length=12, choices=IndexStatus.choices, default=IndexStatus.UPLOADED
    )
    index_error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("article")
        verbose_name_plural = _("articles")
        ordering = ["-updated"]

    def __str__(self) -> str:
        return self.title


class ArticleVersion(models.Model):
    """One saved state of an article; every save adds one, a restore adds one too."""

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField(_("version"))
    title = models.CharField(_("title"), max_length=200)
    body = models.TextField(_("body (Markdown)"))
    status = models.CharField(_("status"), max_length=10, choices=Article.Status.choices)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("article version")
        verbose_name_plural = _("article versions")
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["article", "number"], name="knowledge_article_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.title} v{self.number}"


class Chunk(models.Model):
    """A passage of one document or article, with its vector and its full-text vector.

    `is_live`, `category_id` and `tags` are copies of the source's state so that search
    filters on this table alone (the HNSW scan cannot look through a join).
    """

    document = models.ForeignKey(Document, on_delete=models.CASCADE, null=True, blank=True, related_name="chunks")
    article = models.ForeignKey(Article, on_delete=models.CASCADE, null=True, blank=True, related_name="chunks")
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    content_hash = models.CharField(max_length=64)
    page = models.PositiveIntegerField(null=True, blank=True)
    heading_path = models.CharField(max_length=500, blank=True)
    token_count = models.PositiveIntegerField(default=0)
    # Declared without dimensions on purpose: see the comment on the HNSW index below.
    embedding = VectorField()
    # PostgreSQL text-search configuration used for search_vector ("english", "simple", …).
    search_config = models.CharField(max_length=20, default="simple")
    search_vector = SearchVectorField(null=True)
    is_live = models.BooleanField(default=False)
    category_id = models.IntegerField(null=True, blank=True)
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    # The HNSW index (cosine) is created with RunSQL (migration 0004, first 0001) on the
    # expression `embedding::halfvec(DIM)`: django-tenants' clone_schema copies a
    # `vector(384)` column as `vector`, and HNSW refuses a column without dimensions. With a
    # dimensioned column, PostgreSQL would fold a cast away and the clone would fail again,
    # so the column has none; the index expression refuses vectors of any other size.
    # Queries order by `embedding.ann_distance` so that the planner uses the index.
    class Meta:
        verbose_name = _("passage")
        verbose_name_plural = _("passages")
        ordering = ["document_id", "article_id", "ordinal"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(document__isnull=False, article__isnull=True)
                | models.Q(document__isnull=True, article__isnull=False),
                name="knowledge_chunk_one_source",
            ),
        ]
        indexes = [
            GinIndex(fields=["search_vector"], name="knowledge_chunk_fts_gin"),
            GinIndex(fields=["tags"], name="knowledge_chunk_tags_gin"),
            models.Index(fields=["document", "content_hash"], name="knowledge_chunk_doc_hash_idx"),
            models.Index(fields=["article", "content_hash"], name="knowledge_chunk_art_hash_idx"),
        ]

    def __str__(self) -> str:
        return self.text[:80]


class KnowledgeGap(models.Model):
    """A question the knowledge base could not answer, counted by its normalised form."""

    key = models.CharField(max_length=64, unique=True)
    question = models.TextField(_("question"))
    count = models.PositiveIntegerField(_("times asked"), default=1)
    best_confidence = models.FloatField(_("best confidence"), default=0.0)
    first_asked = models.DateTimeField(_("first asked"))
    last_asked = models.DateTimeField(_("last asked"), db_index=True)
    last_conversation = models.ForeignKey(
        Conversation, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolved = models.BooleanField(_("resolved"), default=False)
    # The question's e5 query vector (no dimensions, like Chunk.embedding); gaps are few, so
    # grouping compares them exactly, without an index.
    embedding = VectorField(null=True, blank=True)
    group = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="members",
        verbose_name=_("similar to"),
        help_text=_("The first question of its group of similar questions; empty for that first question."),
    )
    article = models.ForeignKey(
        Article, on_delete=models.SET_NULL, null=True, blank=True, related_name="gaps", verbose_name=_("article")
    )

    class Meta:
        verbose_name = _("knowledge gap")
        verbose_name_plural = _("knowledge gaps")
        ordering = ["-last_asked"]

    def __str__(self) -> str:
        return self.question[:80]


class CopilotSuggestion(models.Model):
    """A reply suggested to an agent, and what the agent did with it (for analytics)."""

    class Source(models.TextChoices):
        KNOWLEDGE = "knowledge", _("Knowledge base")
        PROVIDER = "provider", _("AI provider")

    class Outcome(models.TextChoices):
        SHOWN = "shown", _("Shown")
        ACCEPTED = "accepted", _("Sent as suggested")
        EDITED = "edited", _("Sent after editing")
        IGNORED = "ignored", _("Ignored")

    conversation = models.ForeignKey(
        "conversations.Conversation", on_delete=models.CASCADE, related_name="copilot_suggestions"
    )
    for_message = models.ForeignKey(
        "conversations.Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    text = models.TextField()
    source = models.CharField(max_length=10, choices=Source.choices)
    provider = models.CharField(max_length=20, blank=True)
    model = models.CharField(max_length=100, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    citations = models.JSONField(default=list, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.SHOWN)
    reply = models.ForeignKey(
        "conversations.Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("copilot suggestion")
        verbose_name_plural = _("copilot suggestions")
        indexes = [models.Index(fields=["outcome", "created"], name="knowledge_copilot_outcome_idx")]

    def __str__(self) -> str:
        return f"{self.get_source_display()}: {self.text[:50]}"
