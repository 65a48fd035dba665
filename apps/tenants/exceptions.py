from __future__ import annotations

from apps.core.exceptions import ApplicationError, ConflictError


class OrganizationSlugInvalid(ApplicationError):
    code = "organization_slug_invalid"


class OrganizationSlugTaken(ConflictError):
    code = "organization_slug_taken"


class DomainTaken(ConflictError):
    code = "domain_taken"


class DomainInvalid(ApplicationError):
    code = "domain_invalid"


class OrganizationSettingInvalid(ApplicationError):
    code = "organization_setting_invalid"
