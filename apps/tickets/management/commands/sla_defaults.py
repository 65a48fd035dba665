from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.core.tenancy import tenant_context
from apps.tenants.models import Organization
from apps.tickets.services.defaults import sla_policies_default_create


class Command(BaseCommand):
    help = "Give a tenant starter SLA policies (one per priority, around the clock) unless it has policies."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="The organization's slug, e.g. demo")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = Organization.objects.get(slug=options["tenant"])
        with tenant_context(organization):
            created = sla_policies_default_create()
        if created:
            self.stdout.write(f"Created {len(created)} starter SLA policies.")
        else:
            self.stdout.write("The business has SLA policies already; nothing created.")
