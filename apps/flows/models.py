from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from apps.contacts.models import Contact
from apps.conversations.models import Conversation


def _empty_graph() -> dict[str, Any]:
    return {"nodes": [{"id": "start", "type": "trigger", "config": {"kind": "catch_all"}, "next": {}}]}


def _catch_all() -> dict[str, Any]:
    return {"kind": "catch_all"}


class Flow(models.Model):
    name = models.CharField(_("name"), max_length=120)
    # The built-in flows (the tenant's default flow, the demo's samples) carry a stable key so
    # that setup code finds them again instead of duplicating them; admins' own flows have none.
    key = models.SlugField(
        _("built-in key"), max_length=50, blank=True, help_text=_("Set on built-in flows; empty for your own.")
    )
    # {"kind": keyword|regex|ad_referral|first_message|business_hours|catch_all, "keywords": [...], ...};
    # copied from the published graph's Trigger node so matching needs no graph.
    trigger = models.JSONField(_("trigger"), default=_catch_all)
    priority = models.IntegerField(_("priority"), default=0, help_text=_("Higher runs first among equal triggers."))
    is_active = models.BooleanField(_("active"), default=False)
    draft = models.JSONField(_("draft graph"), default=_empty_graph)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-priority", "id"]
        constraints = [models.UniqueConstraint(fields=["key"], condition=~Q(key=""), name="flows_flow_key_unique")]

    def __str__(self) -> str:
        return self.name


class FlowVersion(models.Model):
    """A published graph; never changed afterwards, so a running conversation keeps its version."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    graph = models.JSONField()
    published_by = models.ForeignKey("accounts.User", on_delete=models.SET_NULL, null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["flow", "-number"]
        constraints = [models.UniqueConstraint(fields=["flow", "number"], name="flows_version_number_unique")]

    def __str__(self) -> str:
        return f"{self.flow} v{self.number}"


class FlowRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        WAITING = "waiting", _("Waiting")
        FINISHED = "finished", _("Finished")
        FAILED = "failed", _("Failed")

    ACTIVE = (Status.RUNNING, Status.WAITING)

    version = models.ForeignKey(FlowVersion, on_delete=models.PROTECT, related_name="runs")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="flow_runs")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="flow_runs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    current_node = models.CharField(max_length=64, blank=True)
    variables = models.JSONField(default=dict, blank=True)
    retries = models.PositiveIntegerField(default=0)
    steps_total = models.PositiveIntegerField(default=0)
    wait_until = models.DateTimeField(_("wait deadline"), null=True, blank=True)
    # The last inbound message this run has consumed: a retried task must not replay it.
    last_message_id = models.BigIntegerField(null=True, blank=True)
    resume_token = models.PositiveIntegerField(default=0)
    # Bumped by every write: the engine runs outside any transaction (provider and HTTP calls
    # take seconds), and its result is committed only if the run has not moved meanwhile.
    revision = models.PositiveIntegerField(default=0)
    # "m:<message id>" or "r:<resume token>": the event being walked, until `claim_expires`.
    claim = models.CharField(max_length=40, blank=True)
    claim_expires = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation"],
                condition=Q(status__in=["running", "waiting"]),
                name="flows_one_active_run_per_conversation",
            )
        ]
        indexes = [
            models.Index(fields=["wait_until"], condition=Q(status="waiting"), name="flows_run_wait_due_idx"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.version}"


class FlowRunStep(models.Model):
    run = models.ForeignKey(FlowRun, on_delete=models.CASCADE, related_name="steps")
    node_id = models.CharField(max_length=64)
    node_type = models.CharField(max_length=20)
    branch = models.CharField(max_length=64, blank=True)
    message_id = models.BigIntegerField(null=True, blank=True)
    started = models.DateTimeField()
    duration_ms = models.FloatField()
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "id"]

    def __str__(self) -> str:
        return f"{self.node_id} ({self.node_type})"
