"""The flows API behind the visual builder: thin views over the draft, publish and test services.

Reading needs `flows.view_flow`; changing a flow `flows.change_flow`; creating one
`flows.add_flow` (Admins and Support Managers hold them; agents none).
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse
from django.utils.text import slugify
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.api import api_user
from apps.accounts.models import User
from apps.core.exceptions import PermissionDeniedError
from apps.core.json_input import JSONParser
from apps.flows import graph as g
from apps.flows.drafts import (
    FlowImportInvalid,
    FlowVersionNotFound,
    flow_create,
    flow_draft_revert,
    flow_export,
    flow_import,
    flow_import_upload,
    flow_update,
)
from apps.flows.models import FlowVersion
from apps.flows.selectors import flow_get, flow_list, flow_versions_list
from apps.flows.services import flow_activate, flow_publish
from apps.flows.simulation import SimulatedMessage, flow_test_run


def _user_may(request: Request, action: str) -> User:
    user = api_user(request)
    if not user.has_perm(f"flows.{action}_flow"):
        raise PermissionDeniedError(_("Your role does not allow this."), extra={"permission": f"flows.{action}_flow"})
    return user


def _problems(graph: Any) -> list[dict[str, Any]]:
    return [{"node": p.extra.get("node"), "message": p.message} for p in g.graph_problems(graph)]


class FlowSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    priority = serializers.IntegerField()
    is_active = serializers.BooleanField()
    trigger = serializers.JSONField()
    latest_version = serializers.IntegerField(allow_null=True)
    created = serializers.DateTimeField()
    updated = serializers.DateTimeField()


class ProblemSerializer(serializers.Serializer[Any]):
    node = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class FlowDetailSerializer(FlowSerializer):
    draft = serializers.JSONField()
    problems = ProblemSerializer(many=True)


class FlowVersionSerializer(serializers.Serializer[Any]):
    number = serializers.IntegerField()
    published_by = serializers.SerializerMethodField()
    created = serializers.DateTimeField()

    def get_published_by(self, version: FlowVersion) -> str:
        user = version.published_by
        return (user.get_full_name() or user.email) if user is not None else ""


class FlowVersionDetailSerializer(FlowVersionSerializer):
    graph = serializers.JSONField()


def _detail(flow_id: int) -> dict[str, Any]:
    flow = flow_get(flow_id=flow_id)
    data = dict(FlowSerializer(flow).data)
    data["draft"] = flow.draft
    data["problems"] = _problems(flow.draft)
    return data


class FlowListCreateApi(APIView):
    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        class Meta:
            ref_name = "FlowCreateInput"

        name = serializers.CharField(max_length=120)
        priority = serializers.IntegerField(required=False, default=0, min_value=-1000, max_value=1000)
        draft = serializers.JSONField(required=False)

    @extend_schema(responses=FlowSerializer(many=True))
    def get(self, request: Request) -> Response:
        _user_may(request, "view")
        return Response(FlowSerializer(flow_list(), many=True).data)

    @extend_schema(request=InputSerializer, responses={201: FlowDetailSerializer})
    def post(self, request: Request) -> Response:
        _user_may(request, "add")
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        values = payload.validated_data
        flow = flow_create(name=values["name"], priority=values["priority"], draft=values.get("draft"))
        return Response(_detail(flow.pk), status=201)


class FlowDetailApi(APIView):
    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        class Meta:
            ref_name = "FlowUpdateInput"

        name = serializers.CharField(max_length=120, required=False)
        priority = serializers.IntegerField(required=False, min_value=-1000, max_value=1000)
        draft = serializers.JSONField(required=False)
        # The `updated` the builder loaded: a save over someone else's newer save is refused (409).
        updated = serializers.DateTimeField(required=False)

    @extend_schema(responses=FlowDetailSerializer)
    def get(self, request: Request, flow_id: int) -> Response:
        _user_may(request, "view")
        return Response(_detail(flow_id))

    @extend_schema(request=InputSerializer, responses=FlowDetailSerializer)
    def patch(self, request: Request, flow_id: int) -> Response:
        _user_may(request, "change")
        payload = self.InputSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        values = payload.validated_data
        flow_update(
            flow=flow_get(flow_id=flow_id),
            name=values.get("name"),
            priority=values.get("priority"),
            draft=values.get("draft"),
            expected_updated=values.get("updated"),
        )
        return Response(_detail(flow_id))


class FlowCheckApi(APIView):
    """The publish problems of an unsaved graph, node by node (the builder checks as you edit)."""

    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        class Meta:
            ref_name = "FlowCheckInput"

        graph = serializers.JSONField()

    @extend_schema(request=InputSerializer, responses=ProblemSerializer(many=True))
    def post(self, request: Request, flow_id: int) -> Response:
        _user_may(request, "view")
        flow_get(flow_id=flow_id)
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        return Response(_problems(payload.validated_data["graph"]))


class FlowPublishApi(APIView):
    """Check the draft with the publish rules and freeze it as the next version."""

    @extend_schema(request=None, responses={201: FlowVersionSerializer})
    def post(self, request: Request, flow_id: int) -> Response:
        user = _user_may(request, "change")
        version = flow_publish(flow=flow_get(flow_id=flow_id), by=user)
        return Response(FlowVersionSerializer(version).data, status=201)


class FlowRevertApi(APIView):
    """Replace the draft with a published version's graph."""

    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        class Meta:
            ref_name = "FlowRevertInput"

        version = serializers.IntegerField(min_value=1)

    @extend_schema(request=InputSerializer, responses=FlowDetailSerializer)
    def post(self, request: Request, flow_id: int) -> Response:
        _user_may(request, "change")
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        flow_draft_revert(flow=flow_get(flow_id=flow_id), number=payload.validated_data["version"])
        return Response(_detail(flow_id))


class FlowActivateApi(APIView):
    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        class Meta:
            ref_name = "FlowActivateInput"

        active = serializers.BooleanField()

    @extend_schema(request=InputSerializer, responses=FlowSerializer)
    def post(self, request: Request, flow_id: int) -> Response:
        _user_may(request, "change")
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        flow_activate(flow=flow_get(flow_id=flow_id), active=payload.validated_data["active"])
        return Response(FlowSerializer(flow_get(flow_id=flow_id)).data)


class FlowVersionListApi(APIView):
    @extend_schema(responses=FlowVersionSerializer(many=True))
    def get(self, request: Request, flow_id: int) -> Response:
        _user_may(request, "view")
        versions = flow_versions_list(flow=flow_get(flow_id=flow_id))
        return Response(FlowVersionSerializer(versions, many=True).data)


class FlowVersionDetailApi(APIView):
    @extend_schema(responses=FlowVersionDetailSerializer)
    def get(self, request: Request, flow_id: int, number: int) -> Response:
        _user_may(request, "view")
        version = flow_versions_list(flow=flow_get(flow_id=flow_id)).filter(number=number).first()
        if version is None:
            raise FlowVersionNotFound(_("This flow has no version %(number)d.") % {"number": number})
        return Response(FlowVersionDetailSerializer(version).data)


class FlowExportApi(APIView):
    """The draft as a downloadable .json file (the builder's "Export")."""

    @extend_schema(responses={(200, "application/json"): OpenApiTypes.OBJECT})
    def get(self, request: Request, flow_id: int) -> HttpResponse:
        _user_may(request, "view")
        flow = flow_get(flow_id=flow_id)
        body = json.dumps(flow_export(flow=flow), indent=2, ensure_ascii=False)
        response = HttpResponse(body, content_type="application/json; charset=utf-8")
        filename = f"{slugify(flow.name) or 'flow'}-{flow.pk}.json"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


_IMPORT_REQUEST = {
    "multipart/form-data": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}},
    "application/json": OpenApiTypes.OBJECT,
}


def _import_source(request: Request) -> bytes | dict[str, Any]:
    """The uploaded file (multipart "file"), or the JSON body itself."""
    if "file" in request.FILES:
        return flow_import_upload(request.FILES["file"])
    if isinstance(request.data, dict) and ("graph" in request.data or "nodes" in request.data):
        return dict(request.data)
    raise FlowImportInvalid(_("Choose a .json file exported from a flow."), extra={"reason": "missing"})


class FlowImportApi(APIView):
    """Create a new flow from an exported .json file (multipart "file") or a JSON body."""

    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(operation_id="flows_import", request=_IMPORT_REQUEST, responses={201: FlowDetailSerializer})
    def post(self, request: Request) -> Response:
        _user_may(request, "add")
        name = str(request.data.get("name", ""))[:120] if hasattr(request.data, "get") else ""
        flow = flow_import(raw=_import_source(request), name=name)
        return Response(_detail(flow.pk), status=201)


class FlowDraftImportApi(APIView):
    """Replace this flow's draft with an exported .json file; published versions stay as they are."""

    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(operation_id="flows_draft_import", request=_IMPORT_REQUEST, responses=FlowDetailSerializer)
    def post(self, request: Request, flow_id: int) -> Response:
        _user_may(request, "change")
        flow_import(raw=_import_source(request), flow=flow_get(flow_id=flow_id))
        return Response(_detail(flow_id))


class TestReplySerializer(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=["text", "buttons", "list", "template"])
    text = serializers.CharField()
    choices = serializers.ListField(child=serializers.DictField(child=serializers.CharField()), required=False)
    button = serializers.CharField(required=False)
    params = serializers.ListField(child=serializers.CharField(), required=False)


class TestEffectSerializer(serializers.Serializer[Any]):
    kind = serializers.CharField()
    detail = serializers.CharField()


class TestStepSerializer(serializers.Serializer[Any]):
    node_id = serializers.CharField()
    node_type = serializers.CharField()
    branch = serializers.CharField()
    error = serializers.CharField()


class FlowTestRunResultSerializer(serializers.Serializer[Any]):
    started = serializers.BooleanField(help_text="False when the message would not start the flow.")
    notice = serializers.CharField()
    replies = TestReplySerializer(many=True)
    effects = TestEffectSerializer(many=True, help_text="What the flow would do, not done in a test.")
    steps = TestStepSerializer(many=True)
    analysis = serializers.DictField()
    session = serializers.DictField(allow_null=True, help_text="Send it back with the next message.")


class FlowTestRunApi(APIView):
    """One message of a pretend customer through the draft: the replies and the path, nothing sent."""

    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        class Meta:
            ref_name = "FlowTestRunInput"

        text = serializers.CharField(max_length=4096, required=False, allow_blank=True, default="")
        choice_id = serializers.CharField(max_length=256, required=False, allow_blank=True, default="")
        resume = serializers.BooleanField(required=False, default=False)
        # What the previous answer returned as "session"; null starts a new test.
        session = serializers.JSONField(required=False, allow_null=True, default=None)
        # The builder's unsaved canvas; without it the saved draft runs.
        graph = serializers.JSONField(required=False)

    @extend_schema(request=InputSerializer, responses=FlowTestRunResultSerializer)
    def post(self, request: Request, flow_id: int) -> Response:
        _user_may(request, "view")
        flow = flow_get(flow_id=flow_id)
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        values = payload.validated_data
        session = values["session"]
        if session is not None and not isinstance(session, dict):
            raise serializers.ValidationError({"session": [_("The session is an object or null.")]})
        result = flow_test_run(
            graph_data=values.get("graph", flow.draft),
            session=session,
            message=SimulatedMessage(text=values["text"], choice_id=values["choice_id"], resume=values["resume"]),
        )
        return Response(result)
