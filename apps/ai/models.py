"""Per-tenant AI settings (one row per tenant schema), daily usage meters and the result cache."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from apps.ai.catalog import CLOUD_PROVIDERS, DEFAULT_MODELS, PROVIDERS, TASKS, can_embed
from apps.core.crypto import EncryptedTextField

SINGLETON_ID = 1


class AISettings(models.Model):
    """The tenant's AI configuration; with no API key every task runs on the offline models."""

    class OnBudgetExhausted(models.TextChoices):
        CHEAPER = "cheaper", _("Switch to each provider's cheaper model")
        LOCAL = "local", _("Use only the offline models")

    provider_order = models.CharField(
        _("provider order"),
        max_length=100,
        default=",".join(CLOUD_PROVIDERS),
        help_text=_("Comma-separated, first tried first: openai, anthropic, google. "
                    "Providers without an API key are skipped; the offline models are always last."),
    )  # fmt: skip
    openai_api_key = EncryptedTextField(_("OpenAI API key"), blank=True, default="")
    anthropic_api_key = EncryptedTextField(_("Anthropic API key"), blank=True, default="")
    google_api_key = EncryptedTextField(_("Google API key"), blank=True, default="")
    openai_base_url = models.URLField(_("OpenAI base URL"), max_length=300, blank=True, default="")
    anthropic_base_url = models.URLField(_("Anthropic base URL"), max_length=300, blank=True, default="")
    google_base_url = models.URLField(_("Google base URL"), max_length=300, blank=True, default="")
    task_models = models.JSONField(
        _("model per task"),
        default=dict,
        blank=True,
        help_text=_('Overrides of the default models, e.g. {"generate": {"openai": "gpt-4o"}, '
                    '"classify": {"google": "gemini-2.5-flash-lite"}}. Tasks: classify, generate, embed, '
                    "translate, summarize."),
    )  # fmt: skip
    request_timeout_seconds = models.FloatField(_("timeout per call (seconds)"), default=20.0)
    monthly_token_budget = models.PositiveBigIntegerField(
        _("monthly token budget"), default=0, help_text=_("Tokens in + out per calendar month; 0 for no limit.")
    )
    monthly_cost_budget = models.DecimalField(
        _("monthly cost budget (USD)"),
        max_digits=10,
        decimal_places=2,
        default=Decimal(0),
        help_text=_("Estimated cost per calendar month; 0 for no limit."),
    )
    on_budget_exhausted = models.CharField(
        _("when the budget is spent"), max_length=10, choices=OnBudgetExhausted.choices, default="cheaper"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("AI settings")
        verbose_name_plural = _("AI settings")
        constraints = [
            models.CheckConstraint(condition=Q(id=SINGLETON_ID), name="ai_settings_singleton"),
            models.CheckConstraint(condition=Q(request_timeout_seconds__gt=0), name="ai_settings_timeout_positive"),
        ]

    def __str__(self) -> str:
        return str(_("AI settings"))

    def provider_names(self) -> list[str]:
        return [name.strip() for name in self.provider_order.split(",") if name.strip()]

    def api_key_for(self, provider: str) -> str:
        return str(getattr(self, f"{provider}_api_key", "") or "")

    def base_url_for(self, provider: str) -> str:
        return str(getattr(self, f"{provider}_base_url", "") or "")

    def model_for(self, provider: str, task: str) -> str | None:
        override = (self.task_models or {}).get(task, {}).get(provider)
        if override:
            return str(override)
        return DEFAULT_MODELS.get(provider, {}).get(task)  # type: ignore[call-overload, no-any-return]

    def clean(self) -> None:
        errors: dict[str, Any] = {}
        names = self.provider_names()
        unknown = [name for name in names if name not in CLOUD_PROVIDERS]
        if unknown or len(set(names)) != len(names):
            errors["provider_order"] = _("Use each of openai, anthropic, google at most once.")
        models_ = self.task_models or {}
        if not isinstance(models_, dict) or any(
            task not in TASKS
            or not isinstance(per_provider, dict)
            or any(p not in PROVIDERS or not isinstance(m, str) or not m for p, m in per_provider.items())
            for task, per_provider in models_.items()
        ):
            errors["task_models"] = _("A mapping of task → {provider: model name}.")
        elif isinstance(models_.get("embed"), dict) and any(not can_embed(p) for p in models_["embed"]):
            # Anthropic has no embedding models: every embedding would fail and trip its breaker.
            errors["task_models"] = _("Embeddings: only openai and google have embedding models.")
        if not django_settings.AI_ALLOW_HTTP_BASE_URLS:
            for provider in CLOUD_PROVIDERS:
                url = self.base_url_for(provider)
                if url and not url.startswith("https://"):
                    errors[f"{provider}_base_url"] = _("Use an https:// URL.")
        if errors:
            raise ValidationError(errors)


class AIUsage(models.Model):
    """Calls, tokens and estimated cost for one day, task, provider and model (incremented with F())."""

    day = models.DateField(_("day"))
    task = models.CharField(_("task"), max_length=20, choices=[(t, t) for t in TASKS])
    provider = models.CharField(_("provider"), max_length=20, choices=[(p, p) for p in PROVIDERS])
    model = models.CharField(_("model"), max_length=100)
    requests = models.PositiveIntegerField(_("answered calls"), default=0)
    failures = models.PositiveIntegerField(_("failed calls"), default=0)
    tokens_in = models.PositiveBigIntegerField(_("tokens in"), default=0)
    tokens_out = models.PositiveBigIntegerField(_("tokens out"), default=0)
    cost_usd = models.DecimalField(_("estimated cost (USD)"), max_digits=14, decimal_places=6, default=Decimal(0))

    class Meta:
        verbose_name = _("AI usage")
        verbose_name_plural = _("AI usage")
        ordering = ["-day", "task", "provider", "model"]
        constraints = [
            models.UniqueConstraint(fields=["day", "task", "provider", "model"], name="ai_usage_one_row_per_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.task} {self.provider}/{self.model}"


class AICacheEntry(models.Model):
    """A cached embedding or classification, keyed by sha256(provider, model, task, text)."""

    key = models.CharField(max_length=64, unique=True)
    task = models.CharField(max_length=20)
    provider = models.CharField(max_length=20)
    model = models.CharField(max_length=100)
    value = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("AI cache entry")
        verbose_name_plural = _("AI cache entries")

    def __str__(self) -> str:
        return f"{self.task} {self.provider}/{self.model} {self.key[:12]}"


INTENT_NAME = r"^[a-z][a-z0-9_]{1,62}$"


class CustomIntent(models.Model):
    """A business's own intent, learnt from a few example phrases (no training step to run)."""

    name = models.CharField(
        _("name"),
        max_length=64,
        unique=True,
        help_text=_("Lower case letters, digits and underscores, for example loan_application."),
    )
    description = models.CharField(_("description"), max_length=200, blank=True)
    examples = models.TextField(
        _("example phrases"),
        help_text=_("One phrase per line, at least three, in the languages your customers write in."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("custom intent")
        verbose_name_plural = _("custom intents")
        ordering = ["name"]
        constraints = [models.CheckConstraint(condition=Q(name__regex=INTENT_NAME), name="ai_customintent_name_format")]

    def __str__(self) -> str:
        return self.name

    def example_list(self) -> list[str]:
        return [line.strip() for line in self.examples.splitlines() if line.strip()]

    def clean(self) -> None:
        from apps.ai.intents import DEFAULT_INTENTS, UNKNOWN

        if self.name in (*DEFAULT_INTENTS, UNKNOWN):
            raise ValidationError({"name": _("This is one of the built-in intents; choose another name.")})
        if len(self.example_list()) < 3:
            raise ValidationError({"examples": _("Give at least three example phrases, one per line.")})
