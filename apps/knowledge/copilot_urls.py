from django.urls import path

from apps.knowledge.api import CopilotOutcomeApi, CopilotSuggestApi

urlpatterns = [
    path("conversations/<int:conversation_id>/suggestions/", CopilotSuggestApi.as_view(), name="copilot-suggest"),
    path("copilot/suggestions/<int:suggestion_id>/outcome/", CopilotOutcomeApi.as_view(), name="copilot-outcome"),
]
