from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.core.tenancy import tenant_storage_path
from apps.tenants.models import WhatsAppAccount


def media_upload_to(instance: Media, filename: str) -> str:
    # The caller names the file (a UUID): a customer's file name never reaches the storage.
    return tenant_storage_path("whatsapp", "media", timezone.now().strftime("%Y/%m"), filename)


class OutboxMessage(models.Model):
    """Every message Imaradesk sends: written first, delivered by a worker, retried, never sent twice."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting to be sent")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Accepted by WhatsApp")
        FAILED = "failed", _("Failed")

    class Delivery(models.TextChoices):
        NONE = "", _("-")
        SENT = "sent", _("Sent")
        DELIVERED = "delivered", _("Delivered")
        READ = "read", _("Read")
        FAILED = "failed", _("Failed")

    class Priority(models.IntegerChoices):
        LIVE = 0, _("Reply in a live conversation")
        BULK = 1, _("Bulk (campaigns)")

    # A cross-schema reference: the number lives in the public routing table.
    # Cross-schema (tenant -> public): DO_NOTHING, so that deleting in the public schema never
    # looks for this tenant table there; the database constraint still refuses a dangling row.
    account = models.ForeignKey(WhatsAppAccount, on_delete=models.DO_NOTHING, related_name="+")
    to_wa_id = models.CharField(_("to"), max_length=32, db_index=True)
    kind = models.CharField(max_length=20)
    payload = models.JSONField(help_text=_("The Graph API request body."))
    idempotency_key = models.CharField(max_length=200, unique=True)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.LIVE)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # Pending: when the row is due. Sending: when the claim below lapses (the lease).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # The claim that is sending the row; results are recorded only by the claim that holds it.
    lease_token = models.UUIDField(null=True, blank=True, editable=False)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    wamid = models.CharField(max_length=200, null=True, blank=True, unique=True)
    delivery_status = models.CharField(max_length=10, choices=Delivery.choices, default=Delivery.NONE, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    error_code = models.IntegerField(null=True, blank=True)
    error_title = models.TextField(blank=True)
    # An attachment: uploaded to the Graph API by the sender before the message itself, so that
    # the upload is retried with the send (the media id is kept once Meta has given it).
    media = models.ForeignKey("Media", on_delete=models.SET_NULL, null=True, blank=True, related_name="outbox")
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("outgoing message")
        verbose_name_plural = _("outbox")
        ordering = ["-created"]
        indexes = [
            models.Index(
                fields=["status", "next_attempt_at"],
                name="whatsapp_outbox_due_idx",
                condition=models.Q(status__in=["pending", "sending"]),
            ),
            # The batch sender's claim: one number's due rows, live before bulk, oldest first.
            models.Index(
                fields=["account", "priority", "next_attempt_at"],
                name="whatsapp_outbox_claim_idx",
                condition=models.Q(status__in=["pending", "sending"]),
            ),
            # The claim's order rule: does this recipient have an earlier unsent row?
            models.Index(
                fields=["account", "to_wa_id", "id"],
                name="whatsapp_outbox_recipient_idx",
                condition=models.Q(status__in=["pending", "sending"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.to_wa_id} ({self.status})"


class Media(models.Model):
    """A media file: one a customer sent, fetched into our storage, or one an agent sends, uploaded from it."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Downloading")
        READY = "ready", _("Stored")
        FAILED = "failed", _("Failed")
        TOO_LARGE = "too_large", _("Too large")

    # Cross-schema (tenant -> public): DO_NOTHING, so that deleting in the public schema never
    # looks for this tenant table there; the database constraint still refuses a dangling row.
    account = models.ForeignKey(WhatsAppAccount, on_delete=models.DO_NOTHING, related_name="+")
    # Meta's id: an agent's attachment has none until the sender has uploaded it.
    media_id = models.CharField(max_length=200, unique=True, null=True, blank=True)
    kind = models.CharField(max_length=20)
    mime_type = models.CharField(max_length=200, blank=True)
    sha256 = models.CharField(max_length=200, blank=True)
    filename = models.CharField(max_length=500, blank=True)
    size = models.PositiveBigIntegerField(null=True, blank=True)
    file = models.FileField(upload_to=media_upload_to, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    # Downloads of a customer's file: how many were tried, and when the next one is due (a
    # claim's lease while one runs). The sweeper re-queues those overdue.
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    downloaded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("media file")
        verbose_name_plural = _("media files")
        indexes = [
            models.Index(
                fields=["next_attempt_at"], name="whatsapp_media_pending_idx", condition=models.Q(status="pending")
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.media_id} ({self.status})"


class MessageTemplate(models.Model):
    """A message template of the number's WhatsApp Business account, as Meta last reported it."""

    class Status(models.TextChoices):
        APPROVED = "APPROVED", _("Approved")
        PENDING = "PENDING", _("In review")
        REJECTED = "REJECTED", _("Rejected")
        PAUSED = "PAUSED", _("Paused")
        DISABLED = "DISABLED", _("Disabled")
        IN_APPEAL = "IN_APPEAL", _("In appeal")
        ARCHIVED = "ARCHIVED", _("Archived")
        PENDING_DELETION = "PENDING_DELETION", _("Being deleted")
        DELETED = "DELETED", _("Deleted")
        OTHER = "OTHER", _("Other")

    class Category(models.TextChoices):
        MARKETING = "MARKETING", _("Marketing")
        UTILITY = "UTILITY", _("Utility")
        AUTHENTICATION = "AUTHENTICATION", _("Authentication")
        OTHER = "OTHER", _("Other")

    # Cross-schema (tenant -> public): DO_NOTHING, so that deleting in the public schema never
    # looks for this tenant table there; the database constraint still refuses a dangling row.
    account = models.ForeignKey(WhatsAppAccount, on_delete=models.DO_NOTHING, related_name="+")
    template_id = models.CharField(_("Meta template ID"), max_length=64, blank=True)
    name = models.CharField(_("name"), max_length=512)
    language = models.CharField(_("language"), max_length=15)
    category = models.CharField(_("category"), max_length=20, choices=Category.choices, default=Category.OTHER)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.OTHER)
    # What Meta's last status webhook said (message_template_status_update): the event, which
    # may leave the status as it was (FLAGGED), Meta's reason, and when Meta sent it, so that
    # an older event delivered late does not undo a newer one.
    status_event = models.CharField(_("last status event"), max_length=32, blank=True)
    status_reason = models.TextField(_("status reason"), blank=True)
    status_event_at = models.DateTimeField(_("status event sent"), null=True, blank=True)
    components = models.JSONField(_("components"), default=list, blank=True)
    header_text = models.CharField(_("header"), max_length=60, blank=True)
    body_text = models.TextField(_("body"), blank=True)
    footer_text = models.CharField(_("footer"), max_length=60, blank=True)
    variable_count = models.PositiveSmallIntegerField(_("body variables"), default=0)
    # Agents can send it from the inbox: every parameter it takes is a body text variable.
    is_sendable = models.BooleanField(_("sendable from the inbox"), default=True)
    synced_at = models.DateTimeField(_("synced"))

    class Meta:
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")
        ordering = ["name", "language"]
        constraints = [
            models.UniqueConstraint(fields=["account", "name", "language"], name="whatsapp_template_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.language})"
