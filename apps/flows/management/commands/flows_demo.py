from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.core.tenancy import tenant_context
from apps.flows.samples import flow_samples_install
from apps.tenants.models import Organization


class Command(BaseCommand):
    help = "Give a tenant the sample flows (Order status, Book an appointment); existing ones are left alone."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="The organization's slug, e.g. demo")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = Organization.objects.get(slug=options["tenant"])
        with tenant_context(organization):
            installed = flow_samples_install()
        if installed:
            self.stdout.write(f"Sample flows published: {', '.join(flow.name for flow in installed)}.")
        else:
            self.stdout.write("The sample flows are already there; nothing changed.")
