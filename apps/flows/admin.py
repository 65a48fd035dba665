from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from apps.core.admin_sites import tenant_admin_site
from apps.flows.models import Flow, FlowRun, FlowRunStep, FlowVersion


class FlowVersionInline(admin.TabularInline[FlowVersion, Flow]):
    model = FlowVersion
    extra = 0
    fields = ("number", "published_by", "created")
    readonly_fields = fields
    can_delete = False


class FlowAdmin(admin.ModelAdmin[Flow]):
    list_display = ("name", "is_active", "priority", "updated", "builder_link")
    list_filter = ("is_active",)
    readonly_fields = ("builder_link",)
    inlines = [FlowVersionInline]

    @admin.display(description=_("Visual builder"))
    def builder_link(self, flow: Flow) -> str:
        if flow.pk is None:
            return str(_("Save the flow first, then open it in the builder."))
        return format_html(
            '<a class="button" href="{}">{}</a>', reverse("flow-builder", args=[flow.pk]), _("Open builder")
        )


class FlowRunStepInline(admin.TabularInline[FlowRunStep, FlowRun]):
    model = FlowRunStep
    extra = 0
    fields = ("node_id", "node_type", "branch", "message_id", "started", "duration_ms", "error")
    readonly_fields = fields
    can_delete = False


class FlowRunAdmin(admin.ModelAdmin[FlowRun]):
    list_display = ("id", "version", "conversation", "status", "current_node", "wait_until", "updated")
    list_filter = ("status",)
    readonly_fields = (
        "version",
        "contact",
        "conversation",
        "status",
        "current_node",
        "variables",
        "retries",
        "steps_total",
        "wait_until",
        "last_message_id",
        "resume_token",
        "error",
    )
    inlines = [FlowRunStepInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # runs are started by messages, never by hand


class FlowRunStepAdmin(admin.ModelAdmin[FlowRunStep]):
    list_display = ("run", "node_id", "node_type", "branch", "duration_ms", "error", "started")
    list_filter = ("node_type",)
    readonly_fields = ("run", "node_id", "node_type", "branch", "message_id", "started", "duration_ms", "error")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


tenant_admin_site.register(Flow, FlowAdmin)
tenant_admin_site.register(FlowRun, FlowRunAdmin)
tenant_admin_site.register(FlowRunStep, FlowRunStepAdmin)
