"""Message templates: the catalogue of the number's WhatsApp Business account, synced from Meta.

Outside the 24-hour customer service window only an approved template may be sent (131047).
Meta owns the templates (they are written and approved in WhatsApp Manager); Imaradesk keeps
a copy per number, refreshed by `message_templates_sync` (a Celery task, an admin action and
a periodic refresh) and, between refreshes, by Meta's template webhooks (status and category,
`message_template_status_apply`, `message_template_category_apply`), and sends them with
`messages.template`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.core.exceptions import ApplicationError, NotFoundError
from apps.core.tenancy import current_schema
from apps.tenants.models import WhatsAppAccount
from apps.tenants.selectors import organization_current
from apps.whatsapp import messages as wa
from apps.whatsapp.client import WhatsAppClient
from apps.whatsapp.models import MessageTemplate
from apps.whatsapp.payloads.templates import TemplateCategoryUpdate, TemplateStatusUpdate

logger = logging.getLogger(__name__)

_ANY_VARIABLE = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")
# Meta's sample templates, so that a sandbox number (the demo) has a catalogue to pick from.
SANDBOX_TEMPLATES: list[dict[str, Any]] = [
    {
        "id": "sandbox-hello-world",
        "name": "hello_world",
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Hello World"},
            {
                "type": "BODY",
                "text": "Welcome and congratulations!! This message demonstrates your ability to "
                "send a WhatsApp message notification from the Cloud API.",
            },
            {"type": "FOOTER", "text": "WhatsApp Business Platform sample message"},
        ],
    },
    {
        "id": "sandbox-follow-up-en",
        "name": "follow_up",
        "language": "en",
        "status": "APPROVED",
        "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Hello {{1}}, we have an update about your request: {{2}}"}],
    },
    {
        "id": "sandbox-follow-up-sw",
        "name": "follow_up",
        "language": "sw",
        "status": "APPROVED",
        "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Habari {{1}}, tuna taarifa kuhusu ombi lako: {{2}}"}],
    },
]


class TemplatesUnavailable(ApplicationError):
    code = "templates_unavailable"


class TemplateNotFound(NotFoundError):
    code = "template_not_found"


@dataclass(frozen=True)
class SyncReport:
    created: int
    updated: int
    removed: int

    @property
    def total(self) -> int:
        return self.created + self.updated


@dataclass(frozen=True)
class _Parsed:
    header_text: str
    body_text: str
    footer_text: str
    variable_count: int
    is_sendable: bool


def _parse(components: list[dict[str, Any]], category: str) -> _Parsed:
    """The texts, the number of body variables, and whether body variables are all it needs."""
    header = body = footer = ""
    sendable = category != MessageTemplate.Category.AUTHENTICATION  # needs a one-time code button
    for component in components:
        kind = str(component.get("type", "")).upper()
        text = str(component.get("text", "") or "")
        if kind == "HEADER":
            if str(component.get("format", "TEXT")).upper() != "TEXT" or _ANY_VARIABLE.search(text):
                sendable = False  # a media header or a header variable needs a parameter of its own
            header = text
        elif kind == "BODY":
            body = text
        elif kind == "FOOTER":
            footer = text
        elif kind == "BUTTONS":
            for button in component.get("buttons") or []:
                button_type = str(button.get("type", "")).upper()
                dynamic_url = button_type == "URL" and _ANY_VARIABLE.search(str(button.get("url", "")))
                if dynamic_url or button_type not in {"QUICK_REPLY", "PHONE_NUMBER", "URL"}:
                    sendable = False
    names = _ANY_VARIABLE.findall(body)
    if any(not name.isdigit() for name in names):
        sendable = False  # named parameters: the inbox fills positional ones
    return _Parsed(header[:60], body, footer[:60], wa.template_variable_count(body), sendable)


def _choice(value: Any, choices: type[MessageTemplate.Status] | type[MessageTemplate.Category]) -> str:
    text = str(value or "").upper()
    return text if text in choices.values else "OTHER"


def _upsert(account: WhatsAppAccount, items: list[dict[str, Any]], *, asked_at: datetime) -> SyncReport:
    # Locked: a status webhook applied meanwhile is seen here, not overwritten with what was read before it.
    existing = {(t.name, t.language): t for t in MessageTemplate.objects.select_for_update().filter(account=account)}
    created = updated = 0
    seen: set[tuple[str, str]] = set()
    for item in items:
        name, language = str(item.get("name", ""))[:512], str(item.get("language", ""))[:15]
        if not name or not language or (name, language) in seen:
            continue
        seen.add((name, language))
        components = [c for c in item.get("components") or [] if isinstance(c, dict)]
        category = _choice(item.get("category"), MessageTemplate.Category)
        parsed = _parse(components, category)
        template = existing.get((name, language))
        status = _choice(item.get("status"), MessageTemplate.Status)
        if template is not None and template.status_event_at is not None and template.status_event_at > asked_at:
            status = template.status  # Meta's webhook sent after we asked is newer than this answer
        values = {
            "template_id": str(item.get("id", ""))[:64],
            "category": category,
            "status": status,
            "components": components,
            "header_text": parsed.header_text,
            "body_text": parsed.body_text,
            "footer_text": parsed.footer_text,
            "variable_count": parsed.variable_count,
            "is_sendable": parsed.is_sendable,
            "synced_at": asked_at,
        }
        if template is None:
            MessageTemplate.objects.create(account=account, name=name, language=language, **values)
            created += 1
        else:
            if template.status != values["status"]:
                # Meta's last status webhook no longer explains the status Meta shows now.
                values = {**values, "status_event": "", "status_reason": ""}
            for field, value in values.items():
                setattr(template, field, value)
            template.save()
            updated += 1
    gone = [t.pk for key, t in existing.items() if key not in seen]
    MessageTemplate.objects.filter(pk__in=gone).delete()  # deleted in WhatsApp Manager
    return SyncReport(created=created, updated=updated, removed=len(gone))


def message_templates_sync(*, account: WhatsAppAccount, client: WhatsAppClient | None = None) -> SyncReport:
    """Fetch every template of the number's business account from Meta and store them; GraphApiError propagates."""
    asked_at = timezone.now()
    if account.transport == WhatsAppAccount.Transport.SANDBOX:
        items = SANDBOX_TEMPLATES
    else:
        if not account.waba_id:
            raise TemplatesUnavailable(
                _(
                    "The number %(number)s has no WhatsApp Business account ID: add it to the number "
                    "(WhatsApp Manager, Account tools) to fetch its templates."
                )
                % {"number": account.display_phone_number or account.phone_number_id},
                extra={"account": account.pk},
            )
        client = client or WhatsAppClient(phone_number_id=account.phone_number_id, access_token=account.access_token)
        items = client.message_templates(account.waba_id)  # outside the transaction: a slow Meta holds no lock
    with transaction.atomic():
        report = _upsert(account, items, asked_at=asked_at)
    logger.info("templates of number %s synced: %s", account.pk, report)
    return report


def message_templates_accounts() -> QuerySet[WhatsAppAccount]:
    """The current tenant's active numbers that have a template catalogue."""
    organization = organization_current()
    if organization is None:
        return WhatsAppAccount.objects.none()
    accounts = WhatsAppAccount.objects.filter(tenant=organization, is_active=True)
    return accounts.filter(transport=WhatsAppAccount.Transport.SANDBOX) | accounts.exclude(waba_id="")


def message_template_list_sendable(
    *, account: WhatsAppAccount, language: str = "", marketing: bool = True
) -> QuerySet[MessageTemplate]:
    """Approved templates an agent can send from this number, the customer's language first."""
    templates = MessageTemplate.objects.filter(
        account=account, status=MessageTemplate.Status.APPROVED, is_sendable=True
    )
    if not marketing:
        templates = templates.exclude(category=MessageTemplate.Category.MARKETING)
    base = language.split("_")[0].split("-")[0].lower()
    if not base:
        return templates.order_by("name", "language")
    rank = Case(
        When(language__iexact=language, then=Value(0)),
        When(language__iexact=base, then=Value(0)),
        When(language__istartswith=f"{base}_", then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    return templates.annotate(language_rank=rank).order_by("language_rank", "name", "language")


def message_template_get_sendable(*, account: WhatsAppAccount, template_id: int) -> MessageTemplate:
    template = message_template_list_sendable(account=account).filter(pk=template_id).first()
    if template is None:
        raise TemplateNotFound(
            _("That template is not approved for this number (any more): choose another one."),
            extra={"template": template_id},
        )
    return template


def message_template_catalogue(
    *, name: str, language: str, account: WhatsAppAccount | None = None
) -> list[tuple[str, str]]:
    """(category, status) of this template's copies in the catalogue: on one number, or on any of the tenant's.

    Sends name a template by name and language (a flow, a survey), as WhatsApp does; a template
    not in the catalogue (never synced) has no copy here.
    """
    templates = MessageTemplate.objects.filter(name=name, language=language)
    if account is not None:
        templates = templates.filter(account=account)
    return list(templates.values_list("category", "status"))


def message_template_render(template: MessageTemplate, variables: list[str]) -> str:
    """The text the customer reads: header, body with the variables filled in, footer."""

    def fill(match: re.Match[str]) -> str:
        index = int(match.group(1)) - 1 if match.group(1).isdigit() else -1
        return variables[index] if 0 <= index < len(variables) else match.group(0)

    body = _ANY_VARIABLE.sub(fill, template.body_text)
    return "\n".join(part for part in (template.header_text, body, template.footer_text) if part)


def message_template_outgoing(template: MessageTemplate, variables: list[str]) -> wa.Outgoing:
    """The Graph API message for this template with these body variables (checked against its count)."""
    outgoing = wa.template(
        template.name,
        template.language,
        body_params=[value.strip() for value in variables],
        expected_body_params=template.variable_count,
    )
    return wa.Outgoing(outgoing.kind, outgoing.payload, message_template_render(template, variables))


# --- Meta's template webhooks ------------------------------------------------------------------

# The status each event of message_template_status_update leaves a template in. FLAGGED is a
# warning (low quality: Meta keeps the template approved until it disables it), LOCKED and
# UNLOCKED are about editing it: the status stays. For any other event (UNARCHIVED,
# LIMIT_EXCEEDED, one Meta adds later) the catalogue is fetched again, so Meta says.
STATUS_AFTER_EVENT: dict[str, str | None] = {
    "APPROVED": MessageTemplate.Status.APPROVED,
    "REINSTATED": MessageTemplate.Status.APPROVED,
    "PENDING": MessageTemplate.Status.PENDING,
    "REJECTED": MessageTemplate.Status.REJECTED,
    "PAUSED": MessageTemplate.Status.PAUSED,
    "DISABLED": MessageTemplate.Status.DISABLED,
    "IN_APPEAL": MessageTemplate.Status.IN_APPEAL,
    "ARCHIVED": MessageTemplate.Status.ARCHIVED,
    "PENDING_DELETION": MessageTemplate.Status.PENDING_DELETION,
    "DELETED": MessageTemplate.Status.DELETED,
    "FLAGGED": None,
    "LOCKED": None,
    "UNLOCKED": None,
}
# A catalogue fetched this long after an event already shows it, and whatever came after: an
# older event (a redelivery days late, an orphan replayed) would only roll the status back.
SYNC_SUPERSEDES_AFTER = timedelta(minutes=5)
# Templates Meta reviews together are reported together: one fetch per number reads them all.
TEMPLATES_SYNC_DELAY = 30  # seconds


@dataclass(frozen=True)
class TemplateEventOutcome:
    applied: bool  # templates were changed, or their catalogue will be fetched
    note: str = ""  # why nothing was done, for the ingestion console


def _templates_named(
    accounts: list[WhatsAppAccount], template_id: str, name: str, language: str
) -> list[MessageTemplate]:
    """The copies (one per number) of the template Meta names: by its id, else by name and language."""
    templates = MessageTemplate.objects.select_for_update().filter(account__in=accounts).order_by("pk")
    if template_id:
        found = list(templates.filter(template_id=template_id))
        if found:
            return found
    if name and language:
        # The webhook writes the locale "en-US", the catalogue "en_US".
        return list(templates.filter(name=name, language__iexact=language.replace("-", "_")))
    return []


def _superseded(template: MessageTemplate, sent_at: datetime | None) -> bool:
    """Whether a newer status event, or a catalogue fetched well after, already said more than this."""
    if sent_at is None:
        return False
    if template.status_event_at is not None and sent_at < template.status_event_at:
        return True
    return sent_at < template.synced_at - SYNC_SUPERSEDES_AFTER


@cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def _templates_sync_soon(accounts: list[WhatsAppAccount]) -> int:
    """Fetch these numbers' catalogues from Meta shortly, after commit; return how many are asked for."""
    from apps.whatsapp.tasks import message_templates_sync_task

    schema = current_schema()  # the on-commit callback may run after the tenant's schema is left
    wanted = [account.pk for account in accounts if account.is_active]  # as the periodic refresh

    def send() -> None:
        for account_id in wanted:
            key = f"imaradesk:whatsapp:templates-sync:{schema}:{account_id}"
            try:
                # The flag lasts until the fetch is due: an event before then is covered by it.
                if _redis(settings.REDIS_URL).set(key, "1", ex=TEMPLATES_SYNC_DELAY, nx=True):
                    message_templates_sync_task.apply_async(
                        args=(account_id,), countdown=TEMPLATES_SYNC_DELAY, headers={"_schema_name": schema}
                    )
            except Exception:  # the periodic refresh fetches it anyway, within 6 hours
                logger.exception("could not queue a template fetch for number %s in %s", account_id, schema)

    if wanted:
        transaction.on_commit(send)
    return len(wanted)


def message_template_status_apply(
    *, accounts: list[WhatsAppAccount], update: TemplateStatusUpdate
) -> TemplateEventOutcome:
    """Apply Meta's status event to the template's copies in these numbers' catalogues (idempotent)."""
    templates = _templates_named(accounts, update.template_id, update.name, update.language)
    known = update.event in STATUS_AFTER_EVENT
    # Found by name only while Meta's id differs: the template was made anew, its text may differ.
    remade = bool(update.template_id) and any(t.template_id not in ("", update.template_id) for t in templates)
    changed = 0
    for template in templates:
        if _superseded(template, update.sent_at):
            continue
        if known and (status := STATUS_AFTER_EVENT[update.event]) is not None:
            template.status = status
        template.status_event = update.event
        template.status_reason = update.reason
        template.status_event_at = update.sent_at or template.status_event_at
        template.template_id = template.template_id or update.template_id
        template.save(update_fields=["status", "status_event", "status_reason", "status_event_at", "template_id"])
        changed += 1
    fetching = _templates_sync_soon(accounts) if not templates or not known or remade else 0
    if changed or fetching:
        return TemplateEventOutcome(applied=True)
    if templates:
        return TemplateEventOutcome(
            False, "Older than the status already applied (or than the catalogue fetched since)."
        )
    return TemplateEventOutcome(False, "Not in the catalogue, and no number of the account is active to fetch it.")


def message_template_category_apply(
    *, accounts: list[WhatsAppAccount], update: TemplateCategoryUpdate
) -> TemplateEventOutcome:
    """Move the template's copies to the category Meta gives it now (the marketing rules follow it)."""
    templates = _templates_named(accounts, update.template_id, update.name, update.language)
    if not templates:
        return TemplateEventOutcome(False, "Not in the catalogue: the next fetch brings it with its category.")
    category = _choice(update.category, MessageTemplate.Category)
    for template in templates:
        template.category = category
        # An authentication template needs a one-time code the inbox cannot give.
        template.is_sendable = _parse(template.components, category).is_sendable
        template.save(update_fields=["category", "is_sendable"])
    return TemplateEventOutcome(applied=True)
