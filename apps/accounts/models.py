from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser, Group
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _

from apps.accounts.roles import CAPABILITIES


class User(AbstractUser):
    """A person who signs in: a platform admin (public schema) or a member of one business."""

    email = models.EmailField(_("email address"), blank=True)

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                condition=~models.Q(email=""),
                name="accounts_user_email_ci_unique",
            )
        ]


class Role(Group):
    """A named set of permissions (Admin, Support Manager, Agent, Knowledge Editor)."""

    class Meta:
        proxy = True
        verbose_name = _("role")
        verbose_name_plural = _("roles")
        permissions = list(CAPABILITIES.items())


class Team(models.Model):
    class Assignment(models.TextChoices):
        LEAST_LOADED = "least_loaded", _("Least loaded agent first")
        ROUND_ROBIN = "round_robin", _("Round robin")
        MANUAL = "manual", _("Manual (a manager assigns)")

    name = models.CharField(_("name"), max_length=100, unique=True)
    assignment = models.CharField(
        _("automatic assignment"), max_length=20, choices=Assignment.choices, default=Assignment.LEAST_LOADED
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="teams", blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("team")
        verbose_name_plural = _("teams")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AgentProfile(models.Model):
    class Status(models.TextChoices):
        ONLINE = "online", _("Online")
        AWAY = "away", _("Away")
        OFFLINE = "offline", _("Offline")

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_profile")
    max_concurrent_chats = models.PositiveSmallIntegerField(_("max concurrent chats"), default=5)
    languages = ArrayField(
        models.CharField(max_length=8),
        default=list,
        blank=True,
        verbose_name=_("languages spoken"),
        help_text=_("Language codes, for example en, fr, sw."),
    )
    status = models.CharField(_("online status"), max_length=10, choices=Status.choices, default=Status.OFFLINE)
    last_seen_at = models.DateTimeField(_("last seen"), null=True, blank=True)
    last_assigned_at = models.DateTimeField(_("last assigned"), null=True, blank=True)

    class Meta:
        verbose_name = _("agent profile")
        verbose_name_plural = _("agent profiles")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(max_concurrent_chats__gte=1, max_concurrent_chats__lte=100),
                name="accounts_agentprofile_max_chats_range",
            )
        ]
        indexes = [models.Index(fields=["status", "last_seen_at"], name="accounts_agent_presence_idx")]

    def __str__(self) -> str:
        return f"{self.user} ({self.status})"
