"""The AI engine in a tenant's back office: its settings (keys write-only) and its usage."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db import models
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from apps.ai.models import SINGLETON_ID, AISettings, AIUsage, CustomIntent
from apps.ai.selectors import custom_intents_forget
from apps.core.admin_sites import tenant_admin_site

KEY_FIELDS = ("openai_api_key", "anthropic_api_key", "google_api_key")


class AISettingsForm(forms.ModelForm[AISettings]):
    """API keys are write-only: never rendered back; empty keeps the stored key, `clear` removes it."""

    openai_api_key = forms.CharField(label=_("OpenAI API key"), required=False, widget=forms.PasswordInput())
    anthropic_api_key = forms.CharField(label=_("Anthropic API key"), required=False, widget=forms.PasswordInput())
    google_api_key = forms.CharField(label=_("Google API key"), required=False, widget=forms.PasswordInput())
    clear_keys = forms.MultipleChoiceField(
        label=_("Remove keys"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        choices=[(name, name.split("_")[0].title()) for name in KEY_FIELDS],
    )

    class Meta:
        model = AISettings
        fields = [
            "provider_order",
            "openai_api_key",
            "anthropic_api_key",
            "google_api_key",
            "openai_base_url",
            "anthropic_base_url",
            "google_base_url",
            "task_models",
            "request_timeout_seconds",
            "monthly_token_budget",
            "monthly_cost_budget",
            "on_budget_exhausted",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in KEY_FIELDS:
            self.initial[name] = ""  # PasswordInput does not render values; keep initial empty too
            stored = bool(self.instance.pk and self.instance.api_key_for(name.removesuffix("_api_key")))
            self.fields[name].help_text = _("A key is saved. Leave empty to keep it.") if stored else ""

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        removed = set(cleaned.get("clear_keys") or ())
        for name in KEY_FIELDS:
            if name in removed:
                cleaned[name] = ""
            elif not cleaned.get(name) and self.instance.pk:
                cleaned[name] = getattr(self.instance, name)
        return cleaned


class AISettingsAdmin(admin.ModelAdmin[AISettings]):
    form = AISettingsForm
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    fieldsets = [
        (None, {"fields": ["provider_order", "task_models", "request_timeout_seconds"]}),
        (_("API keys"), {"fields": ["openai_api_key", "anthropic_api_key", "google_api_key", "clear_keys"]}),
        (_("Endpoints"), {"fields": ["openai_base_url", "anthropic_base_url", "google_base_url"]}),
        (_("Budget"), {"fields": ["monthly_token_budget", "monthly_cost_budget", "on_budget_exhausted"]}),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not AISettings.objects.exists() and super().has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: AISettings | None = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # One row per tenant: the list is the form.
        if AISettings.objects.exists():
            return HttpResponseRedirect(reverse("admin:ai_aisettings_change", args=[SINGLETON_ID]))
        return HttpResponseRedirect(reverse("admin:ai_aisettings_add"))

    def save_model(self, request: HttpRequest, obj: AISettings, form: Any, change: bool) -> None:
        obj.pk = SINGLETON_ID
        super().save_model(request, obj, form, change)


class AIUsageAdmin(admin.ModelAdmin[AIUsage]):
    list_display = ["day", "task", "provider", "model", "requests", "failures", "tokens_in", "tokens_out", "cost_usd"]
    list_filter = ["day", "task", "provider", "model"]
    date_hierarchy = "day"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AIUsage | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AIUsage | None = None) -> bool:
        return False


tenant_admin_site.register(AISettings, AISettingsAdmin)
tenant_admin_site.register(AIUsage, AIUsageAdmin)


class CustomIntentAdmin(admin.ModelAdmin[CustomIntent]):
    list_display = ["name", "description", "is_active", "updated"]
    list_filter = ["is_active"]
    search_fields = ["name", "description", "examples"]

    def save_model(self, request: HttpRequest, obj: CustomIntent, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        custom_intents_forget()

    def delete_model(self, request: HttpRequest, obj: CustomIntent) -> None:
        super().delete_model(request, obj)
        custom_intents_forget()


tenant_admin_site.register(CustomIntent, CustomIntentAdmin)
