from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Team
from apps.contacts.models import Contact, ServiceWindow
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
    # The 24-hour window of this contact on this number (the same contact and account), shared
    # by all their conversations there: WhatsApp keeps it per number, whichever thread is open.
    # RESTRICT: a window goes only with its contact, which takes its conversations along.
    window = models.ForeignKey(
        ServiceWindow, on_delete=models.RESTRICT, related_name="conversations", verbose_name=_("24-hour window")
    )
    last_message_at = models.DateTimeField(_("last message"), null=True, blank=True, db_index=True)
    last_message_preview = models.CharField(max_length=200, blank=True)
    unread_count = models.PositiveIntegerField(default=0)
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True, verbose_name=_("tags"))
    # Snoozed: hidden from the queues until `snoozed_until`, or until the customer's next
    # message when `snoozed_until` is empty.
    is_snoozed = models.BooleanField(_("snoozed"), default=False)
    snoozed_until = models.DateTimeField(_("snoozed until"), null=True, blank=True)
    handoff_reason = models.CharField(_("hand-off reason"), max_length=200, blank=True)
    waiting_since = models.DateTimeField(_("waiting since"), null=True, blank=True)
    assigned_at = models.DateTimeField(_("assigned"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)
    # Rolling summary of the messages before the context window (see context.py).
    summary = models.TextField(_("summary"), blank=True)
    summary_upto = models.PositiveBigIntegerField(default=0, help_text=_("Id of the last message summarised."))
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        ordering = ["-last_message_at"]
        indexes = [
            models.Index(fields=["status", "-last_message_at"], name="conversations_queue_idx"),
            models.Index(fields=["assigned_agent", "status"], name="conversations_agent_load_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["contact", "account"],
                condition=~models.Q(status="closed"),
                name="conversations_one_open_per_contact",
            ),
            # Only an assigned conversation has an agent; an assigned one always has one.
            models.CheckConstraint(
                condition=(models.Q(status="assigned") & models.Q(assigned_agent__isnull=False))
                | ~models.Q(status="assigned"),
                name="conversations_assigned_has_agent",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.contact} ({self.get_status_display()})"


class ConversationEvent(models.Model):
    """The audit trail of a conversation: every transition, who made it, when and why."""

    class Kind(models.TextChoices):
        HANDOFF = "handoff", _("Handed off to a person")
        TAKEOVER = "takeover", _("Taken over by an agent")
        ASSIGNED = "assigned", _("Assigned")
        UNASSIGNED = "unassigned", _("Unassigned")
        RETURNED_TO_BOT = "returned_to_bot", _("Returned to the bot")
        RESOLVED = "resolved", _("Resolved")
        REOPENED = "reopened", _("Reopened")
        CLOSED = "closed", _("Closed")
        SNOOZED = "snoozed", _("Snoozed")
        UNSNOOZED = "unsnoozed", _("Snooze ended")
        PRIORITY = "priority", _("Priority changed")
        TEAM = "team", _("Team changed")
        TAGS = "tags", _("Tags changed")

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    from_status = models.CharField(max_length=10, blank=True)
    to_status = models.CharField(max_length=10, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("conversation event")
        verbose_name_plural = _("conversation events")
        ordering = ["created", "id"]
        indexes = [models.Index(fields=["conversation", "created"], name="conv_event_trail_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.created:%Y-%m-%d %H:%M})"


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
    # The customer's emoji reaction to this message ("" when none or removed), and when they
    # last reacted: webhooks arrive out of order, so only a later reaction replaces it.
    customer_reaction = models.CharField(_("customer's reaction"), max_length=50, blank=True)
    customer_reaction_at = models.DateTimeField(null=True, blank=True)
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


class CannedResponse(models.Model):
    """A saved reply an agent inserts by typing its shortcut (`/refund`) in the composer."""

    shortcut = models.CharField(
        _("shortcut"), max_length=40, unique=True, help_text=_("Letters, digits and dashes, typed after a slash.")
    )
    title = models.CharField(_("title"), max_length=100)
    text = models.TextField(_("text"), max_length=4096)
    is_active = models.BooleanField(_("active"), default=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("canned response")
        verbose_name_plural = _("canned responses")
        ordering = ["shortcut"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(shortcut__regex=r"^[a-z0-9][a-z0-9-]{0,39}$"), name="conversations_canned_shortcut"
            )
        ]

    def __str__(self) -> str:
        return f"/{self.shortcut}"
