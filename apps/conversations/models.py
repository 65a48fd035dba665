from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Team
from apps.contacts.models import Contact
from apps.tenants.models import WhatsAppAccount
from apps.whatsapp.models import Media, OutboxMessage


class Conversation(models.Model):
    """A thread with one contact on one number; at most one is open per contact and number."""

    class Status(models.TextChoices):
        BOT = "bot", _("Automation")
        WAITING = "waiting", _("Waiting for an agent")
        ASSIGNED = "assigned", _("With an agent")
        RESOLVED = "resolved", _("Resolved")
        CLOSED = "closed", _("Closed")

    OPEN_STATUSES = (Status.BOT, Status.WAITING, Status.ASSIGNED, Status.RESOLVED)

    class Priority(models.TextChoices):
        LOW = "low", _("Low")
        NORMAL = "normal", _("Normal")
        HIGH = "high", _("High")
        URGENT = "urgent", _("Urgent")

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="conversations")
    # Cross-schema (tenant -> public): DO_NOTHING, so that deleting in the public schema never
    # looks for this tenant table there; the database constraint still refuses a dangling row.
    account = models.ForeignKey(WhatsAppAccount, on_delete=models.DO_NOTHING, related_name="+")
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.BOT)
    priority = models.CharField(_("priority"), max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    assigned_agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="conversations"
    )
    team = models.ForeignKey(Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="conversations")
    language = models.CharField(_("language"), max_length=8, blank=True)
    window_expires_at = models.DateTimeField(_("24-hour window ends"), null=True, blank=True)
    last_message_at = models.DateTimeField(_("last message"), null=True, blank=True, db_index=True)
    last_message_preview = models.CharField(max_length=200, blank=True)
    unread_count = models.PositiveIntegerField(default=0)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        ordering = ["-last_message_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["contact", "account"],
                condition=~models.Q(status="closed"),
                name="conversations_one_open_per_contact",
            )
        ]
        indexes = [models.Index(fields=["status", "-last_message_at"], name="conversations_queue_idx")]

    def __str__(self) -> str:
        return f"{self.contact} ({self.get_status_display()})"


class Message(models.Model):
    class Direction(models.TextChoices):
        INBOUND = "in", _("From the customer")
        OUTBOUND = "out", _("To the customer")

    class Author(models.TextChoices):
        CUSTOMER = "customer", _("Customer")
        BOT = "bot", _("Bot")
        AGENT = "agent", _("Agent")
        SYSTEM = "system", _("System")

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    direction = models.CharField(max_length=3, choices=Direction.choices)
    author_kind = models.CharField(max_length=10, choices=Author.choices)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    type = models.CharField(max_length=20, help_text=_("text, image, audio, interactive, template, unsupported, …"))
    text = models.TextField(blank=True)
    content = models.JSONField(default=dict, blank=True, help_text=_("The typed payload (media, location, reply, …)."))
    media = models.ForeignKey(Media, on_delete=models.SET_NULL, null=True, blank=True, related_name="messages")
    # Inbound: WhatsApp's id. Outbound: the outbox row, whose wamid and delivery status are the truth.
    wamid = models.CharField(max_length=200, null=True, blank=True, unique=True)
    outbox = models.OneToOneField(
        OutboxMessage, on_delete=models.SET_NULL, null=True, blank=True, related_name="message"
    )
    reply_to_wamid = models.CharField(max_length=200, blank=True)
    sent_at = models.DateTimeField(_("time"), db_index=True)
    created = models.DateTimeField(auto_now_add=True)
    # Analysis (filled by the AI engine on inbound messages).
    language = models.CharField(max_length=8, blank=True)
    intent = models.CharField(max_length=64, blank=True)
    intent_confidence = models.FloatField(null=True, blank=True)
    sentiment = models.FloatField(null=True, blank=True)
    translation = models.TextField(blank=True)
    translated_to = models.CharField(max_length=8, blank=True)
    analysis = models.JSONField(default=dict, blank=True)
    analysed_at = models.DateTimeField(_("analysed"), null=True, blank=True)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["sent_at", "id"]
        indexes = [models.Index(fields=["conversation", "sent_at"], name="conv_message_thread_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(sentiment__isnull=True) | models.Q(sentiment__gte=-1, sentiment__lte=1),
                name="conversations_message_sentiment_range",
            )
        ]

    def __str__(self) -> str:
        return f"{self.direction} {self.type}: {self.text[:50]}"
