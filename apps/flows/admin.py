from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from apps.core.admin_sites import tenant_admin_site
from apps.flows.drafts import FlowImportInvalid, flow_import, flow_import_upload
from apps.flows.models import Flow, FlowRun, FlowRunStep, FlowVersion


class FlowVersionInline(admin.TabularInline[FlowVersion, Flow]):
    model = FlowVersion
    extra = 0
    fields = ("number", "published_by", "created")
    readonly_fields = fields
    can_delete = False


class FlowAdmin(admin.ModelAdmin[Flow]):
    list_display = ("name", "is_active", "priority", "key", "updated", "builder_link")
    list_filter = ("is_active",)
    readonly_fields = ("key", "builder_link")  # built-in flows are found again by their key
    inlines = [FlowVersionInline]

    @admin.display(description=_("Visual builder"))
    def builder_link(self, flow: Flow) -> str:
        if flow.pk is None:
            return str(_("Save the flow first, then open it in the builder."))
        return format_html(
            '<a class="button" href="{}">{}</a>', reverse("flow-builder", args=[flow.pk]), _("Open builder")
        )

    def response_add(self, request: HttpRequest, obj: Flow, post_url_continue: str | None = None) -> HttpResponse:
        # A new flow is built on the canvas: go there unless the admin asked for another form.
        if "_addanother" in request.POST or "_continue" in request.POST:
            return super().response_add(request, obj, post_url_continue)
        return HttpResponseRedirect(reverse("flow-builder", args=[obj.pk]))

    def get_urls(self) -> list[URLPattern]:
        own = [path("import/", self.admin_site.admin_view(self.import_view), name="flows_flow_import")]
        return own + super().get_urls()

    def import_view(self, request: HttpRequest) -> HttpResponse:
        """Create a flow from a .json file exported by the builder, then open it in the builder."""
        if not self.has_add_permission(request):
            return HttpResponseRedirect(reverse("admin:index"))
        error = ""
        if request.method == "POST":
            try:
                raw = flow_import_upload(request.FILES.get("file"))
                flow = flow_import(raw=raw, name=str(request.POST.get("name", "")).strip()[:120])
            except FlowImportInvalid as exc:
                error = exc.message
            else:
                messages.success(request, gettext("Imported “%(name)s” as a draft.") % {"name": flow.name})
                return HttpResponseRedirect(reverse("flow-builder", args=[flow.pk]))
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": _("Import a flow"),
            "opts": self.model._meta,
            "error": error,
        }
        return TemplateResponse(request, "admin/flows/flow/import.html", context, status=400 if error else 200)


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
        "revision",
        "claim",
        "claim_expires",
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
