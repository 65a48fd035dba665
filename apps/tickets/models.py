from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Team
from apps.conversations.models import Conversation, Message


class Priority(models.TextChoices):
    LOW = "low", _("Low")
    MEDIUM = "medium", _("Medium")
    HIGH = "high", _("High")
    URGENT = "urgent", _("Urgent")


@cache
def time_zone_names() -> frozenset[str]:
    """The IANA zone names a calendar may use ("localtime" is the server's, not a place)."""
    return frozenset(zoneinfo.available_timezones() - {"localtime"})


def validate_time_zone(value: str) -> None:
    """Refuse what `ZoneInfo` cannot read ("EAT", "Nairobi", a trailing space): the clocks would fail."""
    if value and value not in time_zone_names():
        raise ValidationError(
            _("Unknown time zone %(tz)s (use a name such as Africa/Nairobi)."),
            code="time_zone_unknown",
            params={"tz": value},
        )


class BusinessCalendar(models.Model):
    """Business hours: a weekly schedule (split shifts allowed), holidays and a time zone."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    # Empty: the organisation's time zone (Organization.time_zone).
    time_zone = models.CharField(
        _("time zone"),
        max_length=64,
        blank=True,
        validators=[validate_time_zone],
        help_text=_("Empty: the organisation's time zone."),
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("business calendar")
        verbose_name_plural = _("business calendars")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class BusinessHoursPeriod(models.Model):
    class Weekday(models.IntegerChoices):
        MONDAY = 0, _("Monday")
        TUESDAY = 1, _("Tuesday")
        WEDNESDAY = 2, _("Wednesday")
        THURSDAY = 3, _("Thursday")
        FRIDAY = 4, _("Friday")
        SATURDAY = 5, _("Saturday")
        SUNDAY = 6, _("Sunday")

    calendar = models.ForeignKey(BusinessCalendar, on_delete=models.CASCADE, related_name="periods")
    weekday = models.PositiveSmallIntegerField(_("weekday"), choices=Weekday.choices)
    start = models.TimeField(_("from"))
    end = models.TimeField(_("until"), help_text=_("00:00 means midnight at the end of the day."))

    class Meta:
        verbose_name = _("business hours period")
        verbose_name_plural = _("business hours")
        ordering = ["weekday", "start"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gt=models.F("start")) | models.Q(end="00:00"),
                name="tickets_period_ends_after_start",
            ),
            models.CheckConstraint(condition=models.Q(weekday__lte=6), name="tickets_period_weekday_range"),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.start:%H:%M}-{self.end:%H:%M}"


class Holiday(models.Model):
    calendar = models.ForeignKey(BusinessCalendar, on_delete=models.CASCADE, related_name="holidays")
    date = models.DateField(_("date"))
    name = models.CharField(_("name"), max_length=100, blank=True)

    class Meta:
        verbose_name = _("holiday")
        verbose_name_plural = _("holidays")
        ordering = ["date"]
        constraints = [models.UniqueConstraint(fields=["calendar", "date"], name="tickets_holiday_once_per_day")]

    def __str__(self) -> str:
        return f"{self.date} {self.name}"


class SLAPolicy(models.Model):
    """Targets for a priority, optionally narrowed to a team and/or a tag (the narrowest wins)."""

    name = models.CharField(_("name"), max_length=100)
    priority = models.CharField(_("priority"), max_length=10, choices=Priority.choices)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    tag = models.CharField(_("tag"), max_length=50, blank=True)
    calendar = models.ForeignKey(
        BusinessCalendar,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="policies",
        help_text=_("Empty: the clock runs around the clock."),
    )
    first_response_minutes = models.PositiveIntegerField(_("first response (minutes)"))
    next_response_minutes = models.PositiveIntegerField(_("next response (minutes)"), null=True, blank=True)
    resolution_minutes = models.PositiveIntegerField(_("resolution (minutes)"))
    is_active = models.BooleanField(_("active"), default=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("SLA policy")
        verbose_name_plural = _("SLA policies")
        ordering = ["priority", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["priority", "team", "tag"],
                condition=models.Q(is_active=True),
                nulls_distinct=False,
                name="tickets_one_active_policy_per_scope",
            ),
            models.CheckConstraint(
                condition=models.Q(first_response_minutes__gt=0, resolution_minutes__gt=0),
                name="tickets_policy_targets_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Ticket(models.Model):
    class Status(models.TextChoices):
        NEW = "new", _("New")
        OPEN = "open", _("Open")
        PENDING = "pending", _("Pending (waiting on the customer)")
        ON_HOLD = "on_hold", _("On hold")
        SOLVED = "solved", _("Solved")
        CLOSED = "closed", _("Closed")

    class Source(models.TextChoices):
        HANDOFF = "handoff", _("Hand-off")
        AGENT = "agent", _("Agent")
        API = "api", _("API")
        RULE = "rule", _("Escalation rule")

    ACTIVE_STATUSES = (Status.NEW, Status.OPEN, Status.PENDING, Status.ON_HOLD)
    PAUSED_STATUSES = (Status.PENDING, Status.ON_HOLD)

    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.NEW)
    priority = models.CharField(_("priority"), max_length=10, choices=Priority.choices, default=Priority.MEDIUM)
    source = models.CharField(_("source"), max_length=10, choices=Source.choices, default=Source.AGENT)
    conversations = models.ManyToManyField(Conversation, related_name="tickets", blank=True)
    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.SET_NULL, null=True, blank=True, related_name="tickets"
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="tickets"
    )
    team = models.ForeignKey(Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="tickets")
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True, verbose_name=_("tags"))
    intent = models.CharField(_("intent"), max_length=64, blank=True)
    merged_into = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="merged_tickets"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # SLA clocks. A due time is empty when its clock is not running (met, or not started).
    sla_policy = models.ForeignKey(SLAPolicy, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    first_response_due_at = models.DateTimeField(_("first response due"), null=True, blank=True)
    first_response_risk_at = models.DateTimeField(null=True, blank=True)
    first_responded_at = models.DateTimeField(_("first response"), null=True, blank=True)
    next_response_started_at = models.DateTimeField(_("customer waiting since"), null=True, blank=True)
    next_response_due_at = models.DateTimeField(_("next response due"), null=True, blank=True)
    next_response_risk_at = models.DateTimeField(null=True, blank=True)
    resolution_due_at = models.DateTimeField(_("resolution due"), null=True, blank=True)
    resolution_risk_at = models.DateTimeField(null=True, blank=True)
    sla_paused_at = models.DateTimeField(_("SLA paused since"), null=True, blank=True)
    # Business seconds spent paused (pending/on hold): the first-response and resolution
    # clocks run that much longer.
    sla_paused_seconds = models.FloatField(default=0)
    # Of those, the business seconds before the first response (set with it): the SLA
    # report's first-response time leaves them out, as the first-response clock does.
    first_response_paused_seconds = models.FloatField(default=0)
    # `sla_paused_seconds` as it stood when the next-response clock started (a pause running
    # then counted up to the message): the clock is credited only with the pauses since.
    next_response_paused_offset = models.FloatField(default=0)
    sla_breached = models.BooleanField(_("SLA breached"), default=False)
    # Escalation risk (0-100) and the factors behind it: [{"factor", "points", "reason"}].
    risk_score = models.PositiveSmallIntegerField(_("escalation risk"), default=0)
    risk_factors = models.JSONField(default=list, blank=True)
    risk_computed_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(_("last activity"), null=True, blank=True)
    solved_at = models.DateTimeField(_("solved"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("ticket")
        verbose_name_plural = _("tickets")
        ordering = ["-risk_score", "-created"]
        indexes = [
            models.Index(fields=["status", "-risk_score"], name="tickets_queue_idx"),
            models.Index(fields=["assignee", "status"], name="tickets_assignee_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(risk_score__gte=0, risk_score__lte=100), name="tickets_risk_range"
            ),
            models.CheckConstraint(
                condition=~models.Q(merged_into=models.F("pk")), name="tickets_not_merged_into_itself"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"


class TicketEvent(models.Model):
    """The history of a ticket: every change, who made it and when."""

    class Kind(models.TextChoices):
        CREATED = "created", _("Created")
        CHANGED = "changed", _("Changed")
        LINKED = "linked", _("Conversation linked")
        MERGED = "merged", _("Merged")
        SLA = "sla", _("SLA")
        RULE = "rule", _("Escalation rule")
        CSAT = "csat", _("Satisfaction rating")

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # {"field": {"from": ..., "to": ...}, ...} or the event's detail.
    changes = models.JSONField(default=dict, blank=True)
    note = models.CharField(max_length=300, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("ticket event")
        verbose_name_plural = _("ticket history")
        ordering = ["created", "id"]
        indexes = [models.Index(fields=["ticket", "created"], name="tickets_event_trail_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.created:%Y-%m-%d %H:%M})"


class SLAEvent(models.Model):
    """A recorded "at risk" or breach of one SLA clock (one row per clock run and kind)."""

    class Metric(models.TextChoices):
        FIRST_RESPONSE = "first_response", _("First response")
        NEXT_RESPONSE = "next_response", _("Next response")
        RESOLUTION = "resolution", _("Resolution")

    class Kind(models.TextChoices):
        AT_RISK = "at_risk", _("At risk (80% used)")
        BREACHED = "breached", _("Breached")

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="sla_events")
    metric = models.CharField(max_length=20, choices=Metric.choices)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    due_at = models.DateTimeField()
    # When the clock run started: the ticket's creation (first response, resolution) or the
    # customer message (next response). A resume moves the due time, not the run. Empty on
    # rows from before migration tickets 0005 whose run is unknown or already had a row.
    clock_started_at = models.DateTimeField(null=True, blank=True)
    priority = models.CharField(max_length=10, choices=Priority.choices)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    team = models.ForeignKey(Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("SLA event")
        verbose_name_plural = _("SLA events")
        ordering = ["-created"]
        constraints = [
            # The ETA task and the sweep may both see the same breach, and a resume may move a
            # passed due time: each clock run is at risk and breached once.
            models.UniqueConstraint(
                fields=["ticket", "metric", "kind", "clock_started_at"], name="tickets_sla_event_once_per_run"
            )
        ]

    def __str__(self) -> str:
        return f"{self.ticket_id} {self.metric} {self.kind}"


class EscalationRule(models.Model):
    """When an analysed inbound message matches the trigger, do the action. Evaluated in order."""

    class Trigger(models.TextChoices):
        SENTIMENT_BELOW = "sentiment_below", _("Sentiment below a threshold")
        KEYWORD = "keyword", _("Keyword or regular expression")
        INTENT = "intent", _("Intent")
        CUSTOMER_VALUE = "customer_value", _("Customer value (a contact field)")

    class Comparison(models.TextChoices):
        GT = "gt", ">"
        GTE = "gte", "≥"
        LT = "lt", "<"
        LTE = "lte", "≤"
        EQ = "eq", "="

    class Action(models.TextChoices):
        ESCALATE = "escalate", _("Escalate (hand off and open a ticket)")
        TAG = "tag", _("Tag")
        ROUTE = "route", _("Route to a team")
        SET_PRIORITY = "set_priority", _("Set priority")

    name = models.CharField(_("name"), max_length=100)
    position = models.PositiveIntegerField(_("order"), default=0)
    is_active = models.BooleanField(_("active"), default=True)
    stop_processing = models.BooleanField(_("stop after this rule"), default=False)
    trigger = models.CharField(_("trigger"), max_length=20, choices=Trigger.choices)
    sentiment_below = models.FloatField(_("sentiment below"), null=True, blank=True)
    pattern = models.CharField(
        _("keywords or pattern"),
        max_length=500,
        blank=True,
        help_text=_("Comma-separated keywords, or a regular expression when 'regex' is on."),
    )
    is_regex = models.BooleanField(_("regex"), default=False)
    intent = models.CharField(_("intent"), max_length=64, blank=True)
    field = models.CharField(_("contact field"), max_length=100, blank=True)
    comparison = models.CharField(max_length=3, choices=Comparison.choices, blank=True)
    value = models.FloatField(_("value"), null=True, blank=True)
    action = models.CharField(_("action"), max_length=20, choices=Action.choices)
    tag = models.CharField(_("tag"), max_length=50, blank=True)
    team = models.ForeignKey(Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    priority = models.CharField(_("priority"), max_length=10, choices=Priority.choices, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("escalation rule")
        verbose_name_plural = _("escalation rules")
        ordering = ["position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(trigger="sentiment_below") | models.Q(sentiment_below__isnull=False),
                name="tickets_rule_sentiment_has_threshold",
            ),
            models.CheckConstraint(
                condition=~models.Q(trigger="keyword") | ~models.Q(pattern=""),
                name="tickets_rule_keyword_has_pattern",
            ),
            models.CheckConstraint(
                condition=~models.Q(trigger="intent") | ~models.Q(intent=""), name="tickets_rule_intent_has_intent"
            ),
            models.CheckConstraint(
                condition=~models.Q(trigger="customer_value")
                | (~models.Q(field="") & ~models.Q(comparison="") & models.Q(value__isnull=False)),
                name="tickets_rule_value_is_complete",
            ),
            models.CheckConstraint(
                condition=~models.Q(action="tag") | ~models.Q(tag=""), name="tickets_rule_tag_has_tag"
            ),
            models.CheckConstraint(
                condition=~models.Q(action="route") | models.Q(team__isnull=False), name="tickets_rule_route_has_team"
            ),
            models.CheckConstraint(
                condition=~models.Q(action="set_priority") | ~models.Q(priority=""),
                name="tickets_rule_priority_is_set",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class EscalationRuleFiring(models.Model):
    """Every time a rule fired: on which message, and what it did."""

    rule = models.ForeignKey(EscalationRule, on_delete=models.CASCADE, related_name="firings")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    ticket = models.ForeignKey(Ticket, on_delete=models.SET_NULL, null=True, blank=True, related_name="rule_firings")
    result = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("escalation rule firing")
        verbose_name_plural = _("escalation rule log")
        ordering = ["-created", "-id"]
        constraints = [
            # Re-analysing a message never fires a rule twice on it.
            models.UniqueConstraint(fields=["rule", "message"], name="tickets_rule_fires_once_per_message")
        ]

    def __str__(self) -> str:
        return f"{self.rule} on message {self.message_id}"


class CsatSurvey(models.Model):
    """A 1-5 satisfaction question sent on resolve, and the customer's answer."""

    class Channel(models.TextChoices):
        INTERACTIVE = "interactive", _("Interactive list (inside the 24-hour window)")
        TEMPLATE = "template", _("Approved template (outside the window)")

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="csat_surveys")
    ticket = models.ForeignKey(Ticket, on_delete=models.SET_NULL, null=True, blank=True, related_name="csat_surveys")
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    team = models.ForeignKey(Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    channel = models.CharField(max_length=12, choices=Channel.choices)
    message = models.ForeignKey(Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    score = models.PositiveSmallIntegerField(_("score"), null=True, blank=True)
    comment = models.TextField(_("comment"), blank=True)
    asked_at = models.DateTimeField(_("asked"))
    answered_at = models.DateTimeField(_("answered"), null=True, blank=True)

    class Meta:
        verbose_name = _("satisfaction survey")
        verbose_name_plural = _("satisfaction surveys")
        ordering = ["-asked_at"]
        indexes = [models.Index(fields=["conversation", "-asked_at"], name="tickets_csat_conv_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(score__isnull=True) | models.Q(score__gte=1, score__lte=5),
                name="tickets_csat_score_range",
            )
        ]

    def __str__(self) -> str:
        return f"CSAT {self.score or '-'} ({self.conversation_id})"


@dataclass(frozen=True)
class Clock:
    """One SLA clock's fields on `Ticket`."""

    metric: str
    due_field: str
    risk_field: str
    start_field: str  # when the clock's run started: its events are recorded once per run


CLOCKS = (
    Clock(SLAEvent.Metric.FIRST_RESPONSE, "first_response_due_at", "first_response_risk_at", "created"),
    Clock(SLAEvent.Metric.NEXT_RESPONSE, "next_response_due_at", "next_response_risk_at", "next_response_started_at"),
    Clock(SLAEvent.Metric.RESOLUTION, "resolution_due_at", "resolution_risk_at", "created"),
)
