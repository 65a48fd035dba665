"""The knowledge base in each business's back office (the Knowledge Editor role works here)."""

from __future__ import annotations

import difflib
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count, F, IntegerField, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from apps.accounts.models import User
from apps.core.admin_sites import tenant_admin_site
from apps.core.exceptions import ApplicationError
from apps.knowledge.gaps import knowledge_gap_article_create, knowledge_gaps_resolve
from apps.knowledge.models import Article, ArticleVersion, Category, Document, KnowledgeGap
from apps.knowledge.services import (
    article_delete,
    article_reindex,
    article_restore,
    article_save,
    document_create,
    document_delete,
    document_reindex,
    document_replace,
    document_update,
)


def _user(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


class CategoryAdmin(admin.ModelAdmin[Category]):
    search_fields = ["name"]


class DocumentForm(forms.ModelForm[Document]):
    upload = forms.FileField(label=gettext_lazy("File"), required=False)

    class Meta:
        model = Document
        fields = ["title", "category", "tags", "published"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["title"].required = False
        if self.instance.pk is None:
            self.fields["upload"].required = True

    def clean_upload(self) -> Any:
        upload = self.cleaned_data.get("upload")
        limit = settings.KNOWLEDGE_MAX_UPLOAD_BYTES
        if upload is not None and upload.size is not None and upload.size > limit:
            raise forms.ValidationError(_("The file is larger than %(mb)s MB.") % {"mb": limit // (1024 * 1024)})
        return upload


class DocumentAdmin(admin.ModelAdmin[Document]):
    form = DocumentForm
    list_display = ["title", "kind", "status", "progress", "published", "category", "created"]
    list_filter = ["status", "kind", "published", "category"]
    search_fields = ["title", "original_name"]
    readonly_fields = [
        "original_name", "kind", "size", "language", "status", "progress", "error_message",
        "chunks_embedded", "chunks_reused", "indexed_at", "created",
    ]  # fmt: skip
    actions = ["reindex"]

    def get_fields(self, request: HttpRequest, obj: Document | None = None) -> list[Any]:
        editable = ["title", "upload", "category", "tags", "published"]
        return editable if obj is None else [*editable, *self.readonly_fields]

    def save_model(self, request: HttpRequest, obj: Document, form: Any, change: bool) -> None:
        data = form.cleaned_data
        upload = data.get("upload")
        if not change:
            created = document_create(
                upload=upload,
                filename=upload.name,
                title=data.get("title") or "",
                category=data.get("category"),
                tags=data.get("tags") or [],
                published=data.get("published", True),
                by=_user(request),
            )
            obj.pk, obj._state.adding = created.pk, False
            return
        document = Document.objects.get(pk=obj.pk)
        if upload is not None:
            document = document_replace(document=document, upload=upload, filename=upload.name)
        document_update(
            document=document,
            title=data.get("title") or document.title,
            category=data.get("category"),
            tags=data.get("tags") or [],
            published=data.get("published", document.published),
        )

    def delete_model(self, request: HttpRequest, obj: Document) -> None:
        document_delete(document=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        for document in queryset:
            document_delete(document=document)

    @admin.action(description=gettext_lazy("Re-index the selected documents"))
    def reindex(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        for document in queryset:
            document_reindex(document=document)
        self.message_user(request, _("Re-indexing queued."), messages.SUCCESS)


class ArticleVersionInline(admin.TabularInline[ArticleVersion, Article]):
    model = ArticleVersion
    extra = 0
    fields = ("number", "title", "status", "author", "created", "links")
    readonly_fields = fields
    can_delete = False
    ordering = ["-number"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=gettext_lazy("compare / restore"))
    def links(self, version: ArticleVersion) -> SafeString:
        diff = reverse("admin:knowledge_article_diff", args=[version.article_id, version.number])
        return format_html('<a href="{}">{}</a>', diff, _("diff against current"))


class ArticleForm(forms.ModelForm[Article]):
    class Meta:
        model = Article
        fields = ["title", "body", "status", "category", "tags"]


class ArticleAdmin(admin.ModelAdmin[Article]):
    form = ArticleForm
    list_display = ["title", "status", "version", "index_status", "view_count", "helpful_count", "updated"]
    list_filter = ["status", "category"]
    search_fields = ["title", "body"]
    readonly_fields = [
        "version", "author", "index_status", "index_error", "view_count", "helpful_count", "not_helpful_count",
    ]  # fmt: skip
    inlines = [ArticleVersionInline]
    actions = ["reindex"]

    @admin.action(description=gettext_lazy("Re-index the selected articles"))
    def reindex(self, request: HttpRequest, queryset: QuerySet[Article]) -> None:
        for article in queryset:
            article_reindex(article=article)
        self.message_user(request, _("Re-indexing queued."), messages.SUCCESS)

    def save_model(self, request: HttpRequest, obj: Article, form: Any, change: bool) -> None:
        data = form.cleaned_data
        saved = article_save(
            article=Article.objects.get(pk=obj.pk) if change else None,
            title=data["title"],
            body=data["body"],
            status=data["status"],
            category=data.get("category"),
            tags=data.get("tags") or [],
            author=_user(request),
        )
        obj.pk, obj._state.adding, obj.version = saved.pk, False, saved.version

    def delete_model(self, request: HttpRequest, obj: Article) -> None:
        article_delete(article=obj)

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<int:article_id>/versions/<int:number>/diff/",
                self.admin_site.admin_view(self.diff_view),
                name="knowledge_article_diff",
            ),
            path(
                "<int:article_id>/versions/<int:number>/restore/",
                self.admin_site.admin_view(require_POST(self.restore_view)),
                name="knowledge_article_restore",
            ),
        ]
        return own + super().get_urls()

    def diff_view(self, request: HttpRequest, article_id: int, number: int) -> HttpResponse:
        article = get_object_or_404(Article, pk=article_id)
        if not self.has_view_permission(request, article):
            return HttpResponseRedirect(reverse("admin:index"))
        version = get_object_or_404(ArticleVersion, article=article, number=number)
        table = difflib.HtmlDiff(wrapcolumn=80).make_table(
            f"{version.title}\n\n{version.body}".splitlines(),
            f"{article.title}\n\n{article.body}".splitlines(),
            _("Version %(n)s") % {"n": number},
            _("Current (version %(n)s)") % {"n": article.version},
        )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Changes since version %(n)s") % {"n": number},
            "article": article,
            "version": version,
            "opts": self.model._meta,
            # difflib escapes the text it puts into its table.
            "diff_table": mark_safe(table),  # noqa: S308
            "can_restore": self.has_change_permission(request, article) and number != article.version,
        }
        return TemplateResponse(request, "admin/knowledge/article_diff.html", context)

    def restore_view(self, request: HttpRequest, article_id: int, number: int) -> HttpResponse:
        article = get_object_or_404(Article, pk=article_id)
        if not self.has_change_permission(request, article):
            return HttpResponseRedirect(reverse("admin:index"))
        try:
            restored = article_restore(article=article, number=number, by=_user(request))
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            self.message_user(
                request, _("Version %(n)s restored as version %(v)s.") % {"n": number, "v": restored.version}
            )
        return HttpResponseRedirect(reverse("admin:knowledge_article_change", args=[article_id]))


class GapGroupingFilter(admin.SimpleListFilter):
    title = gettext_lazy("grouping")
    parameter_name = "grouping"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("groups", _("Groups of similar questions")), ("all", _("Every question"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[KnowledgeGap]) -> QuerySet[KnowledgeGap]:
        if self.value() == "groups":
            return queryset.filter(group__isnull=True)
        return queryset


class SimilarGapInline(admin.TabularInline[KnowledgeGap, KnowledgeGap]):
    model = KnowledgeGap
    fk_name = "group"
    verbose_name = gettext_lazy("similar question")
    verbose_name_plural = gettext_lazy("similar questions")
    fields = ("question", "count", "last_asked", "resolved")
    readonly_fields = ("question", "count", "last_asked", "resolved")
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class KnowledgeGapAdmin(admin.ModelAdmin[KnowledgeGap]):
    list_display = [
        "question",
        "count",
        "similar",
        "group_total",
        "best_confidence",
        "last_asked",
        "article",
        "resolved",
    ]
    list_filter = [GapGroupingFilter, "resolved"]
    search_fields = ["question"]
    ordering = ["resolved", "-count", "-last_asked"]
    readonly_fields = [
        "question", "count", "best_confidence", "first_asked", "last_asked", "last_conversation", "group", "article",
    ]  # fmt: skip
    fields = (
        "question", "count", "best_confidence", "first_asked", "last_asked", "last_conversation", "group", "article",
        "resolved",
    )  # fmt: skip
    inlines = [SimilarGapInline]
    actions = ["create_article", "mark_resolved"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[KnowledgeGap]:
        open_members = Q(members__resolved=False)
        return (
            super()
            .get_queryset(request)
            .select_related("article")
            .annotate(
                similar_count=Count("members", filter=open_members),
                group_asked=F("count")
                + Coalesce(Sum("members__count", filter=open_members), Value(0), output_field=IntegerField()),
            )
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description=gettext_lazy("similar questions"), ordering="similar_count")
    def similar(self, obj: KnowledgeGap) -> int:
        return int(getattr(obj, "similar_count", 0))

    @admin.display(description=gettext_lazy("asked (group)"), ordering="group_asked")
    def group_total(self, obj: KnowledgeGap) -> int:
        return int(getattr(obj, "group_asked", obj.count))

    @admin.action(description=gettext_lazy("Create a draft article from the question"), permissions=["add_article"])
    def create_article(self, request: HttpRequest, queryset: QuerySet[KnowledgeGap]) -> HttpResponse | None:
        articles = [knowledge_gap_article_create(gap=gap, by=_user(request)) for gap in queryset]
        if len(articles) == 1:
            return HttpResponseRedirect(reverse("admin:knowledge_article_change", args=[articles[0].pk]))
        self.message_user(request, _("%(n)s draft articles created.") % {"n": len(articles)})
        return None

    def has_add_article_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("knowledge.add_article"))

    @admin.action(description=gettext_lazy("Mark as answered in the knowledge base"), permissions=["change"])
    def mark_resolved(self, request: HttpRequest, queryset: QuerySet[KnowledgeGap]) -> None:
        count = knowledge_gaps_resolve(gaps=queryset)
        self.message_user(request, _("%(n)s questions marked as answered.") % {"n": count})


tenant_admin_site.register(Category, CategoryAdmin)
tenant_admin_site.register(Document, DocumentAdmin)
tenant_admin_site.register(Article, ArticleAdmin)
tenant_admin_site.register(KnowledgeGap, KnowledgeGapAdmin)
