from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction

from apps.contacts.models import ConsentRecord, Contact, ServiceWindow
from apps.tenants.models import WhatsAppAccount

WINDOW = timedelta(hours=24)


def contact_seen(*, wa_id: str, profile_name: str, at: datetime) -> Contact:
    """Upsert a contact from an inbound message: names, first and last seen.

    The 24-hour window is the number's, not the contact's: see `service_window_extend`.
    """
    contact, created = Contact.objects.select_for_update().get_or_create(
        wa_id=wa_id,
        defaults={"profile_name": profile_name, "first_seen_at": at, "last_seen_at": at},
    )
    if created:
        return contact
    changed: list[str] = []
    if profile_name and profile_name != contact.profile_name:
        contact.profile_name = profile_name
        changed.append("profile_name")
    # Webhooks may arrive out of order: only a later message moves it forward.
    if contact.last_seen_at is None or at > contact.last_seen_at:
        contact.last_seen_at = at
        changed.append("last_seen_at")
    if contact.first_seen_at is None or at < contact.first_seen_at:
        contact.first_seen_at = at
        changed.append("first_seen_at")
    if changed:
        contact.save(update_fields=changed)
    return contact


@transaction.atomic
def contact_consent_set(*, contact: Contact, action: str, source: str, evidence: str = "") -> ConsentRecord:
    """Record an opt-in or opt-out in the ledger and update the contact's current consent."""
    record = ConsentRecord.objects.create(contact=contact, action=action, source=source, evidence=evidence[:5000])
    contact.consent = Contact.Consent.OPTED_IN if action == ConsentRecord.Action.OPT_IN else Contact.Consent.OPTED_OUT
    contact.save(update_fields=["consent"])
    return record


@transaction.atomic
def service_window_extend(*, contact: Contact, account: WhatsAppAccount, at: datetime) -> ServiceWindow:
    """The customer wrote to this number at `at`: its window ends 24 hours later, never earlier than it did.

    Only this number's window moves: a message to another number of the business opens that
    one's (WhatsApp answers 131047 to free text on a number the customer has not written to).
    """
    # Locked, so that two messages of the customer recorded at once keep the later end.
    window, created = ServiceWindow.objects.select_for_update().get_or_create(
        contact=contact, account=account, defaults={"expires_at": at + WINDOW}
    )
    # Webhooks may arrive out of order: an older message delivered late does not shorten it.
    if not created and (window.expires_at is None or at + WINDOW > window.expires_at):
        window.expires_at = at + WINDOW
        window.save(update_fields=["expires_at"])
    window.contact, window.account = contact, account  # the same rows: no query to read them again
    return window
