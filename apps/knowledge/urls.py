from django.urls import path

from apps.knowledge.api import (
    ArticleDetailApi,
    ArticleListCreateApi,
    DocumentDetailApi,
    DocumentListCreateApi,
    KnowledgeAnswerApi,
    KnowledgeImportApi,
    KnowledgeSearchApi,
)

urlpatterns = [
    path("documents/", DocumentListCreateApi.as_view(), name="knowledge-documents"),
    path("documents/<int:document_id>/", DocumentDetailApi.as_view(), name="knowledge-document"),
    path("articles/", ArticleListCreateApi.as_view(), name="knowledge-articles"),
    path("articles/<int:article_id>/", ArticleDetailApi.as_view(), name="knowledge-article"),
    path("import/", KnowledgeImportApi.as_view(), name="knowledge-import"),
    path("search/", KnowledgeSearchApi.as_view(), name="knowledge-search"),
    path("answer/", KnowledgeAnswerApi.as_view(), name="knowledge-answer"),
]
