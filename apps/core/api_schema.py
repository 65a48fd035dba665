"""OpenAPI pieces the APIs share: the limit/offset pages of the list endpoints."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers

PAGE_PARAMETERS = [
    OpenApiParameter("limit", OpenApiTypes.INT, description="Results per page (50 by default, at most 200)."),
    OpenApiParameter("offset", OpenApiTypes.INT, description="Results to skip."),
]


def page_of(name: str, item: serializers.Serializer[Any]) -> serializers.Serializer[Any]:
    """The body of a LimitOffsetPagination page whose `results` are `item`s (pass `many=True`)."""
    return inline_serializer(
        name=name,
        fields={
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": item,
        },
    )


_ERROR = {
    "type": "object",
    "properties": {
        "code": {"type": "string", "description": "Stable, for programs: `invalid`, `not_found`, …"},
        "message": {"type": "string", "description": "For people, in the caller's language."},
        "extra": {"type": "object", "additionalProperties": {}, "description": "`fields` for `invalid`."},
    },
    "required": ["code", "message", "extra"],
}


def error_responses(result: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
    """Postprocessing hook: document the error answers of `apps.core.api_errors` on every operation."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = _ERROR
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            places = {parameter.get("in") for parameter in operation.get("parameters", [])}
            answers: dict[str, str] = {}
            if operation.get("requestBody") or "query" in places:
                answers["400"] = "Bad input; `extra.fields` names the fields."
            if any(operation.get("security", [{}])):
                answers["401"] = "No valid token or session."
                answers["403"] = "The caller's role does not allow this."
            if "path" in places:
                answers["404"] = "No such object, or not one the caller may see."
                if method != "get":
                    answers["409"] = "The object's state does not allow this now."
            responses = operation.setdefault("responses", {})
            for status_code, description in answers.items():
                responses.setdefault(status_code, {"description": description, **error})
    return result
