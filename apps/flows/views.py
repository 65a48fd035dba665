"""The visual flow builder page; everything it changes goes through the flows API."""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.views import View

from apps.accounts.models import User
from apps.core.admin_sites import tenant_admin_site
from apps.core.exceptions import NotFoundError
from apps.flows.palette import palette_json
from apps.flows.selectors import flow_get

_TEXT = {  # the builder script's words, translated here
    "saved": _("Draft saved."),
    "unsaved": _("Unsaved changes"),
    "published": _("Published as version"),
    "notPublished": _("Not published yet"),
    "live": _("Live version"),
    "problemsTitle": _("To fix before publishing"),
    "noProblems": _("Ready to publish."),
    "oneTrigger": _("A flow has one Start step, and this one already has it."),
    "deleteStep": _("Delete this step"),
    "addOption": _("Add a button"),
    "addRule": _("Add a rule"),
    "addReply": _("Add an answer"),
    "remove": _("Remove"),
    "words": _("Words (comma-separated)"),
    "answer": _("Answer"),
    "variableName": _("Variable name"),
    "value": _("Value"),
    "confirmLeave": _("You have unsaved changes."),
    "confirmRevert": _("Replace the draft on the canvas with this version?"),
    "confirmImport": _("Replace the draft on the canvas with the imported file?"),
    "noVersions": _("none yet"),
    "version": _("Version"),
    "you": _("Customer"),
    "bot": _("Flow"),
    "effect": _("Not done in a test"),
    "waits": _("waits for the customer"),
    "imported": _("Imported. Check the steps, then save or publish."),
    "readOnly": _("You can look at this flow but not change it."),
    "failed": _("Could not reach the server. Your changes are still on the canvas; try again."),
}


class FlowBuilderPageView(View):
    """Back-office staff with `flows.view_flow` open it; editing needs `flows.change_flow`."""

    def get(self, request: HttpRequest, flow_id: int) -> HttpResponse:
        user = request.user
        if not isinstance(user, User) or not user.is_active:
            return redirect_to_login(request.get_full_path(), login_url=reverse("admin:login"))
        if not (user.is_staff and user.has_perm("flows.view_flow")):
            return render(request, "flows/builder_denied.html", status=403)
        try:
            flow = flow_get(flow_id=flow_id)
        except NotFoundError as exc:
            raise Http404(exc.message) from exc
        config = {
            "flow": flow.pk,
            "api": reverse("flow-detail", args=[flow.pk]),
            "importNew": reverse("flow-import"),
            "canEdit": user.has_perm("flows.change_flow"),
            "palette": palette_json(),
            "text": {key: str(value) for key, value in _TEXT.items()},
        }
        context = {
            **tenant_admin_site.each_context(request),
            "title": flow.name,
            "flow": flow,
            "config": config,
        }
        return render(request, "flows/builder.html", context)
