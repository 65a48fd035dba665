from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.conversations.simulator import (
    CustomerReply,
    SimulatorUnavailable,
    simulator_account,
    simulator_send,
    simulator_thread,
)
from apps.core.tenancy import tenant_context
from apps.tenants.models import Organization


class Command(BaseCommand):
    help = (
        "Chat as a WhatsApp customer with a tenant's sandbox number. Type a message and press Enter; "
        "type #N to tap button or list row N of the last reply; Ctrl-D to quit."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="The organization's slug, e.g. demo")
        parser.add_argument("--wa-id", default="254700000001", help="The customer's number (digits only)")
        parser.add_argument("--name", default="Test customer")
        parser.add_argument("--wait", type=float, default=3.0, help="Seconds to wait for replies after each message")
        parser.add_argument("--message", action="append", help="Send these messages and exit (repeatable)")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = Organization.objects.filter(slug=options["tenant"], is_template=False).first()
        if organization is None:
            raise CommandError(f"No organization with the slug {options['tenant']!r}.")
        try:
            account = simulator_account(tenant_id=organization.pk)
        except SimulatorUnavailable as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Chatting with {account.name} as +{options['wa_id']}. Ctrl-D to quit.")
        seen: set[int] = set()
        choices: list[CustomerReply] = []
        lines = options["message"] or sys.stdin
        for raw in lines:
            text = raw.strip()
            if not text:
                continue
            reply = None
            if text.startswith("#") and text[1:].isdigit():
                index = int(text[1:]) - 1
                if not 0 <= index < len(choices):
                    self.stdout.write(self.style.WARNING("No such choice."))
                    continue
                reply = choices[index]
            try:
                simulator_send(account=account, wa_id=options["wa_id"], name=options["name"], text=text, reply=reply)
            except SimulatorUnavailable as exc:
                raise CommandError(exc.message) from exc
            choices = self._print_replies(organization, account, options, seen)
        self.stdout.write("Bye.")

    def _print_replies(
        self, organization: Organization, account: Any, options: dict[str, Any], seen: set[int]
    ) -> list[CustomerReply]:
        deadline = time.monotonic() + options["wait"]
        choices: list[CustomerReply] = []
        while time.monotonic() < deadline:
            with tenant_context(organization):
                thread = simulator_thread(account=account, wa_id=options["wa_id"])
            for message in thread:
                if message["id"] in seen:
                    continue
                seen.add(message["id"])
                who = "you" if message["from_customer"] else "business"
                self.stdout.write(f"[{who}] {message['text']}")
                for button in message.get("buttons", []):
                    choices.append(CustomerReply("button_reply", button["id"], button["title"]))
                    self.stdout.write(f"    #{len(choices)} [{button['title']}]")
                for section in (message.get("list") or {}).get("sections", []):
                    for row in section.get("rows", []):
                        choices.append(CustomerReply("list_reply", row["id"], row["title"]))
                        self.stdout.write(f"    #{len(choices)} {row['title']}  {row.get('description', '')}")
            time.sleep(0.3)
        return choices
