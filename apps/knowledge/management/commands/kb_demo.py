from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from apps.core.tenancy import tenant_context
from apps.knowledge.models import Article, Document
from apps.tenants.models import Organization

DEMO_KB = Path(settings.BASE_DIR) / "fixtures" / "demo_kb"


class Command(BaseCommand):
    help = "Give a tenant the demo knowledge base (fixtures/demo_kb) unless it already has content."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="The organization's slug, e.g. demo")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = Organization.objects.get(slug=options["tenant"])
        with tenant_context(organization):
            if Document.objects.exists() or Article.objects.exists():
                self.stdout.write("The knowledge base already has content; nothing imported.")
                return
        call_command("kb_import", str(DEMO_KB), tenant=options["tenant"], stdout=self.stdout)
