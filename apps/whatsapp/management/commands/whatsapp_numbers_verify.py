from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.whatsapp.numbers import WhatsAppNumberVerifyUnavailable, whatsapp_numbers_reverify


class Command(BaseCommand):
    help = (
        "Check with Meta that every Cloud number's token reads it (and that it is in the WhatsApp Business "
        "account it names). For numbers connected before the check existed; run it after upgrading."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--all", action="store_true", help="Check verified numbers again too (default: only those never verified)."
        )
        parser.add_argument(
            "--switch-off",
            action="store_true",
            help=(
                "Switch off the numbers Meta refuses (nothing is sent from them). A number that is not its "
                "tenant's should then be deleted in the platform back office: its messages still reach that tenant."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        results = whatsapp_numbers_reverify(only_unverified=not options["all"], switch_off=options["switch_off"])
        refused = 0
        for result in results:
            if result.error is None:
                self.stdout.write(f"verified: {result.account} ({result.account.verified_name})")
            elif isinstance(result.error, WhatsAppNumberVerifyUnavailable):
                self.stderr.write(f"not checked (Meta unreachable): {result.account}")
            else:
                refused += 1
                action = " (switched off)" if result.switched_off else ""
                self.stderr.write(f"REFUSED{action}: {result.account}: {result.error.message}")
        self.stdout.write(f"{len(results)} number(s) checked, {refused} refused")
