from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.models import AgentProfile, Team, User
from apps.accounts.roles import ADMIN
from apps.accounts.services import user_create
from apps.core.tenancy import schema_context, tenant_context
from apps.tenants.models import Domain, WhatsAppAccount
from apps.tenants.services import organization_create, platform_ensure, template_ensure

DEMO_SLUG = "demo"
DEMO_PHONE_NUMBER_ID = "demo-sandbox-number"
DEMO_DATA = Path(settings.BASE_DIR) / "fixtures" / "demo.json"


def _ensure_user(email: str, password: str, *, role: str | None, superuser: bool = True, **fields: Any) -> User:
    user = User.objects.filter(username=email).first()
    if user is None:
        if role is None:
            return User.objects.create_superuser(username=email, email=email, password=password)
        return user_create(email=email, password=password, role=role, is_superuser=superuser, **fields)
    # Re-running resets the demo password, so the printed credentials always work.
    user.set_password(password)
    user.is_active = True
    user.save(update_fields=["password", "is_active"])
    return user


def _ensure_demo_team(password: str, domain: str) -> list[str]:
    """Teams and one person per role (fixtures/demo.json), so every screen has someone in it."""
    data = json.loads(DEMO_DATA.read_text(encoding="utf-8"))
    teams = {name: Team.objects.get_or_create(name=name)[0] for name in data["teams"]}
    emails = []
    for person in data["users"]:
        email = person["email"].replace("demo.localhost", domain)
        user = _ensure_user(
            email,
            password,
            role=person["role"],
            superuser=False,
            first_name=person["first_name"],
            last_name=person["last_name"],
        )
        for team in person["teams"]:
            teams[team].members.add(user)
        AgentProfile.objects.filter(user=user).update(
            languages=person["languages"], max_concurrent_chats=person.get("max_concurrent_chats", 5)
        )
        emails.append(f"{email} ({person['role']})")
    return emails


class Command(BaseCommand):
    help = "Create (idempotently) the platform host, the clone template and the demo tenant with its admin."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))

    def handle(self, *args: Any, **options: Any) -> None:
        password = os.environ.get("DEMO_PASSWORD", "")
        if not password:
            if not settings.DEBUG:
                raise CommandError("Set DEMO_PASSWORD: a well-known demo password is refused when DEBUG is off.")
            password = "imaradesk-demo"  # noqa: S105 - the documented development-only demo password
        public_domain = settings.PUBLIC_DOMAIN
        demo_domain = f"{DEMO_SLUG}.{public_domain}"
        demo_email = f"admin@{demo_domain}"
        platform_email = f"platform@{public_domain}"

        platform_ensure(public_domain=public_domain)
        template_ensure()
        with schema_context(settings.PUBLIC_SCHEMA_NAME):
            _ensure_user(platform_email, password, role=None)
            domain = Domain.objects.select_related("tenant").filter(domain=demo_domain).first()
        if domain is None:
            organization_create(slug=DEMO_SLUG, name="Demo Business", domain=demo_domain)
            with schema_context(settings.PUBLIC_SCHEMA_NAME):
                domain = Domain.objects.select_related("tenant").get(domain=demo_domain)
        with tenant_context(domain.tenant):
            _ensure_user(demo_email, password, role=ADMIN)
            team = _ensure_demo_team(password, demo_domain)
        # A sandbox number: messages are recorded, not sent, and the simulator talks to it.
        WhatsAppAccount.objects.get_or_create(
            phone_number_id=DEMO_PHONE_NUMBER_ID,
            defaults={
                "tenant": domain.tenant,
                "name": "Demo Business (sandbox)",
                "display_phone_number": "+254 700 000 000",
                "transport": WhatsAppAccount.Transport.SANDBOX,
            },
        )

        # The demo's knowledge base, for the bot's first answers. By name: the knowledge app
        # sits above this one (layering), and the command is a no-op once content exists.
        call_command("kb_demo", tenant=DEMO_SLUG, stdout=self.stdout)
        # Starter SLA policies, so hand-off tickets show countdowns in the ticket queue.
        call_command("sla_defaults", tenant=DEMO_SLUG, stdout=self.stdout)
        # Two sample flows to open in the builder and try (by name, for the same reason).
        call_command("flows_demo", tenant=DEMO_SLUG, stdout=self.stdout)
        # Sample templates for the sandbox number, for conversations past the 24-hour window.
        call_command("templates_sync", tenant=DEMO_SLUG, stdout=self.stdout)

        port = options["port"]
        self.stdout.write(self.style.SUCCESS("Demo ready."))
        self.stdout.write(f"  Demo tenant back office: http://{demo_domain}:{port}/admin/  ({demo_email} / {password})")
        self.stdout.write(
            f"  Platform back office:    http://{public_domain}:{port}/admin/  ({platform_email} / {password})"
        )
        self.stdout.write(f"  Agents' inbox:           http://{demo_domain}:{port}/inbox/")
        self.stdout.write(f"  Ticket queue (SLAs):     http://{demo_domain}:{port}/tickets/")
        self.stdout.write(f"  WhatsApp simulator:      http://{demo_domain}:{port}/simulator/  (sign in first)")
        self.stdout.write(f"  Health:                  http://{public_domain}:{port}/healthz")
        self.stdout.write(f"  Demo team (same password): {', '.join(team)}")
