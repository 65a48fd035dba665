from __future__ import annotations

from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views import View
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.conversations.simulator import (
    CustomerReply,
    SimulatorUnavailable,
    simulator_account,
    simulator_send,
    simulator_thread,
)


class SimulatorPageView(LoginRequiredMixin, View):
    """A page where a person chats as a WhatsApp customer with the tenant's sandbox number."""

    def get(self, request: HttpRequest) -> HttpResponse:
        try:
            account = simulator_account(tenant_id=request.tenant.pk)  # type: ignore[attr-defined]
            error = ""
        except SimulatorUnavailable as exc:
            account, error = None, exc.message
        return render(request, "conversations/simulator.html", {"account": account, "error": error})


# The simulator is a testing tool for admins, not part of the public API: keep it out of the schema.
@extend_schema(exclude=True)
class SimulatorSendApi(APIView):
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
    def get(self, request: Request) -> Response:
        wa_id = str(request.query_params.get("wa_id", ""))
        account = simulator_account(tenant_id=request.tenant.pk)
        return Response({"messages": simulator_thread(account=account, wa_id=wa_id)})
