from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.exceptions import ApplicationError
from apps.core.tenancy import tenant_context
from apps.tenants.models import Organization
from apps.whatsapp.client import GraphApiError
from apps.whatsapp.message_templates import message_templates_accounts, message_templates_sync


class Command(BaseCommand):
    help = "Fetch the message templates of a tenant's WhatsApp numbers from Meta (sandbox numbers get samples)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="The organization's slug, e.g. demo")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = Organization.objects.filter(slug=options["tenant"]).first()
        if organization is None:
            raise CommandError(f"No organization with the slug {options['tenant']!r}.")
        with tenant_context(organization):
            for account in message_templates_accounts():
                try:
                    report = message_templates_sync(account=account)
                except (GraphApiError, ApplicationError) as exc:
                    self.stderr.write(f"{account}: {exc}")
                    continue
                self.stdout.write(
                    f"{account}: {report.total} templates ({report.created} new, {report.removed} removed)"
                )
