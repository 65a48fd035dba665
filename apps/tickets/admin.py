"""The tenant's back office for tickets, SLA policies, calendars, escalation rules and CSAT.

Ticket writes go through the services, so the admin keeps the history and the SLA clocks.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import User
from apps.core.admin_sites import tenant_admin_site
from apps.core.exceptions import ApplicationError

from .models import (
    BusinessCalendar,
    BusinessHoursPeriod,
    CsatSurvey,
    EscalationRule,
    EscalationRuleFiring,
    Holiday,
    SLAEvent,
    SLAPolicy,
    Ticket,
    TicketEvent,
    time_zone_names,
)
from .services.tickets import ticket_conversation_link, ticket_create, ticket_merge, ticket_update

SLA_READONLY = [
    "sla_policy",
    "first_response_due_at",
    "first_responded_at",
    "next_response_due_at",
    "resolution_due_at",
    "sla_paused_at",
    "sla_breached",
    "risk_score",
    "risk_factors",
    "merged_into",
    "source",
    "created_by",
    "created",
    "updated",
]


class TicketEventInline(admin.TabularInline[TicketEvent, Ticket]):
    model = TicketEvent
    extra = 0
    fields = ["created", "kind", "actor", "changes", "note"]
    readonly_fields = ["created", "kind", "actor", "changes", "note"]
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class _Refused(Exception):
    """The service refused the save: the change form is shown again with its message."""

    def __init__(self, error: ApplicationError) -> None:
        super().__init__(error.message)
        self.error = error


# The refusal of a request's first pass, for its second: the admin builds its forms per request.
_refusals: WeakKeyDictionary[HttpRequest, str] = WeakKeyDictionary()


class TicketAdminForm(forms.ModelForm[Ticket]):
    refusal = ""

    def clean(self) -> dict[str, Any] | None:
        data = super().clean()
        if self.refusal:
            raise forms.ValidationError(self.refusal, code="refused")
        return data


class TicketAdmin(admin.ModelAdmin[Ticket]):
    form = TicketAdminForm
    list_display = ["id", "title", "status", "priority", "risk_score", "assignee", "team", "sla_breached", "created"]
    list_filter = ["status", "priority", "team", "assignee", "sla_breached", "source"]
    list_select_related = ["assignee", "team"]
    search_fields = ["title", "description", "tags"]
    ordering = ["-risk_score", "-created"]
    fields = ["title", "description", "status", "priority", "assignee", "team", "tags", "conversations", *SLA_READONLY]
    readonly_fields = SLA_READONLY
    raw_id_fields = ["conversations"]
    inlines = [TicketEventInline]
    actions = ["merge_into_oldest"]

    def get_form(
        self, request: HttpRequest, obj: Ticket | None = None, change: bool = False, **kwargs: Any
    ) -> type[ModelForm[Ticket]]:
        form = super().get_form(request, obj, change, **kwargs)
        refusal = _refusals.get(request, "")
        if not refusal:
            return form
        return type(form.__name__, (form,), {"refusal": refusal})

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # The services validate what the form cannot (the role, the allowed status moves). When
        # they refuse, the first pass's transaction is rolled back and the same POST is shown
        # again with the refusal as the form's error, instead of a half-saved ticket or a 500.
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except _Refused as refused:
            _refusals[request] = refused.error.message
            try:
                return super().changeform_view(request, object_id, form_url, extra_context)
            finally:
                _refusals.pop(request, None)

    def save_model(self, request: HttpRequest, obj: Ticket, form: ModelForm[Ticket], change: bool) -> None:
        user = request.user if isinstance(request.user, User) else None
        data = form.cleaned_data
        try:
            if not change:
                created = ticket_create(
                    title=data["title"],
                    description=data.get("description", ""),
                    priority=data["priority"],
                    by=user,
                    team=data.get("team"),
                    assignee=data.get("assignee"),
                    tags=data.get("tags") or [],
                )
                obj.pk = created.pk
                return
            ticket_update(
                ticket=obj,
                by=user,
                title=data["title"],
                description=data.get("description", ""),
                status=data["status"],
                priority=data["priority"],
                assignee=data.get("assignee"),
                team=data.get("team"),
                tags=data.get("tags") or [],
            )
        except ApplicationError as error:
            raise _Refused(error) from error

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # The ticket row was saved by the service; links are audited too.
        ticket = Ticket.objects.get(pk=form.instance.pk)
        user = request.user if isinstance(request.user, User) else None
        wanted = set(form.cleaned_data.get("conversations", []))
        current = set(ticket.conversations.all())
        for conversation in wanted - current:
            ticket_conversation_link(ticket=ticket, conversation=conversation, by=user)
        if current - wanted:
            ticket.conversations.remove(*(current - wanted))
            TicketEvent.objects.create(
                ticket=ticket,
                kind=TicketEvent.Kind.LINKED,
                actor=user,
                changes={"unlinked": sorted(c.pk for c in current - wanted)},
            )
        for formset in formsets:  # the history inline is read-only: this saves nothing
            self.save_formset(request, form, formset, change=change)

    @admin.action(description=_("Merge the selected tickets into the oldest"))
    def merge_into_oldest(self, request: HttpRequest, queryset: QuerySet[Ticket]) -> None:
        tickets = list(queryset.order_by("created"))
        user = request.user if isinstance(request.user, User) else None
        for duplicate in tickets[1:]:
            try:
                ticket_merge(source=duplicate, target=tickets[0], by=user)
            except ApplicationError as error:
                self.message_user(request, error.message, level=messages.ERROR)


class PeriodInline(admin.TabularInline[BusinessHoursPeriod, BusinessCalendar]):
    model = BusinessHoursPeriod
    extra = 1


class HolidayInline(admin.TabularInline[Holiday, BusinessCalendar]):
    model = Holiday
    extra = 1


def _time_zone_choices() -> list[tuple[str, str]]:
    return [("", gettext("The organisation's time zone")), *((name, name) for name in sorted(time_zone_names()))]


class BusinessCalendarForm(forms.ModelForm[BusinessCalendar]):
    # A list to pick from: a typed "EAT" or "Nairobi" is not a zone the clocks can read.
    time_zone = forms.ChoiceField(
        label=_("time zone"),
        choices=_time_zone_choices,
        required=False,
        help_text=_("Empty: the organisation's time zone."),
    )

    class Meta:
        model = BusinessCalendar
        fields = ["name", "time_zone"]


class BusinessCalendarAdmin(admin.ModelAdmin[BusinessCalendar]):
    form = BusinessCalendarForm
    list_display = ["name", "time_zone"]
    inlines = [PeriodInline, HolidayInline]


class SLAPolicyAdmin(admin.ModelAdmin[SLAPolicy]):
    list_display = [
        "name",
        "priority",
        "team",
        "tag",
        "calendar",
        "first_response_minutes",
        "next_response_minutes",
        "resolution_minutes",
        "is_active",
    ]
    list_filter = ["priority", "team", "is_active"]


class EscalationRuleAdmin(admin.ModelAdmin[EscalationRule]):
    list_display = ["name", "position", "is_active", "trigger", "action", "stop_processing"]
    list_editable = ["position", "is_active"]
    list_filter = ["trigger", "action", "is_active"]
    ordering = ["position", "id"]


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class EscalationRuleFiringAdmin(ReadOnlyAdmin):
    list_display = ["created", "rule", "conversation", "ticket", "result"]
    list_filter = ["rule"]
    list_select_related = ["rule"]


class SLAEventAdmin(ReadOnlyAdmin):
    list_display = ["created", "ticket", "metric", "kind", "due_at", "priority", "assignee", "team"]
    list_filter = ["metric", "kind", "priority", "team"]
    date_hierarchy = "created"


class CsatSurveyAdmin(ReadOnlyAdmin):
    list_display = ["asked_at", "conversation", "agent", "team", "channel", "score", "comment", "answered_at"]
    list_filter = ["score", "channel", "team", "agent"]
    date_hierarchy = "asked_at"


tenant_admin_site.register(Ticket, TicketAdmin)
tenant_admin_site.register(BusinessCalendar, BusinessCalendarAdmin)
tenant_admin_site.register(SLAPolicy, SLAPolicyAdmin)
tenant_admin_site.register(EscalationRule, EscalationRuleAdmin)
tenant_admin_site.register(EscalationRuleFiring, EscalationRuleFiringAdmin)
tenant_admin_site.register(SLAEvent, SLAEventAdmin)
tenant_admin_site.register(CsatSurvey, CsatSurveyAdmin)
