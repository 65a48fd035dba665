"""WhatsApp in the back offices: numbers, the ingestion console (with replay), the outbox, media.

Numbers and webhook events live in the public schema. In a tenant's back office every
queryset is filtered by `request.tenant`: a business sees its own numbers and events only.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from apps.core.admin_sites import platform_admin_site, tenant_admin_site
from apps.core.exceptions import ApplicationError
from apps.core.tenancy import current_schema
from apps.tenants.models import WebhookEvent, WhatsAppAccount
from apps.whatsapp.models import Media, MessageTemplate, OutboxMessage
from apps.whatsapp.numbers import NumberClaim, WhatsAppBusinessAccountInvalid, whatsapp_number_claim_check
from apps.whatsapp.processing import webhook_event_replay

SECRET_FIELDS = ("access_token", "app_secret", "verify_token")
# Neutral on purpose: it must not tell one tenant that another has the number, nor whom.
NUMBER_TAKEN = _("This number is already connected to Imaradesk. If it is yours, contact support.")


class WhatsAppAccountForm(forms.ModelForm[WhatsAppAccount]):
    """Secrets are write-only: shown empty, and an empty field keeps the stored value."""

    access_token = forms.CharField(
        label=_("Access token"),
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("A permanent system-user token from Meta Business Manager. Leave empty to keep the current one."),
    )
    app_secret = forms.CharField(
        label=_("App secret"),
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("Only if this number uses your own Meta app. Leave empty to keep the current one."),
    )
    verify_token = forms.CharField(
        label=_("Webhook verify token"),
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("Only if this number uses your own Meta app. Leave empty to keep the current one."),
    )

    class Meta:
        model = WhatsAppAccount
        fields = [
            "name",
            "phone_number_id",
            "display_phone_number",
            "waba_id",
            "transport",
            "access_token",
            "app_secret",
            "verify_token",
            "rate_limit_per_second",
            "is_active",
        ]
        error_messages = {"phone_number_id": {"unique": NUMBER_TAKEN}}

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        for name in SECRET_FIELDS:
            if not cleaned.get(name) and self.instance.pk:
                cleaned[name] = getattr(self.instance, name)
        transport = cleaned.get("transport")
        if transport == WhatsAppAccount.Transport.CLOUD and not cleaned.get("access_token"):
            self.add_error("access_token", _("A Cloud API number needs an access token."))
        rate = cleaned.get("rate_limit_per_second")
        if rate is not None and not 1 <= rate <= 1000:
            self.add_error("rate_limit_per_second", _("Between 1 and 1,000 messages per second."))
        if not any(name in self.errors for name in ("phone_number_id", "transport", "access_token")):
            self._claim_check(cleaned)
        return cleaned

    def _claim_check(self, cleaned: dict[str, Any]) -> None:
        """Only whoever proves the number theirs connects it (see apps.whatsapp.numbers)."""
        stored = WhatsAppAccount.objects.filter(pk=self.instance.pk).first() if self.instance.pk else None
        claim = NumberClaim(
            phone_number_id=cleaned.get("phone_number_id") or "",
            transport=cleaned.get("transport") or "",
            access_token=cleaned.get("access_token") or "",
            stored=stored,
            waba_id=(cleaned.get("waba_id") or "").strip(),
        )
        try:
            verified = whatsapp_number_claim_check(claim=claim)
        except ApplicationError as exc:
            # On the ID field (or the account's): the uniqueness check then skips it, so a
            # refused claim never learns whether someone else has the number.
            field = "waba_id" if isinstance(exc, WhatsAppBusinessAccountInvalid) else "phone_number_id"
            self.add_error(field, exc.message)
            return
        if verified is not None:
            # Meta's word for what the number is, not what was typed.
            if verified.display_phone_number:
                cleaned["display_phone_number"] = verified.display_phone_number
            self.instance.verified_name = verified.verified_name
            self.instance.verified_at = timezone.now()
        elif claim.needs_proof:
            self.instance.verified_name = ""
            self.instance.verified_at = None

    def validate_unique(self) -> None:
        # Whether an ID is taken is said only to someone whose number passed every other check.
        if not self.errors:
            super().validate_unique()


def _templates_sync_queue(modeladmin: Any, request: HttpRequest, accounts: list[WhatsAppAccount]) -> None:
    from apps.whatsapp.tasks import message_templates_sync_task

    queued = 0
    for account in accounts:
        if account.transport == WhatsAppAccount.Transport.CLOUD and not account.waba_id:
            modeladmin.message_user(
                request,
                _("%(number)s has no WhatsApp Business account ID: add it to the number first.") % {"number": account},
                level=messages.WARNING,
            )
            continue
        message_templates_sync_task.apply_async(args=(account.pk,), headers={"_schema_name": current_schema()})
        queued += 1
    if queued:
        modeladmin.message_user(
            request,
            ngettext(
                "Fetching the templates of %(count)d number from WhatsApp; reload the templates list in a minute.",
                "Fetching the templates of %(count)d numbers from WhatsApp; reload the templates list in a minute.",
                queued,
            )
            % {"count": queued},
        )


@admin.action(description=_("Fetch message templates from WhatsApp"))
def templates_sync(modeladmin: Any, request: HttpRequest, queryset: QuerySet[WhatsAppAccount]) -> None:
    _templates_sync_queue(modeladmin, request, list(queryset))


class TenantWhatsAppAccountAdmin(admin.ModelAdmin[WhatsAppAccount]):
    form = WhatsAppAccountForm
    actions = [templates_sync]
    list_display = [
        "name",
        "display_phone_number",
        "phone_number_id",
        "transport",
        "rate_limit_per_second",
        "is_active",
    ]
    search_fields = ["name", "display_phone_number", "phone_number_id"]
    readonly_fields = ["verified_name", "verified_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[WhatsAppAccount]:
        return super().get_queryset(request).filter(tenant=request.tenant)  # type: ignore[attr-defined]

    def save_model(self, request: HttpRequest, obj: WhatsAppAccount, form: Any, change: bool) -> None:
        obj.tenant = request.tenant  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # conversations and sends refer to it: switch it off ("active") instead


class PlatformWhatsAppAccountAdmin(admin.ModelAdmin[WhatsAppAccount]):
    form = WhatsAppAccountForm
    list_display = [
        "name",
        "tenant",
        "display_phone_number",
        "phone_number_id",
        "transport",
        "verified_at",
        "is_active",
    ]
    list_filter = ["transport", "is_active"]
    list_select_related = ["tenant"]
    search_fields = ["name", "phone_number_id", "tenant__name"]
    # A Cloud number added before numbers were verified has no date here: check its owner.
    readonly_fields = ["verified_name", "verified_at"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        return super().get_form(request, obj, change=change, fields=["tenant", *WhatsAppAccountForm.Meta.fields])

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # tenants' conversations and sends refer to it: switch it off instead


@admin.action(description=_("Replay (process again)"))
def replay_events(modeladmin: Any, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
    count = 0
    for event in queryset:
        webhook_event_replay(event=event)
        count += 1
    modeladmin.message_user(
        request, ngettext("%(count)d event queued again.", "%(count)d events queued again.", count) % {"count": count}
    )


class WebhookEventAdmin(admin.ModelAdmin[WebhookEvent]):
    """The ingestion console: what arrived, how it was signed, what became of it, and how fast."""

    list_display = [
        "received_at",
        "kind",
        "state",
        "phone_number_id",
        "waba_id",
        "signature",
        "attempts",
        "processing_ms",
        "short_error",
    ]
    list_filter = ["state", "kind", "signature"]
    search_fields = ["dedup_key", "phone_number_id", "waba_id"]
    actions = [replay_events]
    readonly_fields = [
        "received_at",
        "tenant",
        "phone_number_id",
        "waba_id",
        "kind",
        "dedup_key",
        "signature",
        "state",
        "attempts",
        "error",
        "enqueued_at",
        "processed_at",
        "processing_ms",
        "pretty_payload",
    ]
    exclude = ["payload"]
    date_hierarchy = "received_at"

    @admin.display(description=_("error"))
    def short_error(self, obj: WebhookEvent) -> str:
        return obj.error[:80]

    @admin.display(description=_("payload"))
    def pretty_payload(self, obj: WebhookEvent) -> str:
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", json.dumps(obj.payload, indent=2))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TenantWebhookEventAdmin(WebhookEventAdmin):
    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookEvent]:
        return super().get_queryset(request).filter(tenant=request.tenant)  # type: ignore[attr-defined]


class PlatformWebhookEventAdmin(WebhookEventAdmin):
    list_display = ["received_at", "tenant", *WebhookEventAdmin.list_display[1:]]
    list_select_related = ["tenant"]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        orphans = WebhookEvent.objects.filter(state=WebhookEvent.State.ORPHAN).count()
        if orphans and "state__exact" not in request.GET:
            self.message_user(
                request,
                ngettext(
                    "%(count)d event is for a number or WhatsApp Business account no organization owns: filter by "
                    "state Orphan, add the number (with its WhatsApp Business account ID), then replay.",
                    "%(count)d events are for numbers or WhatsApp Business accounts no organization owns: filter by "
                    "state Orphan, add the number (with its WhatsApp Business account ID), then replay.",
                    orphans,
                )
                % {"count": orphans},
                level=messages.WARNING,
            )
        return super().changelist_view(request, extra_context)


class OutboxMessageAdmin(admin.ModelAdmin[OutboxMessage]):
    list_display = ["created", "to_wa_id", "kind", "status", "delivery_status", "attempts", "error_code", "wamid"]
    list_filter = ["status", "delivery_status", "kind", "priority"]
    search_fields = ["to_wa_id", "wamid", "idempotency_key"]
    date_hierarchy = "created"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [field.name for field in OutboxMessage._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class MediaAdmin(admin.ModelAdmin[Media]):
    list_display = ["created", "kind", "mime_type", "size", "status", "file"]
    list_filter = ["status", "kind"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [field.name for field in Media._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.action(description=_("Refresh from WhatsApp"))
def templates_refresh(modeladmin: Any, request: HttpRequest, queryset: QuerySet[MessageTemplate]) -> None:
    ids = set(queryset.values_list("account_id", flat=True))
    tenant = request.tenant  # type: ignore[attr-defined]
    _templates_sync_queue(modeladmin, request, list(WhatsAppAccount.objects.filter(pk__in=ids, tenant=tenant)))


class MessageTemplateAdmin(admin.ModelAdmin[MessageTemplate]):
    """Templates are written and approved in WhatsApp Manager; here they are read, and refreshed."""

    list_display = [
        "name",
        "language",
        "category",
        "status",
        "status_note",
        "variable_count",
        "is_sendable",
        "account",
        "synced_at",
    ]
    list_filter = ["status", "category", "language", "is_sendable"]
    search_fields = ["name", "body_text"]
    list_select_related = ["account"]
    actions = [templates_refresh]

    @admin.display(description=_("status reason"))
    def status_note(self, obj: MessageTemplate) -> str:
        """Meta's last status event where it is not the status itself (FLAGGED), and its reason."""
        event = obj.status_event if obj.status_event != obj.status else ""
        return " — ".join(part for part in (event, obj.status_reason) if part)[:200]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [field.name for field in MessageTemplate._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        if request.method == "GET" and not MessageTemplate.objects.exists():
            self.message_user(
                request,
                _(
                    "No templates yet: select your numbers under WhatsApp numbers and run "
                    "'Fetch message templates from WhatsApp'. They are also refreshed every 6 hours."
                ),
                level=messages.INFO,
            )
        return super().changelist_view(request, extra_context)


tenant_admin_site.register(WhatsAppAccount, TenantWhatsAppAccountAdmin)
tenant_admin_site.register(MessageTemplate, MessageTemplateAdmin)
tenant_admin_site.register(WebhookEvent, TenantWebhookEventAdmin)
tenant_admin_site.register(OutboxMessage, OutboxMessageAdmin)
tenant_admin_site.register(Media, MediaAdmin)
platform_admin_site.register(WhatsAppAccount, PlatformWhatsAppAccountAdmin)
platform_admin_site.register(WebhookEvent, PlatformWebhookEventAdmin)
