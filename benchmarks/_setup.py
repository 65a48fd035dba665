"""Shared set-up for the benchmarks that need the database."""

from __future__ import annotations

from django.conf import settings
from django.core.management import call_command

from apps.tenants.services import platform_ensure, template_ensure


def database_ready() -> None:
    """Migrate the shared schema and create the platform host and tenant template, idempotently.

    A benchmark then works against a fresh database (`make bench` on a new machine) as well
    as against one that `make run` already set up.
    """
    call_command("migrate_schemas", "--shared", "--noinput", verbosity=0)
    platform_ensure(public_domain=settings.PUBLIC_DOMAIN)
    template_ensure()
