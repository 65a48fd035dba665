from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet

from apps.tenants.models import Organization


def organization_list_served() -> QuerySet[Organization]:
    """Every business tenant: not the public schema, not the clone template."""
    return Organization.objects.exclude(schema_name=settings.PUBLIC_SCHEMA_NAME).filter(is_template=False)


def organization_schema_names_served() -> list[str]:
    return list(organization_list_served().order_by("schema_name").values_list("schema_name", flat=True))
