"""One DRF exception handler: every API error body is {"code", "message", "extra"}."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from apps.core.exceptions import ApplicationError

logger = logging.getLogger(__name__)


def error_body(code: str, message: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "extra": extra or {}}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    if isinstance(exc, ApplicationError):
        set_rollback()
        return Response(error_body(exc.code, exc.message, exc.extra), status=exc.status_code)

    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    if isinstance(exc, exceptions.APIException):
        set_rollback()
        headers: dict[str, str] = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = str(exc.auth_header)  # type: ignore[attr-defined]
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
        if isinstance(exc, exceptions.ValidationError):
            body = error_body("invalid", _("The request is not valid."), {"fields": exc.detail})
        else:
            detail = exc.detail
            code = detail.code if isinstance(detail, exceptions.ErrorDetail) else exc.default_code
            body = error_body(str(code), str(detail))
        return Response(body, status=exc.status_code, headers=headers)

    # Anything else is a bug: log it with its context and answer in the same shape.
    view = context.get("view")
    logger.exception("Unhandled API error in %s", type(view).__name__ if view else "unknown view")
    set_rollback()
    return Response(
        error_body("server_error", _("Something went wrong on our side. Please try again.")),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
