from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from apps.contacts.models import ConsentRecord, Contact

WINDOW = timedelta(hours=24)


def contact_seen(*, wa_id: str, profile_name: str, at: datetime) -> Contact:
    """Upsert a contact from an inbound message: names, first/last seen, the 24-hour window."""
    contact, created = Contact.objects.select_for_update().get_or_create(
        wa_id=wa_id,
        defaults={
            "profile_name": profile_name,
            "first_seen_at": at,
            "last_seen_at": at,
            "window_expires_at": at + WINDOW,
        },
    )
    if created:
        return contact
    changed: list[str] = []
    if profile_name and profile_name != contact.profile_name:
        contact.profile_name = profile_name
        changed.append("profile_name")
    # Webhooks may arrive out of order: only a later message moves these forward.
    if contact.last_seen_at is None or at > contact.last_seen_at:
        contact.last_seen_at = at
        contact.window_expires_at = at + WINDOW
        changed += ["last_seen_at", "window_expires_at"]
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


def contact_window_is_open(*, contact: Contact, now: datetime | None = None) -> bool:
    return contact.window_expires_at is not None and contact.window_expires_at > (now or timezone.now())
