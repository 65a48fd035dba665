from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils.translation import gettext_lazy as _


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
    # Free-form messages are allowed until 24 hours after the customer's last message.
    window_expires_at = models.DateTimeField(_("24-hour window ends"), null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        ordering = ["-last_seen_at"]
        indexes = [models.Index(fields=["-last_seen_at"], name="contacts_last_seen_idx")]

    def __str__(self) -> str:
        return f"{self.profile_name or '+' + self.wa_id}"


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
