"""The conversations API: every read goes through the selectors' visibility rule."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.api import api_user
from apps.accounts.models import Team, User
from apps.conversations.lifecycle import (
    conversation_assign,
    conversation_handoff,
    conversation_resolve,
    conversation_return_to_bot,
    conversation_takeover,
    conversation_update,
)
from apps.conversations.models import Conversation, Message
from apps.conversations.outgoing import (
    conversation_attachment_send,
    conversation_template_send,
    conversation_templates,
)
from apps.conversations.selectors import (
    canned_response_list,
    contact_history_for_user,
    conversation_get_for_user,
    conversation_list_for_user,
    conversation_messages,
)
from apps.conversations.services import conversation_note_add, conversation_reply
from apps.core.api_schema import PAGE_PARAMETERS, page_of
from apps.whatsapp.media import media_problem
from apps.whatsapp.models import OutboxMessage


class ConversationPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 200


class ContactSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    wa_id = serializers.CharField()
    profile_name = serializers.CharField()


class ConversationSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    status = serializers.CharField()
    priority = serializers.CharField()
    contact = ContactSerializer()
    assigned_agent = serializers.IntegerField(source="assigned_agent_id", allow_null=True)
    team = serializers.IntegerField(source="team_id", allow_null=True)
    language = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    unread_count = serializers.IntegerField()
    is_snoozed = serializers.BooleanField()
    handoff_reason = serializers.CharField()
    # The window of the conversation's number (WhatsApp keeps one per number, not per customer).
    window_expires_at = serializers.DateTimeField(source="window.expires_at", allow_null=True)
    window_open = serializers.SerializerMethodField()
    last_message_at = serializers.DateTimeField(allow_null=True)
    last_message_preview = serializers.CharField()
    # False while the conversation's WhatsApp number is switched off: replies are held.
    number_active = serializers.BooleanField(source="account.is_active")

    def get_window_open(self, conversation: Conversation) -> bool:
        """Whether free-form messages may be sent now (the customer wrote within 24 hours)."""
        return conversation.window.is_open


class MessageSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    direction = serializers.CharField()
    author_kind = serializers.CharField()
    author = serializers.IntegerField(source="author_id", allow_null=True)
    type = serializers.CharField()
    text = serializers.CharField()
    content = serializers.JSONField()
    reaction = serializers.CharField(source="customer_reaction")
    sent_at = serializers.DateTimeField()
    delivery = serializers.SerializerMethodField()
    media = serializers.SerializerMethodField()
    language = serializers.CharField()
    intent = serializers.CharField()
    intent_confidence = serializers.FloatField(allow_null=True)
    sentiment = serializers.FloatField(allow_null=True)
    translation = serializers.CharField()
    translated_to = serializers.CharField()

    def get_media(self, message: Message) -> dict[str, Any] | None:
        media = message.media
        if media is None:
            return None
        return {
            "kind": media.kind,
            "status": media.status,
            "mime_type": media.mime_type,
            "filename": media.filename,
            "url": f"/inbox/media/{message.pk}/" if media.status == "ready" else None,
            # Why it is not shown, for the agent; `detail` is the technical reason (Meta's error,
            # the attempts given up on) for whoever investigates.
            "error": media_problem(media),
            "detail": media.error if media.status in ("failed", "too_large") else "",
        }

    def get_delivery(self, message: Message) -> dict[str, Any] | None:
        row = message.outbox
        if row is None:
            return None
        if row.status == OutboxMessage.Status.PENDING and not row.account.is_active:
            return {
                "status": "held",
                "error_code": None,
                "error": _(
                    "Not sent yet: this WhatsApp number is switched off. The message is kept and goes out "
                    "once an admin switches the number on again."
                ),
            }
        return {"status": row.delivery_status or row.status, "error_code": row.error_code, "error": row.error_title}


class ConversationDetailSerializer(ConversationSerializer):
    messages = MessageSerializer(many=True)


class ConversationListApi(APIView):
    class FilterSerializer(serializers.Serializer[dict[str, Any]]):
        status = serializers.ChoiceField(choices=Conversation.Status.choices, required=False)
        agent = serializers.IntegerField(required=False)
        mine = serializers.BooleanField(required=False, default=False)
        unassigned = serializers.BooleanField(required=False, default=False)
        team = serializers.IntegerField(required=False)
        sentiment = serializers.ChoiceField(choices=["negative", "neutral", "positive"], required=False)
        language = serializers.CharField(required=False, max_length=8)
        q = serializers.CharField(required=False, max_length=100)

    @extend_schema(
        operation_id="api_v1_conversations_list",  # the page is one object: keep the name a list had
        parameters=[FilterSerializer, *PAGE_PARAMETERS],
        responses=page_of("ConversationPage", ConversationSerializer(many=True)),
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        values = filters.validated_data
        conversations = conversation_list_for_user(
            user=api_user(request),
            status=values.get("status"),
            agent_id=values.get("agent"),
            mine=values["mine"],
            unassigned=values["unassigned"],
            team_id=values.get("team"),
            sentiment=values.get("sentiment"),
            language=values.get("language"),
            search=values.get("q"),
        )
        paginator = ConversationPagination()
        page = paginator.paginate_queryset(conversations, request, view=self) or []
        return paginator.get_paginated_response(ConversationSerializer(page, many=True).data)


class ConversationDetailApi(APIView):
    @extend_schema(responses=ConversationDetailSerializer)
    def get(self, request: Request, conversation_id: int) -> Response:
        conversation = conversation_get_for_user(user=api_user(request), conversation_id=conversation_id)
        data = dict(ConversationSerializer(conversation).data)
        data["messages"] = MessageSerializer(conversation_messages(conversation=conversation), many=True).data
        return Response(data)


class ConversationEscalateApi(APIView):
    """Hand the conversation from the bot to people (optionally to a team, at a priority)."""

    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        class Meta:
            ref_name = "ConversationEscalateInput"  # unique OpenAPI component name

        reason = serializers.CharField(max_length=200, required=False, default="escalated")
        team = serializers.IntegerField(required=False)
        priority = serializers.ChoiceField(choices=Conversation.Priority.choices, required=False)

    @extend_schema(request=InputSerializer, responses=ConversationSerializer)
    def post(self, request: Request, conversation_id: int) -> Response:
        user = api_user(request)
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        values = payload.validated_data
        conversation = conversation_get_for_user(user=user, conversation_id=conversation_id)
        if "team" in values or "priority" in values:
            team = Team.objects.filter(pk=values["team"]).first() if "team" in values else False
            if "team" in values and team is None:
                raise serializers.ValidationError({"team": ["No such team."]})
            conversation = conversation_update(
                conversation=conversation, by=user, priority=values.get("priority"), team=team
            )
        conversation = conversation_handoff(conversation=conversation, reason=values["reason"], by=user)
        return Response(ConversationSerializer(conversation).data)


class ConversationResolveApi(APIView):
    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        class Meta:
            ref_name = "ConversationResolveInput"  # unique OpenAPI component name

        reason = serializers.CharField(max_length=300, required=False, default="")

    @extend_schema(request=InputSerializer, responses=ConversationSerializer)
    def post(self, request: Request, conversation_id: int) -> Response:
        user = api_user(request)
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        conversation = conversation_get_for_user(user=user, conversation_id=conversation_id)
        conversation = conversation_resolve(conversation=conversation, by=user, reason=payload.validated_data["reason"])
        return Response(ConversationSerializer(conversation).data)


class TemplateChoiceSerializer(serializers.Serializer[dict[str, Any]]):
    class Meta:
        ref_name = "ConversationTemplateChoice"  # unique OpenAPI component name

    id = serializers.IntegerField()
    variables = serializers.ListField(
        child=serializers.CharField(max_length=1024, allow_blank=True), required=False, default=list, max_length=20
    )


class ConversationMessageCreateApi(APIView):
    """An agent's reply (sent to the customer), an attachment, a template, or an internal note (never sent).

    JSON: `{"text"}` for a reply or a note, `{"template": {"id", "variables"}}` for a template.
    Multipart: `file` (a photo, audio, video or document) with an optional `text` as its caption.
    """

    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        class Meta:
            ref_name = "ConversationMessageCreateInput"  # unique OpenAPI component name

        text = serializers.CharField(max_length=4096, required=False, allow_blank=True, default="")
        note = serializers.BooleanField(required=False, default=False)
        client_id = serializers.RegexField(r"^[A-Za-z0-9_-]{1,64}$", required=False, default="")
        translate = serializers.BooleanField(required=False, default=True)
        file = serializers.FileField(required=False, allow_empty_file=True, max_length=240)
        template = TemplateChoiceSerializer(required=False)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            kinds = [name for name in ("file", "template") if attrs.get(name) is not None]
            if len(kinds) > 1:
                raise serializers.ValidationError(_("Send a file or a template, not both at once."))
            if attrs["note"] and kinds:
                raise serializers.ValidationError(_("An internal note is text only."))
            if not kinds and not attrs["text"].strip():
                raise serializers.ValidationError({"text": [_("Write a message first.")]})
            return attrs

    @extend_schema(request=InputSerializer, responses=MessageSerializer)
    def post(self, request: Request, conversation_id: int) -> Response:
        user = api_user(request)
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        values = payload.validated_data
        conversation = conversation_get_for_user(user=user, conversation_id=conversation_id)
        if values["note"]:
            message = conversation_note_add(conversation=conversation, author=user, text=values["text"])
        elif values.get("file") is not None:
            upload = values["file"]
            message = conversation_attachment_send(
                conversation=conversation,
                agent=user,
                file=upload,
                filename=upload.name or "",
                size=upload.size or 0,
                caption=values["text"],
                client_id=values["client_id"],
                translate=values["translate"],
            )
        elif values.get("template") is not None:
            message = conversation_template_send(
                conversation=conversation,
                agent=user,
                template_id=values["template"]["id"],
                variables=values["template"]["variables"],
                client_id=values["client_id"],
            )
        else:
            message = conversation_reply(
                conversation=conversation,
                agent=user,
                text=values["text"],
                client_id=values["client_id"],
                translate=values["translate"],
            )
        return Response(MessageSerializer(message).data, status=201)


class MessageTemplateSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    language = serializers.CharField()
    category = serializers.CharField()
    header_text = serializers.CharField()
    body_text = serializers.CharField()
    footer_text = serializers.CharField()
    variable_count = serializers.IntegerField()


class ConversationTemplateListApi(APIView):
    """The approved templates the agent may send in this conversation, the customer's language first."""

    @extend_schema(responses=MessageTemplateSerializer(many=True))
    def get(self, request: Request, conversation_id: int) -> Response:
        conversation = conversation_get_for_user(user=api_user(request), conversation_id=conversation_id)
        templates = conversation_templates(conversation=conversation)
        return Response(MessageTemplateSerializer(templates, many=True).data)


class CustomerHistoryApi(APIView):
    @extend_schema(responses=ConversationSerializer(many=True))
    def get(self, request: Request, contact_id: int) -> Response:
        history = contact_history_for_user(user=api_user(request), contact_id=contact_id)
        return Response(ConversationSerializer(history[:100], many=True).data)


class ConversationTakeoverApi(APIView):
    """The signed-in agent takes the conversation (from the bot or the queue)."""

    @extend_schema(request=None, responses=ConversationSerializer)
    def post(self, request: Request, conversation_id: int) -> Response:
        user = api_user(request)
        conversation = conversation_get_for_user(user=user, conversation_id=conversation_id)
        conversation = conversation_takeover(conversation=conversation, agent=user)
        return Response(ConversationSerializer(conversation).data)


class ConversationReturnToBotApi(APIView):
    @extend_schema(request=None, responses=ConversationSerializer)
    def post(self, request: Request, conversation_id: int) -> Response:
        user = api_user(request)
        conversation = conversation_get_for_user(user=user, conversation_id=conversation_id)
        conversation = conversation_return_to_bot(conversation=conversation, by=user)
        return Response(ConversationSerializer(conversation).data)


class ConversationAssignApi(APIView):
    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        class Meta:
            ref_name = "ConversationAssignInput"  # unique OpenAPI component name

        agent = serializers.IntegerField()

    @extend_schema(request=InputSerializer, responses=ConversationSerializer)
    def post(self, request: Request, conversation_id: int) -> Response:
        user = api_user(request)
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        conversation = conversation_get_for_user(user=user, conversation_id=conversation_id)
        agent = User.objects.filter(pk=payload.validated_data["agent"], is_active=True).first()
        if agent is None:
            raise serializers.ValidationError({"agent": ["No such agent."]})
        conversation = conversation_assign(conversation=conversation, agent=agent, by=user)
        return Response(ConversationSerializer(conversation).data)


class CannedResponseSerializer(serializers.Serializer[Any]):
    shortcut = serializers.CharField()
    title = serializers.CharField()
    text = serializers.CharField()


class CannedResponseListApi(APIView):
    """The saved replies, matching `q` in the shortcut or title (the composer's `/` menu)."""

    class FilterSerializer(serializers.Serializer[dict[str, Any]]):
        # A CharField refuses what the database cannot compare (NUL, lone surrogates) with a 400.
        q = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(parameters=[FilterSerializer], responses=CannedResponseSerializer(many=True))
    def get(self, request: Request) -> Response:
        api_user(request)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        # The composer sends what follows the slash as typed; a shortcut is at most 40 characters.
        query = filters.validated_data["q"].lstrip("/")[:40]
        return Response(CannedResponseSerializer(canned_response_list(query=query)[:20], many=True).data)
