from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.tenants.services import platform_ensure, template_ensure


class Command(BaseCommand):
    help = "Create (idempotently) the platform's own host (PUBLIC_DOMAIN) and the template new tenants are cloned from."

    def handle(self, *args: Any, **options: Any) -> None:
        platform_ensure(public_domain=settings.PUBLIC_DOMAIN)
        template_ensure()
        self.stdout.write(self.style.SUCCESS(f"Platform ready at {settings.PUBLIC_DOMAIN}."))
