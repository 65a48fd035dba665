"""A typed face for the django-tenants calls the project uses."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from django.conf import settings
from django.db import connection
from django_tenants import utils as _utils


def current_schema() -> str:
    """The schema the default connection is set to (the tenant the code runs for)."""
    return str(getattr(connection, "schema_name", settings.PUBLIC_SCHEMA_NAME))


def is_public_schema() -> bool:
    return current_schema() == settings.PUBLIC_SCHEMA_NAME


def use_public_schema() -> None:
    connection.set_schema_to_public()  # type: ignore[attr-defined]


def schema_context(schema_name: str) -> AbstractContextManager[Any]:
    return _utils.schema_context(schema_name)  # type: ignore[no-any-return, unused-ignore]


def tenant_context(tenant: Any) -> AbstractContextManager[Any]:
    return _utils.tenant_context(tenant)  # type: ignore[no-any-return, unused-ignore]


def schema_exists(schema_name: str) -> bool:
    return bool(_utils.schema_exists(schema_name))


def tenant_storage_path(*parts: str) -> str:
    """A storage name under the current tenant's own folder (`tenants/<schema>/...`).

    Every tenant's files live under one prefix: deleting a tenant deletes that folder, and an
    S3 bucket policy or a backup can be scoped to it.
    """
    return "/".join(["tenants", current_schema(), *parts])
