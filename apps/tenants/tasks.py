from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from apps.core.tenancy import current_schema
from apps.tenants.selectors import organization_schema_names_served
from imaradesk.celery import app

logger = logging.getLogger(__name__)


@shared_task
def tenants_fan_out_task(task_name: str, args: list[Any] | None = None) -> int:
    """Send a periodic task once per tenant; each copy runs in that tenant's schema."""
    schemas = organization_schema_names_served()
    for schema in schemas:
        # tenant-schemas-celery reads the schema to run in from this header.
        app.send_task(task_name, args=args or [], headers={"_schema_name": schema})
    logger.info("fanned out %s to %d tenants (from schema %s)", task_name, len(schemas), current_schema())
    return len(schemas)
