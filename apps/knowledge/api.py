"""The knowledge base API: documents (upload, list, edit, delete), search and answers."""

from __future__ import annotations

import tempfile
from pathlib import Path, PurePath
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.api import api_user
from apps.accounts.models import User
from apps.conversations.selectors import conversation_get_for_user
from apps.core.exceptions import NotFoundError
from apps.core.json_input import JSONParser
from apps.knowledge.answers import knowledge_answer
from apps.knowledge.copilot import copilot_outcome_record, copilot_suggest
from apps.knowledge.exceptions import DocumentTooLarge
from apps.knowledge.models import Article, Category, CopilotSuggestion, Document
from apps.knowledge.selectors import article_get, article_list, chunk_search, document_get, document_list
from apps.knowledge.services import article_save, document_create, document_delete, document_update, documents_import

MAX_LIST = 200


def _permission(model: str) -> type[BasePermission]:
    actions = {"GET": "view", "HEAD": "view", "OPTIONS": "view", "POST": "add", "PATCH": "change", "PUT": "change"}

    class ModelPermission(BasePermission):
        def has_permission(self, request: Request, view: APIView) -> bool:
            action = actions.get(request.method or "", "delete")
            return bool(request.user and request.user.has_perm(f"knowledge.{action}_{model}"))

    return ModelPermission


class CanSearch(BasePermission):
    """Searching and answering serve agents too: any signed-in member of the tenant."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        return bool(request.user and request.user.is_authenticated)


class DocumentOutputSerializer(serializers.ModelSerializer[Document]):
    category = serializers.CharField(source="category.name", default=None, allow_null=True)

    class Meta:
        model = Document
        fields = [
            "id", "title", "original_name", "kind", "size", "category", "tags", "published", "language",
            "status", "progress", "error_code", "error_message", "chunks_embedded", "chunks_reused",
            "indexed_at", "created", "updated",
        ]  # fmt: skip
        read_only_fields = fields


def _category(category_id: int | None) -> Category | None:
    if category_id is None:
        return None
    category = Category.objects.filter(pk=category_id).first()
    if category is None:
        raise NotFoundError(_("There is no such category."), code="category_not_found")
    return category


def _document(document_id: int) -> Document:
    document = document_get(document_id=document_id)
    if document is None:
        raise NotFoundError(_("There is no such document."), code="document_not_found")
    return document


class DocumentListCreateApi(APIView):
    permission_classes = [_permission("document")]
    parser_classes = [MultiPartParser, FormParser]

    class DocumentUploadInputSerializer(serializers.Serializer[dict[str, Any]]):
        file = serializers.FileField()
        title = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
        category = serializers.IntegerField(required=False, allow_null=True, default=None)
        tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, default=list)
        published = serializers.BooleanField(required=False, default=True)

    @extend_schema(responses=DocumentOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        documents = document_list()[:MAX_LIST]
        return Response(DocumentOutputSerializer(documents, many=True).data)

    @extend_schema(request=DocumentUploadInputSerializer, responses={201: DocumentOutputSerializer})
    def post(self, request: Request) -> Response:
        payload = self.DocumentUploadInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        upload = data["file"]
        document = document_create(
            upload=upload,
            filename=upload.name or "upload",
            title=data["title"],
            category=_category(data["category"]),
            tags=data["tags"],
            published=data["published"],
            by=request.user if isinstance(request.user, User) else None,
        )
        return Response(DocumentOutputSerializer(document).data, status=status.HTTP_201_CREATED)


class DocumentDetailApi(APIView):
    permission_classes = [_permission("document")]
    parser_classes = [JSONParser]

    class DocumentUpdateInputSerializer(serializers.Serializer[dict[str, Any]]):
        title = serializers.CharField(required=False, max_length=200)
        category = serializers.IntegerField(required=False, allow_null=True)
        tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False)
        published = serializers.BooleanField(required=False)

    @extend_schema(responses=DocumentOutputSerializer)
    def get(self, request: Request, document_id: int) -> Response:
        return Response(DocumentOutputSerializer(_document(document_id)).data)

    @extend_schema(request=DocumentUpdateInputSerializer, responses=DocumentOutputSerializer)
    def patch(self, request: Request, document_id: int) -> Response:
        document = _document(document_id)
        payload = self.DocumentUpdateInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        document = document_update(
            document=document,
            title=data.get("title", document.title),
            category=_category(data["category"]) if "category" in data else document.category,
            tags=data.get("tags", document.tags),
            published=data.get("published", document.published),
        )
        return Response(DocumentOutputSerializer(document).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, document_id: int) -> Response:
        document_delete(document=_document(document_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ArticleOutputSerializer(serializers.ModelSerializer[Article]):
    category = serializers.IntegerField(source="category_id", allow_null=True)

    class Meta:
        model = Article
        fields = [
            "id", "title", "body", "category", "tags", "status", "version", "language", "index_status", "index_error",
            "view_count", "helpful_count", "not_helpful_count", "created", "updated",
        ]  # fmt: skip
        read_only_fields = fields


class ArticleInputSerializer(serializers.Serializer[dict[str, Any]]):
    title = serializers.CharField(max_length=200)
    body = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=Article.Status.choices, default=Article.Status.DRAFT)
    category = serializers.IntegerField(required=False, allow_null=True, default=None)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, default=list)


def _article(article_id: int) -> Article:
    article = article_get(article_id=article_id)
    if article is None:
        raise NotFoundError(_("There is no such article."), code="article_not_found")
    return article


class ArticleListCreateApi(APIView):
    permission_classes = [_permission("article")]
    parser_classes = [JSONParser]

    @extend_schema(responses=ArticleOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(ArticleOutputSerializer(article_list()[:MAX_LIST], many=True).data)

    @extend_schema(request=ArticleInputSerializer, responses={201: ArticleOutputSerializer})
    def post(self, request: Request) -> Response:
        payload = ArticleInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        article = article_save(
            title=data["title"],
            body=data["body"],
            status=data["status"],
            category=_category(data["category"]),
            tags=data["tags"],
            author=api_user(request),
        )
        return Response(ArticleOutputSerializer(article).data, status=status.HTTP_201_CREATED)


class ArticleDetailApi(APIView):
    permission_classes = [_permission("article")]
    parser_classes = [JSONParser]

    class ArticleUpdateInputSerializer(serializers.Serializer[dict[str, Any]]):
        title = serializers.CharField(required=False, max_length=200)
        body = serializers.CharField(required=False, allow_blank=True)
        status = serializers.ChoiceField(choices=Article.Status.choices, required=False)
        category = serializers.IntegerField(required=False, allow_null=True)
        tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False)

    @extend_schema(responses=ArticleOutputSerializer)
    def get(self, request: Request, article_id: int) -> Response:
        return Response(ArticleOutputSerializer(_article(article_id)).data)

    @extend_schema(request=ArticleUpdateInputSerializer, responses=ArticleOutputSerializer)
    def patch(self, request: Request, article_id: int) -> Response:
        article = _article(article_id)
        payload = self.ArticleUpdateInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        article = article_save(
            article=article,
            title=data.get("title", article.title),
            body=data.get("body", article.body),
            status=data.get("status", article.status),
            category=_category(data["category"]) if "category" in data else article.category,
            tags=data.get("tags", article.tags),
            author=api_user(request),
        )
        return Response(ArticleOutputSerializer(article).data)


class KnowledgeImportApi(APIView):
    """A zip (folders become categories) or a single file, imported like `kb_import`; indexing is queued."""

    permission_classes = [_permission("document")]
    parser_classes = [MultiPartParser]

    class ImportInputSerializer(serializers.Serializer[dict[str, Any]]):
        file = serializers.FileField()
        published = serializers.BooleanField(required=False, default=True)

    class RefusedSerializer(serializers.Serializer[Any]):
        name = serializers.CharField()
        code = serializers.CharField()
        message = serializers.CharField()

    class ImportOutputSerializer(serializers.Serializer[Any]):
        documents = DocumentOutputSerializer(many=True)
        refused = serializers.ListField(child=serializers.DictField())

    @extend_schema(request=ImportInputSerializer, responses={202: ImportOutputSerializer})
    def post(self, request: Request) -> Response:
        payload = self.ImportInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        upload = payload.validated_data["file"]
        if upload.size > settings.KNOWLEDGE_ZIP_MAX_UNCOMPRESSED_BYTES:
            raise DocumentTooLarge(_("The file is larger than the import limit."))
        suffix = PurePath(upload.name or "").suffix.lower()[:10]
        # import_items reads a path (zipfile needs to seek); the temporary file is removed on close.
        with tempfile.NamedTemporaryFile(suffix=suffix) as spooled:
            for piece in upload.chunks():
                spooled.write(piece)
            spooled.flush()
            outcome = documents_import(
                path=Path(spooled.name),
                name=upload.name or "",
                published=payload.validated_data["published"],
                by=api_user(request),
            )
        body = {
            "documents": DocumentOutputSerializer(outcome.documents, many=True).data,
            "refused": [{"name": name, "code": code, "message": message} for name, code, message in outcome.refused],
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)


class CitationSerializer(serializers.Serializer[Any]):
    chunk_id = serializers.IntegerField()
    source_type = serializers.CharField(source="source")
    source_id = serializers.IntegerField()
    title = serializers.CharField()
    page = serializers.IntegerField(allow_null=True)
    heading_path = serializers.CharField()


class KnowledgeSearchApi(APIView):
    permission_classes = [CanSearch]

    class SearchQuerySerializer(serializers.Serializer[dict[str, Any]]):
        q = serializers.CharField(max_length=1000)
        k = serializers.IntegerField(min_value=1, max_value=50, default=5)
        category = serializers.IntegerField(required=False, allow_null=True, default=None)
        tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, default=list)

    class SearchHitOutputSerializer(serializers.Serializer[Any]):
        chunk_id = serializers.IntegerField()
        text = serializers.CharField()
        score = serializers.FloatField()
        similarity = serializers.FloatField()
        source_type = serializers.CharField()
        source_id = serializers.IntegerField()
        title = serializers.CharField()
        page = serializers.IntegerField(allow_null=True)
        heading_path = serializers.CharField()

    @extend_schema(parameters=[SearchQuerySerializer], responses=SearchHitOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        params = {**request.query_params.dict(), "tags": request.query_params.getlist("tags")}
        query = self.SearchQuerySerializer(data=params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        hits = chunk_search(query=data["q"], k=data["k"], category_id=data["category"], tags=data["tags"])
        rows = []
        for hit in hits:
            chunk = hit.chunk
            source = chunk.document if chunk.document is not None else chunk.article
            rows.append(
                {
                    "chunk_id": chunk.pk,
                    "text": chunk.text,
                    "score": hit.score,
                    "similarity": hit.similarity,
                    "source_type": "document" if chunk.document is not None else "article",
                    "source_id": source.pk if source is not None else 0,
                    "title": source.title if source is not None else "",
                    "page": chunk.page,
                    "heading_path": chunk.heading_path,
                }
            )
        return Response(self.SearchHitOutputSerializer(rows, many=True).data)


class KnowledgeAnswerApi(APIView):
    permission_classes = [CanSearch]

    class AnswerInputSerializer(serializers.Serializer[dict[str, Any]]):
        question = serializers.CharField(max_length=1000)

    class AnswerOutputSerializer(serializers.Serializer[Any]):
        text = serializers.CharField()
        confidence = serializers.FloatField()
        handoff = serializers.BooleanField()
        citations = CitationSerializer(many=True)
        provider = serializers.CharField()

    @extend_schema(request=AnswerInputSerializer, responses=AnswerOutputSerializer)
    def post(self, request: Request) -> Response:
        payload = self.AnswerInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        answer = knowledge_answer(question=payload.validated_data["question"])
        return Response(self.AnswerOutputSerializer(answer).data)


class CopilotSuggestionSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    text = serializers.CharField()
    origin = serializers.CharField(source="source")  # "knowledge" or "provider"
    provider = serializers.CharField()
    confidence = serializers.FloatField(allow_null=True)
    citations = serializers.JSONField()
    outcome = serializers.CharField()


class CopilotSuggestApi(APIView):
    """Suggested replies for the agent, from the knowledge base and (when configured) a provider."""

    @extend_schema(request=None, responses=CopilotSuggestionSerializer(many=True))
    def post(self, request: Request, conversation_id: int) -> Response:
        user = api_user(request)
        conversation = conversation_get_for_user(user=user, conversation_id=conversation_id)
        suggestions = copilot_suggest(conversation=conversation, by=user)
        return Response(CopilotSuggestionSerializer(suggestions, many=True).data, status=201)


class CopilotOutcomeApi(APIView):
    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        class Meta:
            ref_name = "CopilotOutcomeInput"  # unique OpenAPI component name

        outcome = serializers.ChoiceField(choices=["accepted", "edited", "ignored"])
        reply = serializers.IntegerField(required=False)

    @extend_schema(request=InputSerializer, responses=CopilotSuggestionSerializer)
    def post(self, request: Request, suggestion_id: int) -> Response:
        user = api_user(request)
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        suggestion = CopilotSuggestion.objects.filter(pk=suggestion_id).first()
        if suggestion is None:
            raise NotFound()
        conversation = conversation_get_for_user(user=user, conversation_id=suggestion.conversation_id)
        reply = None
        if "reply" in payload.validated_data:
            reply = conversation.messages.filter(pk=payload.validated_data["reply"]).first()
        suggestion = copilot_outcome_record(
            suggestion=suggestion, outcome=payload.validated_data["outcome"], by=user, reply=reply
        )
        return Response(CopilotSuggestionSerializer(suggestion).data)
