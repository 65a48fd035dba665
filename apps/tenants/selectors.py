from __future__ import annotations

from datetime import UTC, date, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from apps.tenants.models import Organization


def organization_list_served() -> QuerySet[Organization]:
    """Every business tenant: not the public schema, not the clone template."""
    return Organization.objects.exclude(schema_name=settings.PUBLIC_SCHEMA_NAME).filter(is_template=False)


def organization_schema_names_served() -> list[str]:
    return list(organization_list_served().order_by("schema_name").values_list("schema_name", flat=True))


def organization_current() -> Organization | None:
    """The organization whose schema is in use: the one the connection already holds, else by schema."""
    from django.db import connection

    from apps.core.tenancy import current_schema

    schema = current_schema()
    tenant = getattr(connection, "tenant", None)
    if isinstance(tenant, Organization) and tenant.schema_name == schema:
        return tenant  # set by the middleware, tenant_context or the Celery task: no query
    return Organization.objects.filter(schema_name=schema).first()


def organization_working_language() -> str:
    """The language the business works in (translations go to it)."""
    organization = organization_current()
    return organization.default_language if organization is not None else settings.LANGUAGE_CODE


def zone_named(name: str) -> tzinfo | None:
    """The zone called `name`, or None for what zoneinfo cannot read ("EAT", "Nairobi", "Africa/Nairobi ")."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def organization_zone() -> tzinfo:
    """The organization's time zone (UTC outside a tenant, or for a name zoneinfo cannot read)."""
    organization = organization_current()
    name = str(organization.time_zone) if organization is not None and organization.time_zone else "UTC"
    return zone_named(name) or UTC


def organization_today() -> date:
    """Today's date where the business is (its meters and budgets turn over at its midnight)."""
    return timezone.localdate(timezone=organization_zone())
