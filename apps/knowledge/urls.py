from django.urls import path

from apps.knowledge.api import DocumentDetailApi, DocumentListCreateApi, KnowledgeAnswerApi, KnowledgeSearchApi

urlpatterns = [
    path("documents/", DocumentListCreateApi.as_view(), name="knowledge-documents"),
    path("documents/<int:document_id>/", DocumentDetailApi.as_view(), name="knowledge-document"),
    path("search/", KnowledgeSearchApi.as_view(), name="knowledge-search"),
    path("answer/", KnowledgeAnswerApi.as_view(), name="knowledge-answer"),
]
