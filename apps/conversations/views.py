from __future__ import annotations

from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.views import redirect_to_login
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.views import View
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Team, User
from apps.accounts.selectors import user_has_capability
from apps.conversations.exceptions import ConversationNotFound
from apps.conversations.selectors import message_media_for_user, viewer_for
from apps.conversations.simulator import (
    CustomerReply,
    SimulatorUnavailable,
    simulator_account,
    simulator_send,
    simulator_thread,
)


class InboxPageView(LoginRequiredMixin, View):
    """The agents' live inbox: the list, the thread, the composer; data from the API, live from `/ws/inbox/`."""

    def get(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if not isinstance(user, User):  # LoginRequiredMixin lets only signed-in people through
            return redirect_to_login(request.get_full_path())
        viewer = viewer_for(user=user)
        if not (viewer.sees_all or viewer.sees_assigned):
            return render(request, "conversations/inbox_denied.html", status=403)
        may_assign = user_has_capability(user=user, capability="assign_conversations")
        people = (
            list(
                User.objects.filter(is_active=True, groups__permissions__codename="respond_to_conversations")
                .distinct()
                .order_by("first_name", "email")
                .values("id", "first_name", "last_name", "email")
            )
            if may_assign
            else []
        )
        config = {
            "user": {"id": user.pk, "name": user.get_full_name() or user.email},
            "mayAssign": may_assign,
            "agents": [
                {"id": a["id"], "name": f"{a['first_name']} {a['last_name']}".strip() or a["email"]} for a in people
            ],
            "teams": list(Team.objects.order_by("name").values("id", "name")),
            "api": "/api/v1/",
            "socket": "/ws/inbox/",
        }
        return render(request, "conversations/inbox.html", {"config": config})


# Shown in the page; anything else is downloaded, never rendered by the browser.
INLINE_MEDIA_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/webp", "audio/ogg", "audio/mpeg", "audio/aac", "audio/mp4", "video/mp4"}
)


class MessageMediaView(LoginRequiredMixin, View):
    """A customer's photo, voice note, video or document, for people who may see the conversation."""

    def get(self, request: HttpRequest, message_id: int) -> HttpResponseBase:
        user = request.user
        if not isinstance(user, User):
            return redirect_to_login(request.get_full_path())
        try:
            message = message_media_for_user(user=user, message_id=message_id)
        except ConversationNotFound as exc:
            raise Http404(exc.message) from exc
        media = message.media
        assert media is not None  # noqa: S101 - the selector only returns messages with media
        mime = media.mime_type.split(";")[0].strip().lower()
        inline = mime in INLINE_MEDIA_TYPES
        response = FileResponse(
            media.file.open("rb"),
            content_type=mime if inline else "application/octet-stream",
            as_attachment=not inline,
            filename=media.filename or f"{media.kind}-{media.pk}",
        )
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "private, max-age=3600"
        return response


# Chatting as a customer injects messages into the inbox and reads the whole sandbox thread:
# the same capability as answering conversations (a Knowledge Editor has none).
SIMULATOR_CAPABILITY = "respond_to_conversations"


def _may_simulate(user: object) -> bool:
    return isinstance(user, User) and user_has_capability(user=user, capability=SIMULATOR_CAPABILITY)


class MaySimulate(BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        return _may_simulate(request.user)


class SimulatorPageView(LoginRequiredMixin, View):
    """A page where a person chats as a WhatsApp customer with the tenant's sandbox number."""

    def get(self, request: HttpRequest) -> HttpResponse:
        if not _may_simulate(request.user):
            return render(request, "conversations/inbox_denied.html", status=403)
        try:
            account = simulator_account(tenant_id=request.tenant.pk)  # type: ignore[attr-defined]
            error = ""
        except SimulatorUnavailable as exc:
            account, error = None, exc.message
        return render(request, "conversations/simulator.html", {"account": account, "error": error})


# The simulator is a testing tool for admins, not part of the public API: keep it out of the schema.
@extend_schema(exclude=True)
class SimulatorSendApi(APIView):
    permission_classes = [IsAuthenticated, MaySimulate]

    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        wa_id = serializers.RegexField(r"^\d{6,15}$")
        name = serializers.CharField(max_length=100, required=False, default="Test customer")
        text = serializers.CharField(max_length=4096, required=False, allow_blank=True, default="")
        reply_kind = serializers.ChoiceField(choices=["button_reply", "list_reply"], required=False)
        reply_id = serializers.CharField(max_length=256, required=False)
        reply_title = serializers.CharField(max_length=100, required=False)

    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        reply = None
        if values.get("reply_kind"):
            reply = CustomerReply(values["reply_kind"], values.get("reply_id", ""), values.get("reply_title", ""))
        account = simulator_account(tenant_id=request.tenant.pk)
        wamid = simulator_send(
            account=account, wa_id=values["wa_id"], name=values["name"], text=values["text"], reply=reply
        )
        return Response({"wamid": wamid}, status=201)


@extend_schema(exclude=True)
class SimulatorThreadApi(APIView):
    permission_classes = [IsAuthenticated, MaySimulate]

    def get(self, request: Request) -> Response:
        wa_id = str(request.query_params.get("wa_id", ""))
        account = simulator_account(tenant_id=request.tenant.pk)
        return Response({"messages": simulator_thread(account=account, wa_id=wa_id)})
