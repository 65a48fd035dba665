"""Who may connect a WhatsApp number: only whoever proves it is theirs.

The routing table (`tenants.WhatsAppAccount`) is shared by every tenant, and Meta's webhooks,
signed with the platform's app secret, follow it. A number registered by someone who does not
own it would receive its customers' messages, and keep its real owner out. So:

- a Cloud number is saved (new, or with another phone number ID, access token or transport)
  only once Meta has answered `GET /{phone-number-id}` with that token, which it does only for
  a token of the WhatsApp Business account that owns the number;
- a sandbox number sends nothing to Meta and proves nothing, so its ID must contain a letter:
  Meta's phone number IDs are digits only, so a sandbox number can never shadow a real one.

The back offices' number form (`admin.WhatsAppAccountForm`) calls `whatsapp_number_claim_check`.
Numbers created in code (`demo_setup`, tests) are trusted and not checked.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from django.utils import timezone
from django.utils.translation import gettext as _

from apps.core.exceptions import ApplicationError
from apps.tenants.models import WhatsAppAccount
from apps.whatsapp.client import GraphApiError, PhoneNumberInfo, WhatsAppClient

logger = logging.getLogger(__name__)

# Meta's phone number IDs are Graph object IDs: digits only. Checked before the ID goes into a URL.
CLOUD_ID = re.compile(r"[0-9]{1,64}")
# A WhatsApp Business account ID goes into a Graph URL as well (Meta's are digits).
WABA_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# A sandbox ID has a letter (so it is never Meta's) and nothing that needs escaping anywhere.
SANDBOX_ID = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9._-]{1,64}")


class WhatsAppNumberIdInvalid(ApplicationError):
    code = "whatsapp_number_id_invalid"


class WhatsAppNumberNotVerified(ApplicationError):
    code = "whatsapp_number_not_verified"


class WhatsAppBusinessAccountInvalid(ApplicationError):
    code = "whatsapp_business_account_invalid"


class WhatsAppNumberVerifyUnavailable(ApplicationError):
    code = "whatsapp_number_verify_unavailable"
    status_code = 503


@dataclass(frozen=True)
class NumberClaim:
    """The number as it would be saved; `stored` is the row before the change (None when new)."""

    phone_number_id: str
    transport: str
    access_token: str
    stored: WhatsAppAccount | None = None
    waba_id: str = ""

    @property
    def needs_proof(self) -> bool:
        stored = self.stored
        return (
            stored is None
            or stored.phone_number_id != self.phone_number_id
            or stored.transport != self.transport
            or stored.waba_id != self.waba_id
            or (self.transport == WhatsAppAccount.Transport.CLOUD and stored.access_token != self.access_token)
        )


def whatsapp_number_id_check(*, phone_number_id: str, transport: str) -> None:
    """Refuse an ID a number of this transport cannot have."""
    if transport == WhatsAppAccount.Transport.SANDBOX:
        if not SANDBOX_ID.fullmatch(phone_number_id):
            raise WhatsAppNumberIdInvalid(
                _(
                    "A sandbox number's ID must contain a letter, and only letters, digits, dots, dashes and "
                    "underscores (for example shop-sandbox): real WhatsApp numbers have IDs made of digits only, "
                    "and a sandbox number must never take one."
                ),
                extra={"transport": transport},
            )
    elif not CLOUD_ID.fullmatch(phone_number_id):
        raise WhatsAppNumberIdInvalid(
            _(
                "A WhatsApp phone number ID is made of digits only: copy it from Meta's API Setup page "
                "(it is not the phone number itself)."
            ),
            extra={"transport": transport},
        )


def _unreachable(exc: GraphApiError) -> WhatsAppNumberVerifyUnavailable:
    return WhatsAppNumberVerifyUnavailable(
        _("WhatsApp could not be reached to verify this number, so nothing was saved. Try again in a few minutes."),
        extra={"status": exc.status, "graph_code": exc.code},
    )


def whatsapp_number_verify(
    *, phone_number_id: str, access_token: str, client: WhatsAppClient | None = None
) -> PhoneNumberInfo:
    """Read the number from Meta with this token; refuse unless Meta shows it to that token."""
    client = client or WhatsAppClient(phone_number_id=phone_number_id, access_token=access_token)
    try:
        info = client.phone_number_info()
    except GraphApiError as exc:
        # Never log the token. Meta's message names the ID, which the admin typed.
        logger.info("whatsapp number %s not verified: %s", phone_number_id, exc)
        if exc.retryable:
            raise _unreachable(exc) from exc
        raise WhatsAppNumberNotVerified(
            _(
                "This access token cannot read this phone number ID on WhatsApp. Use the phone number ID from "
                "Meta's API Setup page and a token of the WhatsApp Business account that owns the number."
            ),
            extra={"status": exc.status, "graph_code": exc.code},
        ) from exc
    if info.id != phone_number_id:
        logger.warning("whatsapp number %s: Meta answered for %s", phone_number_id, info.id)
        raise WhatsAppNumberNotVerified(
            _("WhatsApp answered for another number than this phone number ID. Check the ID."),
            extra={"graph_id": info.id},
        )
    return info


def whatsapp_number_claim_check(*, claim: NumberClaim, client: WhatsAppClient | None = None) -> PhoneNumberInfo | None:
    """Refuse a number its editor has not proven theirs; Meta's details when a Cloud number was verified.

    A change that touches neither the ID, the transport nor a Cloud number's token proves
    nothing again, so a stored number stays editable while Meta is down.
    """
    if not claim.needs_proof:
        return None
    whatsapp_number_id_check(phone_number_id=claim.phone_number_id, transport=claim.transport)
    if claim.transport != WhatsAppAccount.Transport.CLOUD:
        if claim.waba_id:
            # Template webhooks are routed by account ID: a sandbox number, which proves nothing,
            # must not name one (it would receive that business's template events).
            raise WhatsAppBusinessAccountInvalid(
                _("A sandbox number has no WhatsApp Business account: leave the account ID empty."),
                extra={"transport": claim.transport},
            )
        return None
    return whatsapp_cloud_number_verify(
        phone_number_id=claim.phone_number_id, access_token=claim.access_token, waba_id=claim.waba_id, client=client
    )


def whatsapp_cloud_number_verify(
    *, phone_number_id: str, access_token: str, waba_id: str, client: WhatsAppClient | None = None
) -> PhoneNumberInfo:
    """Meta reads the number with this token and, when one is named, lists it in that business account."""
    client = client or WhatsAppClient(phone_number_id=phone_number_id, access_token=access_token)
    info = whatsapp_number_verify(phone_number_id=phone_number_id, access_token=access_token, client=client)
    if waba_id:
        whatsapp_business_account_verify(phone_number_id=phone_number_id, waba_id=waba_id, client=client)
    return info


def whatsapp_business_account_verify(*, phone_number_id: str, waba_id: str, client: WhatsAppClient) -> None:
    """Refuse an account ID unless Meta lists the number among that account's numbers, for this token.

    Template webhooks are routed by account ID (apps.whatsapp.webhooks): naming another
    business's account would deliver its template events (names, statuses, reasons) here.
    """
    if not WABA_ID.fullmatch(waba_id):
        raise WhatsAppBusinessAccountInvalid(
            _("This is not a WhatsApp Business account ID: copy it from Meta's API Setup page."),
            extra={"waba_id": waba_id},
        )
    try:
        numbers = client.business_account_numbers(waba_id)
    except GraphApiError as exc:
        logger.info("whatsapp business account %s not verified for %s: %s", waba_id, phone_number_id, exc)
        if exc.retryable:
            raise _unreachable(exc) from exc
        numbers = set()
    if phone_number_id not in numbers:
        raise WhatsAppBusinessAccountInvalid(
            _(
                "This phone number is not in that WhatsApp Business account, or the access token cannot "
                "read the account. Use the account ID shown with the number on Meta's API Setup page."
            ),
            extra={"waba_id": waba_id},
        )


@dataclass(frozen=True)
class Reverified:
    account: WhatsAppAccount
    error: ApplicationError | None  # None: Meta confirmed the number (and its account)
    switched_off: bool = False


def whatsapp_numbers_reverify(*, only_unverified: bool = True, switch_off: bool = False) -> list[Reverified]:
    """Check stored Cloud numbers with Meta, as the number form does (numbers saved before it checked).

    Confirmed numbers get Meta's details; refused ones are reported and, with `switch_off`,
    switched off (their webhooks still arrive and are kept, but nothing is sent from them).
    Meta unreachable is reported and changes nothing.
    """
    accounts = WhatsAppAccount.objects.filter(transport=WhatsAppAccount.Transport.CLOUD).order_by("pk")
    if only_unverified:
        accounts = accounts.filter(verified_at__isnull=True)
    results: list[Reverified] = []
    for account in accounts:
        try:
            info = whatsapp_cloud_number_verify(
                phone_number_id=account.phone_number_id, access_token=account.access_token, waba_id=account.waba_id
            )
        except WhatsAppNumberVerifyUnavailable as exc:
            results.append(Reverified(account, exc))
            continue
        except ApplicationError as exc:
            logger.warning("whatsapp number %s (tenant %s) refused by Meta: %s", account, account.tenant_id, exc.code)
            if switch_off and account.is_active:
                WhatsAppAccount.objects.filter(pk=account.pk).update(is_active=False)
            results.append(Reverified(account, exc, switched_off=switch_off))
            continue
        account.verified_name = info.verified_name
        account.verified_at = timezone.now()
        account.save(update_fields=["verified_name", "verified_at"])
        results.append(Reverified(account, None))
    return results
