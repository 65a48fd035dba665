from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import NotAuthenticated, Throttled
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from apps.accounts.exceptions import CredentialsInvalid
from apps.accounts.models import User
from apps.accounts.selectors import user_role_names
from apps.core.sign_in_limits import (
    SIGN_IN_BLOCKED_MESSAGE,
    sign_in_blocked,
    sign_in_failure_record,
    sign_in_failures_clear,
)
from apps.core.tenancy import current_schema


class LoginThrottle(AnonRateThrottle):
    rate = "20/min"


class MeOutputSerializer(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())
    tenant = serializers.CharField()


class MeApi(APIView):
    @extend_schema(responses=MeOutputSerializer)
    def get(self, request: Request) -> Response:
        user = api_user(request)
        data = {
            "id": user.pk,
            "email": user.email,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "roles": user_role_names(user=user),
            "tenant": current_schema(),
        }
        return Response(MeOutputSerializer(data).data)


class TokenCreateApi(APIView):
    """Exchange an email and password of this tenant for an API token."""

    permission_classes = [AllowAny]
    authentication_classes: list[type] = []
    throttle_classes = [LoginThrottle]

    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        email = serializers.CharField()
        password = serializers.CharField(trim_whitespace=False)

    class OutputSerializer(serializers.Serializer[dict[str, Any]]):
        token = serializers.CharField()

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request) -> Response:
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        email = payload.validated_data["email"]
        if sign_in_blocked(request=request._request, username=email):
            raise Throttled(wait=settings.SIGN_IN_FAILURE_WINDOW_SECONDS, detail=str(SIGN_IN_BLOCKED_MESSAGE))
        user = authenticate(request._request, username=email, password=payload.validated_data["password"])
        if user is None or not user.is_active:
            sign_in_failure_record(request=request._request, username=email)
            raise CredentialsInvalid(_("Email or password is not correct for this organization."))
        sign_in_failures_clear(request=request._request, username=email)
        token, _created = Token.objects.get_or_create(user=user)
        return Response(self.OutputSerializer({"token": token.key}).data)


def api_user(request: Request) -> User:
    """The signed-in member behind an API request (IsAuthenticated has refused anonymous callers)."""
    user = request.user
    if not isinstance(user, User):
        raise NotAuthenticated()
    return user
