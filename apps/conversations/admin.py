from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from apps.core.admin_sites import tenant_admin_site

from .models import CannedResponse, Conversation, Message

MESSAGE_COLUMNS = ["sent_at", "direction", "author_kind", "type", "text", "delivery", "language", "intent", "sentiment"]


class MessageInline(admin.TabularInline[Message, Conversation]):
    model = Message
    extra = 0
    fields = tuple(MESSAGE_COLUMNS)
    readonly_fields = MESSAGE_COLUMNS
    can_delete = False
    ordering = ["sent_at", "id"]

    @admin.display(description="delivery")
    def delivery(self, obj: Message) -> str:
        return obj.outbox.delivery_status or obj.outbox.status if obj.outbox else ""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        return super().get_queryset(request).select_related("outbox")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ConversationAdmin(admin.ModelAdmin[Conversation]):
    list_display = [
        "contact",
        "status",
        "priority",
        "assigned_agent",
        "team",
        "last_message_at",
        "last_message_preview",
    ]
    list_filter = ["status", "priority", "team"]
    list_select_related = ["contact", "assigned_agent", "team"]
    search_fields = ["contact__wa_id", "contact__profile_name", "last_message_preview"]
    readonly_fields = ["contact", "account", "window_expires_at", "last_message_at", "last_message_preview", "created"]
    exclude = ["window"]  # shown as its end; set by the inbound path only
    inlines = [MessageInline]

    @admin.display(description=_("24-hour window ends"))
    def window_expires_at(self, conversation: Conversation) -> datetime | None:
        """The end of the window on the conversation's number (each number has its own)."""
        return conversation.window.expires_at


class MessageAdmin(admin.ModelAdmin[Message]):
    list_display = ["sent_at", "conversation", "direction", "author_kind", "type", "text"]
    list_filter = ["direction", "type", "author_kind"]
    list_select_related = ["conversation__contact"]
    search_fields = ["text", "wamid"]
    date_hierarchy = "sent_at"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [field.name for field in Message._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


tenant_admin_site.register(Conversation, ConversationAdmin)
tenant_admin_site.register(Message, MessageAdmin)


class CannedResponseAdmin(admin.ModelAdmin[CannedResponse]):
    list_display = ["shortcut", "title", "is_active", "updated"]
    list_filter = ["is_active"]
    search_fields = ["shortcut", "title", "text"]


tenant_admin_site.register(CannedResponse, CannedResponseAdmin)
