"""The one error type services raise; the API maps it to HTTP."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A failure the caller can act on, with a stable machine-readable code."""

    code: str = "application_error"
    status_code: int = 400

    def __init__(self, message: str, *, code: str | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.extra: dict[str, Any] = extra or {}


class NotFoundError(ApplicationError):
    code = "not_found"
    status_code = 404


class ConflictError(ApplicationError):
    code = "conflict"
    status_code = 409


class PermissionDeniedError(ApplicationError):
    code = "permission_denied"
    status_code = 403


class RetryLater(ApplicationError):
    """The work cannot proceed right now (another worker holds it); a task retries it shortly."""

    code = "retry_later"
    status_code = 409
