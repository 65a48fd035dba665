"""Tenant schemas: created by cloning a migrated template schema instead of migrating.

Running every migration for each new tenant costs a second and grows with every app;
cloning a template costs a fraction of that (benchmarks/tenant_create.py). The template
is an Organization row of its own (`is_template`), so `migrate_schemas` migrates it with
every tenant. Before cloning, its applied migrations are compared with the code's: a
template that is behind is migrated first, so a clone is never silently out of date.
"""

from __future__ import annotations

import logging
from functools import cache

from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django_tenants.clone import CloneSchema

from apps.core.tenancy import use_public_schema

logger = logging.getLogger(__name__)

TEMPLATE_SCHEMA = "tenant_template"


@cache
def migrations_on_disk() -> frozenset[tuple[str, str]]:
    """Every migration of the installed apps (the code cannot change under a running process)."""
    return frozenset(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)


def schema_migrations_applied(schema_name: str) -> set[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT app, name FROM "{schema_name}".django_migrations')  # noqa: S608 - a validated schema name
        return {(app, name) for app, name in cursor.fetchall()}


def template_migrate_if_behind() -> bool:
    """Bring the template up to the code's migrations; say whether anything had to run."""
    missing = migrations_on_disk() - schema_migrations_applied(TEMPLATE_SCHEMA)
    if not missing:
        return False
    logger.warning("Template schema is %d migrations behind; migrating it before cloning", len(missing))
    call_command("migrate_schemas", schema_name=TEMPLATE_SCHEMA, interactive=False, verbosity=0)
    use_public_schema()
    return True


class _TemplateClone(CloneSchema):
    """django-tenants' clone, without re-creating its 4,500-line SQL function on every call."""

    _function_ready_for: set[str] = set()

    def _create_clone_schema_function(self) -> None:
        database = str(connection.settings_dict["NAME"])
        if database not in self._function_ready_for:
            super()._create_clone_schema_function()
            self._function_ready_for.add(database)


def schema_clone_from_template(schema_name: str) -> None:
    template_migrate_if_behind()
    _TemplateClone().clone_schema(TEMPLATE_SCHEMA, schema_name, "DATA")
    use_public_schema()
