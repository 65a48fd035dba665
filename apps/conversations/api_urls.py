from django.urls import path

from apps.conversations.api import (
    CannedResponseListApi,
    ConversationAssignApi,
    ConversationDetailApi,
    ConversationEscalateApi,
    ConversationListApi,
    ConversationMessageCreateApi,
    ConversationResolveApi,
    ConversationReturnToBotApi,
    ConversationTakeoverApi,
    ConversationTemplateListApi,
    CustomerHistoryApi,
)

urlpatterns = [
    path("conversations/", ConversationListApi.as_view(), name="conversation-list"),
    path("conversations/<int:conversation_id>/", ConversationDetailApi.as_view(), name="conversation-detail"),
    path(
        "conversations/<int:conversation_id>/escalate/",
        ConversationEscalateApi.as_view(),
        name="conversation-escalate",
    ),
    path("conversations/<int:conversation_id>/resolve/", ConversationResolveApi.as_view(), name="conversation-resolve"),
    path(
        "conversations/<int:conversation_id>/messages/",
        ConversationMessageCreateApi.as_view(),
        name="conversation-message-create",
    ),
    path(
        "conversations/<int:conversation_id>/takeover/", ConversationTakeoverApi.as_view(), name="conversation-takeover"
    ),
    path(
        "conversations/<int:conversation_id>/return-to-bot/",
        ConversationReturnToBotApi.as_view(),
        name="conversation-return-to-bot",
    ),
    path(
        "conversations/<int:conversation_id>/templates/",
        ConversationTemplateListApi.as_view(),
        name="conversation-template-list",
    ),
    path("conversations/<int:conversation_id>/assign/", ConversationAssignApi.as_view(), name="conversation-assign"),
    path("canned-responses/", CannedResponseListApi.as_view(), name="canned-response-list"),
    path("customers/<int:contact_id>/history/", CustomerHistoryApi.as_view(), name="customer-history"),
]
