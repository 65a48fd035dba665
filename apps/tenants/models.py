from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django_tenants.models import DomainMixin, TenantMixin
from django_tenants.utils import schema_exists

from apps.core.crypto import EncryptedTextField

TIME_ZONE_CHOICES = [(tz, tz) for tz in sorted(zoneinfo.available_timezones())]


class Organization(TenantMixin):
    """A business using Imaradesk: one PostgreSQL schema each."""

    class Plan(models.TextChoices):
        FREE = "free", _("Free")
        STARTER = "starter", _("Starter")
        GROWTH = "growth", _("Growth")
        ENTERPRISE = "enterprise", _("Enterprise")

    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=50, unique=True)
    plan = models.CharField(_("plan"), max_length=20, choices=Plan.choices, default=Plan.FREE)
    time_zone = models.CharField(_("time zone"), max_length=64, choices=TIME_ZONE_CHOICES, default="UTC")
    default_language = models.CharField(_("default language"), max_length=8, choices=settings.LANGUAGES, default="en")
    # The schema new tenants are cloned from; kept migrated with the others, never served.
    is_template = models.BooleanField(default=False, editable=False)
    created = models.DateTimeField(_("created"), auto_now_add=True)

    auto_create_schema = True
    auto_drop_schema = True

    def create_schema(self, check_if_exists: bool = False, sync_schema: bool = True, verbosity: int = 1) -> bool | None:
        """Clone a business's schema from the template; the template itself is migrated."""
        from apps.tenants import schemas

        if self.is_template or self.schema_name == settings.PUBLIC_SCHEMA_NAME or not sync_schema:
            return super().create_schema(check_if_exists, sync_schema, verbosity)  # type: ignore[no-any-return]
        if check_if_exists and schema_exists(self.schema_name):
            return False
        schemas.schema_clone_from_template(self.schema_name)
        return True

    class Meta:
        verbose_name = _("organization")
        verbose_name_plural = _("organizations")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Domain(DomainMixin):
    class Meta:
        verbose_name = _("domain")
        verbose_name_plural = _("domains")

    def __str__(self) -> str:
        return self.domain


class WhatsAppAccount(models.Model):
    """A WhatsApp Business phone number and the tenant its webhooks are routed to (public schema)."""

    class Transport(models.TextChoices):
        CLOUD = "cloud", _("Meta Cloud API")
        SANDBOX = "sandbox", _("Sandbox (records messages, sends nothing)")

    tenant = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="whatsapp_accounts")
    name = models.CharField(_("name"), max_length=100)
    phone_number_id = models.CharField(_("phone number ID"), max_length=64, unique=True)
    display_phone_number = models.CharField(_("display phone number"), max_length=32, blank=True)
    waba_id = models.CharField(_("WhatsApp Business account ID"), max_length=64, blank=True)
    transport = models.CharField(_("transport"), max_length=10, choices=Transport.choices, default=Transport.CLOUD)
    access_token = EncryptedTextField(_("access token"), blank=True)
    # A tenant with its own Meta app sets these; otherwise the platform's app is used.
    app_secret = EncryptedTextField(_("app secret"), blank=True)
    verify_token = EncryptedTextField(_("webhook verify token"), blank=True)
    rate_limit_per_second = models.PositiveIntegerField(
        _("messages per second"), default=80, help_text=_("Meta allows 80 by default, up to 1,000.")
    )
    is_active = models.BooleanField(_("active"), default=True)
    # Set when Meta answered GET /{phone_number_id} with this number's token (the back offices
    # refuse a Cloud number otherwise); empty for sandbox numbers and numbers added before.
    verified_name = models.CharField(_("verified name"), max_length=200, blank=True)
    verified_at = models.DateTimeField(_("verified with Meta"), null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("WhatsApp number")
        verbose_name_plural = _("WhatsApp numbers")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(rate_limit_per_second__gte=1, rate_limit_per_second__lte=1000),
                name="tenants_whatsappaccount_rate_range",
            )
        ]
        indexes = [
            # The webhook routes a business account's own changes (templates) by this ID.
            models.Index(fields=["waba_id"], name="tenants_whatsapp_waba_idx", condition=~models.Q(waba_id="")),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.display_phone_number or self.phone_number_id})"


class WebhookEvent(models.Model):
    """One item of a signed Meta webhook (a message, a status or another change), stored before the ack.

    Kept in the public schema because it is stored before it is routed; `tenant` is null
    for an orphan (a phone number or business account no tenant owns). Every tenant-facing
    query filters by tenant. A change of a business account itself (a template's status) is
    stored once per tenant that has a number in that account.
    """

    class Kind(models.TextChoices):
        MESSAGE = "message", _("Message")
        STATUS = "status", _("Status")
        ACCOUNT = "account", _("Business account change")
        OTHER = "other", _("Other")

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        PROCESSED = "processed", _("Processed")
        FAILED = "failed", _("Failed")
        ORPHAN = "orphan", _("Orphan (unknown number or business account)")
        IGNORED = "ignored", _("Ignored")

    received_at = models.DateTimeField(_("received"), db_index=True)
    tenant = models.ForeignKey(
        Organization, on_delete=models.CASCADE, null=True, blank=True, related_name="webhook_events"
    )
    phone_number_id = models.CharField(max_length=64, blank=True, db_index=True)
    # Set for a business account's own changes (kind "account"), which name no phone number.
    waba_id = models.CharField(_("WhatsApp Business account ID"), max_length=64, blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # m:<wamid> for messages, s:<wamid>:<status>:<timestamp> for statuses, b:<sha256> for other
    # changes of a number; w:<sha256>:<tenant id> for a business account's change routed to a
    # tenant (w:<sha256> while no tenant has the account).
    dedup_key = models.CharField(max_length=300, unique=True)
    signature = models.CharField(_("signed with"), max_length=20, help_text=_("platform or account secret"))
    payload = models.JSONField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    processing_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "-received_at"], name="tenants_webhook_tenant_idx"),
            models.Index(
                fields=["state", "enqueued_at"],
                name="tenants_webhook_stuck_idx",
                condition=models.Q(state="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.dedup_key}"
