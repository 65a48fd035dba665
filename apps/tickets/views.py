"""The live ticket queue page (`/tickets/`): server-rendered rows, refreshed on `/ws/tickets/` events."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _
from django.views import View

from apps.accounts.models import Team, User
from apps.tickets.models import Priority
from apps.tickets.queue import ticket_queue_rows, ticket_queue_total
from apps.tickets.selectors import ticket_viewer_for, ticket_viewer_may_use_queue


class QueueFilterForm(forms.Form):
    scope = forms.ChoiceField(
        label=_("Which tickets"),
        choices=[("", _("All I can see")), ("mine", _("Assigned to me"))],
        required=False,
    )
    team = forms.ModelChoiceField(
        label=_("Team"), queryset=Team.objects.order_by("name"), required=False, empty_label=_("Any team")
    )
    priority = forms.ChoiceField(
        label=_("Priority"), choices=[("", _("Any priority")), *Priority.choices], required=False
    )


def _queue_context(request: HttpRequest, user: User) -> tuple[dict[str, Any], bool]:
    form = QueueFilterForm(request.GET or None)
    valid = form.is_valid() if request.GET else True
    values = form.cleaned_data if request.GET and valid else {}
    team = values.get("team")
    filters: dict[str, Any] = {
        "mine": values.get("scope") == "mine",
        "team_id": team.pk if team is not None else None,
        "priority": values.get("priority") or None,
    }
    rows = ticket_queue_rows(user=user, **filters)
    # The queue shows the QUEUE_LIMIT most urgent; the page says so when there are more.
    total = ticket_queue_total(user=user, shown=len(rows), **filters)
    return {"form": form, "rows": rows, "total": total}, valid


class _QueueView(LoginRequiredMixin, View):
    def _viewer_user(self, request: HttpRequest) -> User | HttpResponse:
        user = request.user
        if not isinstance(user, User):  # LoginRequiredMixin lets only signed-in people through
            return redirect_to_login(request.get_full_path())
        if not ticket_viewer_may_use_queue(ticket_viewer_for(user=user)):
            return render(request, "tickets/queue_denied.html", status=403)
        return user


class TicketQueuePageView(_QueueView):
    """Open tickets by escalation risk, with their reasons and a ticking countdown to the next SLA target."""

    def get(self, request: HttpRequest) -> HttpResponse:
        user = self._viewer_user(request)
        if isinstance(user, HttpResponse):
            return user
        context, valid = _queue_context(request, user)
        context["user_name"] = user.get_full_name() or user.email
        return render(request, "tickets/queue.html", context, status=200 if valid else 400)


class TicketQueueRowsView(_QueueView):
    """The queue's rows alone, for the page to swap in when a live event arrives."""

    def get(self, request: HttpRequest) -> HttpResponse:
        user = self._viewer_user(request)
        if isinstance(user, HttpResponse):
            return user
        context, valid = _queue_context(request, user)
        response = render(request, "tickets/queue_rows.html", context, status=200 if valid else 400)
        response["Cache-Control"] = "no-store"
        return response
