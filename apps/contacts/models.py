from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.tenants.models import WhatsAppAccount


class Contact(models.Model):
    """A customer, known by their WhatsApp id."""

    class Consent(models.TextChoices):
        UNKNOWN = "unknown", _("Not asked")
        OPTED_IN = "opted_in", _("Opted in")
        OPTED_OUT = "opted_out", _("Opted out")

    wa_id = models.CharField(_("WhatsApp id"), max_length=32, unique=True)
    profile_name = models.CharField(_("profile name"), max_length=500, blank=True)
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True, verbose_name=_("tags"))
    custom_fields = models.JSONField(_("custom fields"), default=dict, blank=True)
    language = models.CharField(_("language"), max_length=8, blank=True)
    consent = models.CharField(_("marketing consent"), max_length=10, choices=Consent.choices, default=Consent.UNKNOWN)
    first_seen_at = models.DateTimeField(_("first seen"), null=True, blank=True)
    last_seen_at = models.DateTimeField(_("last seen"), null=True, blank=True)
    # No 24-hour window here: WhatsApp keeps one per business number (ServiceWindow).
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        ordering = ["-last_seen_at"]
        indexes = [models.Index(fields=["-last_seen_at"], name="contacts_last_seen_idx")]

    def __str__(self) -> str:
        return f"{self.profile_name or '+' + self.wa_id}"


class ServiceWindow(models.Model):
    """WhatsApp's 24-hour customer service window of one contact on one of the business's numbers.

    Meta keeps it per (customer, business number): a message to number A lets only A send
    free-form messages, so a tenant with several numbers needs one window per number. Every
    conversation of the pair points at this row, so a new conversation on the number sees the
    window an earlier, closed one left open.
    """

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="windows")
    # Cross-schema (tenant -> public): DO_NOTHING, so that deleting in the public schema never
    # looks for this tenant table there; the database constraint still refuses a dangling row.
    account = models.ForeignKey(WhatsAppAccount, on_delete=models.DO_NOTHING, related_name="+")
    # Free-form messages are allowed until 24 hours after the customer's last message to this
    # number. Empty: no message of theirs to it is known (only rows carried over from before
    # windows were kept per number can be empty).
    expires_at = models.DateTimeField(_("24-hour window ends"), null=True, blank=True)

    class Meta:
        verbose_name = _("24-hour window")
        verbose_name_plural = _("24-hour windows")
        constraints = [
            models.UniqueConstraint(fields=["contact", "account"], name="contacts_one_window_per_number"),
        ]

    def __str__(self) -> str:
        return f"{self.contact} ({self.account_id})"

    @property
    def is_open(self) -> bool:
        """Whether free-form messages may be sent on this number now."""
        return self.expires_at is not None and self.expires_at > timezone.now()


class ConsentRecord(models.Model):
    """The ledger behind Contact.consent: who opted in or out, when, how, and the proof."""

    class Action(models.TextChoices):
        OPT_IN = "opt_in", _("Opt in")
        OPT_OUT = "opt_out", _("Opt out")

    class Source(models.TextChoices):
        KEYWORD = "keyword", _("Keyword from the customer")
        ADMIN = "admin", _("Back office")
        API = "api", _("API")
        IMPORT = "import", _("Import")
        FLOW = "flow", _("Flow")

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="consent_records")
    action = models.CharField(max_length=10, choices=Action.choices)
    source = models.CharField(max_length=10, choices=Source.choices)
    evidence = models.TextField(_("evidence"), blank=True, help_text=_("The message, form or file that proves it."))
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("consent record")
        verbose_name_plural = _("consent ledger")
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.contact} {self.action} ({self.source})"
