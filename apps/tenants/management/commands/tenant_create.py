from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.exceptions import ApplicationError
from apps.tenants.models import Organization
from apps.tenants.services import organization_create


class Command(BaseCommand):
    help = "Create an organization (tenant) with its schema, domain, roles and first admin."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--domain", required=True)
        parser.add_argument("--admin-email")
        parser.add_argument("--admin-password", help="Generated and printed when omitted.")
        parser.add_argument("--plan", default=Organization.Plan.FREE, choices=Organization.Plan.values)
        parser.add_argument("--time-zone", default="UTC")
        parser.add_argument("--language", default="en")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        try:
            created = organization_create(
                slug=options["slug"],
                name=options["name"],
                domain=options["domain"],
                plan=options["plan"],
                time_zone=options["time_zone"],
                default_language=options["language"],
                admin_email=options["admin_email"],
                admin_password=options["admin_password"],
            )
        except ApplicationError as exc:
            raise CommandError(f"{exc.message} [{exc.code}]") from exc
        elapsed = time.perf_counter() - started
        org = created.organization
        self.stdout.write(
            self.style.SUCCESS(
                f"Created {org.name} (schema {org.schema_name}) at {created.domain.domain} in {elapsed:.2f}s"
            )
        )
        if created.admin is not None:
            self.stdout.write(f"Admin: {created.admin.email} / {created.admin_password}")
