from __future__ import annotations

from apps.core.exceptions import ApplicationError, ConflictError


class UserEmailTaken(ConflictError):
    code = "user_email_taken"


class RoleUnknown(ApplicationError):
    code = "role_unknown"


class CredentialsInvalid(ApplicationError):
    code = "credentials_invalid"
