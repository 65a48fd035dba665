"""The tickets API: thin views over the services and the visibility-checked selectors."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.api import api_user
from apps.accounts.models import Team, User
from apps.accounts.selectors import user_has_capability
from apps.conversations.models import Conversation
from apps.conversations.selectors import conversation_get_for_user
from apps.core.api_schema import PAGE_PARAMETERS, page_of
from apps.tenants.selectors import organization_zone
from apps.tickets.exceptions import TicketActionDenied
from apps.tickets.models import Priority, Ticket
from apps.tickets.reports import FIRST_DAY, LAST_DAY, MAX_RANGE_DAYS, sla_report
from apps.tickets.selectors import csat_summary, ticket_get_for_user, ticket_list_for_user
from apps.tickets.services.tickets import ticket_create, ticket_create_from_conversation, ticket_merge, ticket_update


class TicketPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 200


class TicketSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    title = serializers.CharField()
    description = serializers.CharField()
    status = serializers.CharField()
    priority = serializers.CharField()
    created_via = serializers.CharField(source="source")
    assignee = serializers.IntegerField(source="assignee_id", allow_null=True)
    team = serializers.IntegerField(source="team_id", allow_null=True)
    contact = serializers.IntegerField(source="contact_id", allow_null=True)
    tags = serializers.ListField(child=serializers.CharField())
    intent = serializers.CharField()
    conversations = serializers.SerializerMethodField()
    merged_into = serializers.IntegerField(source="merged_into_id", allow_null=True)
    sla_policy = serializers.IntegerField(source="sla_policy_id", allow_null=True)
    first_response_due_at = serializers.DateTimeField(allow_null=True)
    first_responded_at = serializers.DateTimeField(allow_null=True)
    next_response_due_at = serializers.DateTimeField(allow_null=True)
    resolution_due_at = serializers.DateTimeField(allow_null=True)
    sla_paused_at = serializers.DateTimeField(allow_null=True)
    sla_breached = serializers.BooleanField()
    risk_score = serializers.IntegerField()
    risk_factors = serializers.JSONField()
    created = serializers.DateTimeField()
    updated = serializers.DateTimeField()

    def get_conversations(self, ticket: Ticket) -> list[int]:
        return sorted(c.pk for c in ticket.conversations.all())


class TicketEventSerializer(serializers.Serializer[Any]):
    kind = serializers.CharField()
    actor = serializers.IntegerField(source="actor_id", allow_null=True)
    changes = serializers.JSONField()
    note = serializers.CharField()
    created = serializers.DateTimeField()


class TicketDetailSerializer(TicketSerializer):
    history = TicketEventSerializer(many=True)


def _team(team_id: int | None) -> Team | None:
    if team_id is None:
        return None
    team = Team.objects.filter(pk=team_id).first()
    if team is None:
        raise serializers.ValidationError({"team": ["No such team."]})
    return team


def _agent(user_id: int | None) -> User | None:
    if user_id is None:
        return None
    agent = User.objects.filter(pk=user_id, is_active=True).first()
    if agent is None:
        raise serializers.ValidationError({"assignee": ["No such user."]})
    return agent


class TicketListCreateApi(APIView):
    class FilterSerializer(serializers.Serializer[dict[str, Any]]):
        status = serializers.ChoiceField(choices=Ticket.Status.choices, required=False)
        priority = serializers.ChoiceField(choices=Priority.choices, required=False)
        assignee = serializers.IntegerField(required=False)
        team = serializers.IntegerField(required=False)
        mine = serializers.BooleanField(required=False, default=False)
        breached = serializers.BooleanField(required=False, allow_null=True, default=None)
        q = serializers.CharField(required=False, max_length=100)
        conversation = serializers.IntegerField(required=False)

    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        class Meta:
            ref_name = "TicketCreateInput"

        title = serializers.CharField(max_length=200)
        description = serializers.CharField(required=False, default="", allow_blank=True)
        priority = serializers.ChoiceField(choices=Priority.choices, required=False, default=Priority.MEDIUM)
        conversations = serializers.ListField(child=serializers.IntegerField(), required=False, default=list)
        team = serializers.IntegerField(required=False, allow_null=True, default=None)
        assignee = serializers.IntegerField(required=False, allow_null=True, default=None)
        tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, default=list)

    @extend_schema(
        operation_id="api_v1_tickets_list",  # the page is one object: keep the name a list had
        parameters=[FilterSerializer, *PAGE_PARAMETERS],
        responses=page_of("TicketPage", TicketSerializer(many=True)),
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        values = filters.validated_data
        tickets = ticket_list_for_user(
            user=api_user(request),
            status=values.get("status"),
            priority=values.get("priority"),
            assignee_id=values.get("assignee"),
            team_id=values.get("team"),
            mine=values["mine"],
            breached=values.get("breached"),
            search=values.get("q"),
            conversation_id=values.get("conversation"),
        )
        paginator = TicketPagination()
        page = paginator.paginate_queryset(tickets, request, view=self) or []
        return paginator.get_paginated_response(TicketSerializer(page, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: TicketSerializer})
    def post(self, request: Request) -> Response:
        user = api_user(request)
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        values = payload.validated_data
        conversations: list[Conversation] = [
            conversation_get_for_user(user=user, conversation_id=pk) for pk in values["conversations"]
        ]
        ticket = ticket_create(
            title=values["title"],
            description=values["description"],
            priority=values["priority"],
            by=user,
            source=Ticket.Source.API,
            conversations=conversations,
            team=_team(values["team"]),
            assignee=_agent(values["assignee"]),
            tags=values["tags"],
        )
        return Response(TicketSerializer(ticket).data, status=201)


class TicketFromConversationApi(APIView):
    """Open a ticket from a conversation, its title and description written from the thread."""

    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        class Meta:
            ref_name = "TicketFromConversationInput"

        conversation = serializers.IntegerField()

    @extend_schema(request=InputSerializer, responses={201: TicketSerializer})
    def post(self, request: Request) -> Response:
        user = api_user(request)
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        conversation = conversation_get_for_user(user=user, conversation_id=payload.validated_data["conversation"])
        # The agent waits for the provider's title and description (this request holds no transaction).
        ticket = ticket_create_from_conversation(
            conversation=conversation, by=user, source=Ticket.Source.API, write_now=True
        )
        return Response(TicketSerializer(ticket).data, status=201)


class TicketDetailApi(APIView):
    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        class Meta:
            ref_name = "TicketUpdateInput"

        title = serializers.CharField(max_length=200, required=False)
        description = serializers.CharField(required=False, allow_blank=True)
        status = serializers.ChoiceField(choices=Ticket.Status.choices, required=False)
        priority = serializers.ChoiceField(choices=Priority.choices, required=False)
        assignee = serializers.IntegerField(required=False, allow_null=True)
        team = serializers.IntegerField(required=False, allow_null=True)
        tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False)
        note = serializers.CharField(max_length=300, required=False, default="", allow_blank=True)

    @extend_schema(responses=TicketDetailSerializer)
    def get(self, request: Request, ticket_id: int) -> Response:
        ticket = ticket_get_for_user(user=api_user(request), ticket_id=ticket_id)
        data = dict(TicketSerializer(ticket).data)
        data["history"] = TicketEventSerializer(ticket.events.all(), many=True).data
        return Response(data)

    @extend_schema(request=InputSerializer, responses=TicketSerializer)
    def patch(self, request: Request, ticket_id: int) -> Response:
        user = api_user(request)
        payload = self.InputSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        values = payload.validated_data
        ticket = ticket_get_for_user(user=user, ticket_id=ticket_id)
        changes: dict[str, Any] = {
            key: values[key] for key in ("title", "description", "status", "priority", "tags") if key in values
        }
        if "assignee" in values:
            changes["assignee"] = _agent(values["assignee"])
        if "team" in values:
            changes["team"] = _team(values["team"])
        ticket = ticket_update(ticket=ticket, by=user, note=values.get("note", ""), **changes)
        return Response(TicketSerializer(ticket).data)


class TicketMergeApi(APIView):
    """Merge this ticket (a duplicate) into another."""

    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        class Meta:
            ref_name = "TicketMergeInput"

        into = serializers.IntegerField()

    @extend_schema(request=InputSerializer, responses=TicketSerializer)
    def post(self, request: Request, ticket_id: int) -> Response:
        user = api_user(request)
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        source = ticket_get_for_user(user=user, ticket_id=ticket_id)
        target = ticket_get_for_user(user=user, ticket_id=payload.validated_data["into"])
        return Response(TicketSerializer(ticket_merge(source=source, target=target, by=user)).data)


class CsatSummarySerializer(serializers.Serializer[Any]):
    agent = serializers.IntegerField(required=False, allow_null=True)
    team = serializers.IntegerField(required=False, allow_null=True)
    period = serializers.DateTimeField(required=False)
    responses = serializers.IntegerField()
    average = serializers.FloatField()
    csat_percent = serializers.FloatField()


class CsatSummaryApi(APIView):
    class FilterSerializer(serializers.Serializer[dict[str, Any]]):
        group_by = serializers.ChoiceField(choices=["agent", "team", "none"], required=False, default="agent")
        period = serializers.ChoiceField(choices=["day", "week", "month"], required=False)
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)

    @extend_schema(parameters=[FilterSerializer], responses=CsatSummarySerializer(many=True))
    def get(self, request: Request) -> Response:
        if not user_has_capability(user=api_user(request), capability="view_analytics"):
            raise TicketActionDenied(_("Your role does not allow this."), extra={"capability": "view_analytics"})
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        values = filters.validated_data
        rows = csat_summary(
            group_by=values["group_by"],
            period=values.get("period"),
            since=values.get("since"),
            until=values.get("until"),
        )
        return Response(CsatSummarySerializer(rows, many=True).data)


class SlaReportFilterSerializer(serializers.Serializer[dict[str, Any]]):
    to = serializers.DateField(
        required=False, help_text="Last day included (organisation time zone); today by default."
    )
    period = serializers.ChoiceField(choices=["day", "week", "month"], required=False, default="day")
    team = serializers.IntegerField(required=False, min_value=1)
    agent = serializers.IntegerField(required=False, min_value=1)

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        # "from" is a Python keyword: it cannot be declared as a class attribute.
        fields["from"] = serializers.DateField(
            required=False, help_text="First day included (organisation time zone); 29 days before `to` by default."
        )
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        for name in ("from", "to"):
            if name in attrs and not FIRST_DAY <= attrs[name] <= LAST_DAY:
                raise serializers.ValidationError(
                    {
                        name: [
                            _("Choose a day from %(first)s to %(last)s.")
                            % {"first": FIRST_DAY.isoformat(), "last": LAST_DAY.isoformat()}
                        ]
                    }
                )
        until = attrs.get("to") or timezone.localdate(timezone=organization_zone())
        since = attrs.get("from") or until - timedelta(days=29)
        if since > until:
            raise serializers.ValidationError({"from": [_("'from' must be on or before 'to'.")]})
        if (until - since).days + 1 > MAX_RANGE_DAYS:
            raise serializers.ValidationError(
                {"to": [_("A report covers at most %(days)d days.") % {"days": MAX_RANGE_DAYS}]}
            )
        if "team" in attrs and not Team.objects.filter(pk=attrs["team"]).exists():
            raise serializers.ValidationError({"team": [_("No such team.")]})
        if "agent" in attrs and not User.objects.filter(pk=attrs["agent"]).exists():
            raise serializers.ValidationError({"agent": [_("No such user.")]})
        return {**attrs, "from": since, "to": until}


class SlaReportApi(APIView):
    """Tickets opened per period: SLA targets met and breached, at-risk warnings, first-response time, CSAT."""

    @extend_schema(parameters=[SlaReportFilterSerializer], responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        user = api_user(request)
        if not user_has_capability(user=user, capability="view_analytics"):
            raise TicketActionDenied(_("Your role does not allow this."), extra={"capability": "view_analytics"})
        filters = SlaReportFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        values = filters.validated_data
        return Response(
            sla_report(
                since=values["from"],
                until=values["to"],
                period=values["period"],
                team_id=values.get("team"),
                agent_id=values.get("agent"),
            )
        )


@extend_schema(exclude=True)  # the same report without the trailing slash, for hand-written URLs
class SlaReportNoSlashApi(SlaReportApi):
    pass
