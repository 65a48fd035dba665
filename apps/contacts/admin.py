from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.contacts.models import ConsentRecord, Contact, ServiceWindow
from apps.core.admin_sites import tenant_admin_site


class ConsentRecordInline(admin.TabularInline[ConsentRecord, Contact]):
    model = ConsentRecord
    extra = 0
    fields = ["created", "action", "source", "evidence"]
    readonly_fields = ["created", "action", "source", "evidence"]
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ServiceWindowInline(admin.TabularInline[ServiceWindow, Contact]):
    """The contact's 24-hour window on each number they wrote to (WhatsApp keeps one per number)."""

    model = ServiceWindow
    extra = 0
    fields = ["account", "expires_at"]
    readonly_fields = ["account", "expires_at"]
    can_delete = False
    ordering = ["-expires_at"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ContactAdmin(admin.ModelAdmin[Contact]):
    list_display = ["__str__", "wa_id", "consent", "language", "last_seen_at"]
    list_filter = ["consent", "language"]
    search_fields = ["wa_id", "profile_name"]
    readonly_fields = ["wa_id", "consent", "first_seen_at", "last_seen_at", "created"]
    inlines = [ServiceWindowInline, ConsentRecordInline]


tenant_admin_site.register(Contact, ContactAdmin)
