"""Template webhooks of a WhatsApp Business account (WABA): no phone number, `entry.id` is the
account. They are routed to the tenants whose numbers are in that account, applied in those
tenants' schemas, deduplicated like every webhook, and never signed across tenants."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.conf import settings
from django.test import Client
from django.utils import timezone

from apps.accounts.models import User
from apps.core.tenancy import schema_context, tenant_context
from apps.tenants.models import WebhookEvent, WhatsAppAccount
from apps.whatsapp.message_templates import (
    TemplateNotFound,
    message_template_get_sendable,
    message_template_list_sendable,
    message_templates_sync,
)
from apps.whatsapp.models import MessageTemplate
from apps.whatsapp.processing import webhook_event_process, webhook_event_replay
from apps.whatsapp.tasks import message_templates_sync_task
from apps.whatsapp.webhooks import routes_forget
from tests import whatsapp_payloads as wp
from tests.conftest import PASSWORD, TenantSetup
from tests.fakes.graph_api import FakeGraphApi

pytestmark = pytest.mark.django_db

WABA_A = "102290129340398"
WABA_B = "102290129340399"
BETA_SECRET = "beta-own-app-secret"


def _account_set(tenant: TenantSetup, waba_id: str, *, app_secret: str | None = None) -> None:
    # update(), not save(): the session's number objects outlive each test's transaction.
    fields: dict[str, Any] = {"waba_id": waba_id}
    if app_secret is not None:
        fields["app_secret"] = app_secret
    WhatsAppAccount.objects.filter(pk=tenant.whatsapp.pk).update(**fields)
    routes_forget()


@pytest.fixture
def accounts(tenant_a: TenantSetup, tenant_b: TenantSetup) -> None:
    """Alpha's number is in account A, Beta's in account B."""
    _account_set(tenant_a, WABA_A)
    _account_set(tenant_b, WABA_B)


def _template(
    account_id: int,
    template_id: str,
    *,
    name: str = "order_ready",
    language: str = "en_US",
    status: str = "APPROVED",
    category: str = "UTILITY",
    synced_ago: timedelta = timedelta(hours=1),
) -> MessageTemplate:
    return MessageTemplate.objects.create(
        account_id=account_id,
        template_id=template_id,
        name=name,
        language=language,
        category=category,
        status=status,
        components=[{"type": "BODY", "text": "Hello {{1}}, your order is ready."}],
        body_text="Hello {{1}}, your order is ready.",
        variable_count=1,
        is_sendable=True,
        synced_at=timezone.now() - synced_ago,
    )


def _events(tenant: TenantSetup | None) -> list[WebhookEvent]:
    organization = tenant.organization if tenant is not None else None
    return list(WebhookEvent.objects.filter(tenant=organization).order_by("id"))


def _process_pending() -> list[str]:
    pending = WebhookEvent.objects.filter(state=WebhookEvent.State.PENDING).order_by("id")
    return [webhook_event_process(event_id=event_id) for event_id in pending.values_list("pk", flat=True)]


def _status(
    template_id: str,
    event: str,
    *,
    at: int,
    waba: str = WABA_A,
    name: str = "order_ready",
    language: str = "en_US",
    **extra: Any,
) -> dict[str, Any]:
    """Meta's message_template_status_update for one template (Meta sends the id as a number)."""
    return wp.template_status(
        waba, event, template_id=int(template_id), name=name, language=language, time_sent=at, **extra
    )


def _platform_admin() -> Client:
    with schema_context("public"):
        user = User.objects.create_superuser(
            username="root@platform.test", email="root@platform.test", password=PASSWORD
        )
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


# --- routing: the account's tenants, and only them ----------------------------------------------


def test_a_paused_template_stops_being_sendable_in_its_tenant_only(
    tenant_a: TenantSetup, tenant_b: TenantSetup, accounts: None
) -> None:
    with tenant_context(tenant_a.organization):
        alpha = _template(tenant_a.whatsapp.pk, "1689556908129832")
    with tenant_context(tenant_b.organization):
        beta = _template(tenant_b.whatsapp.pk, "1689556908129833")  # the same name and language
    pause = _status(
        "1689556908129832",
        "PAUSED",
        at=int(time.time()),
        other_info={"title": "FIRST_PAUSE", "description": "Your WhatsApp message template has been paused."},
    )

    response = wp.post(pause)
    assert response.status_code == 200
    # Stored before the ack, for Alpha only: Beta's schema never hears of it.
    [event] = _events(tenant_a)
    assert (event.kind, event.state, event.signature) == ("account", "pending", "platform")
    assert _events(tenant_b) == [] and _events(None) == []
    assert webhook_event_process(event_id=event.pk) == "processed"

    with tenant_context(tenant_a.organization):
        alpha.refresh_from_db()
        assert (alpha.status, alpha.status_event) == ("PAUSED", "PAUSED")
        assert "FIRST_PAUSE" in alpha.status_reason
        assert not message_template_list_sendable(account=tenant_a.whatsapp).exists()
        with pytest.raises(TemplateNotFound):
            message_template_get_sendable(account=tenant_a.whatsapp, template_id=alpha.pk)
    with tenant_context(tenant_b.organization):
        beta.refresh_from_db()
        assert (beta.status, beta.status_reason) == ("APPROVED", "")
        assert list(message_template_list_sendable(account=tenant_b.whatsapp)) == [beta]


def test_every_number_of_the_account_is_updated_and_a_shared_account_reaches_each_tenant_once(
    tenant_a: TenantSetup, tenant_b: TenantSetup, accounts: None
) -> None:
    """Templates belong to the account: each of its numbers keeps a copy, in whichever tenant."""
    second = WhatsAppAccount.objects.create(
        tenant=tenant_a.organization, name="Alpha sales", phone_number_id="100000000000077", waba_id=WABA_A
    )
    _account_set(tenant_b, WABA_A)  # an agency's account, with a number for each of two clients
    with tenant_context(tenant_a.organization):
        _template(tenant_a.whatsapp.pk, "41")
        _template(second.pk, "41")
    with tenant_context(tenant_b.organization):
        _template(tenant_b.whatsapp.pk, "41")

    payload = _status("41", "REJECTED", at=int(time.time()), reason="INCORRECT_CATEGORY")
    assert wp.post(payload).json() == {"received": 2, "new": 2}
    assert wp.post(payload).json() == {"received": 2, "new": 0}  # Meta's redelivery
    assert [len(_events(tenant_a)), len(_events(tenant_b))] == [1, 1]
    assert _process_pending() == ["processed", "processed"]
    for tenant in (tenant_a, tenant_b):
        with tenant_context(tenant.organization):
            assert set(MessageTemplate.objects.values_list("status", "status_reason")) == {
                ("REJECTED", "INCORRECT_CATEGORY")
            }


def test_an_unknown_business_account_reaches_no_tenant_and_stays_an_orphan(
    tenant_a: TenantSetup, tenant_b: TenantSetup, accounts: None
) -> None:
    with tenant_context(tenant_a.organization):
        _template(tenant_a.whatsapp.pk, "77")
    with tenant_context(tenant_b.organization):
        _template(tenant_b.whatsapp.pk, "77")
    response = wp.post(_status("77", "DISABLED", at=int(time.time()), waba="999999999999999"))
    assert response.status_code == 200

    [orphan] = _events(None)
    assert (orphan.state, orphan.waba_id, orphan.kind) == ("orphan", "999999999999999", "account")
    assert _events(tenant_a) == [] and _events(tenant_b) == []
    assert webhook_event_process(event_id=orphan.pk) == "orphan"
    for tenant in (tenant_a, tenant_b):
        with tenant_context(tenant.organization):
            assert MessageTemplate.objects.get().status == "APPROVED"
    page = _platform_admin().get("/admin/tenants/webhookevent/")
    assert b"no organization owns" in page.content


def test_an_orphan_replayed_once_its_account_is_added_reaches_that_tenant(
    tenant_a: TenantSetup, accounts: None
) -> None:
    late = "555000111222333"
    assert wp.post(_status("88", "PAUSED", at=int(time.time()), waba=late)).status_code == 200
    [orphan] = _events(None)
    assert orphan.state == "orphan"

    _account_set(tenant_a, late)  # the number gets its account ID, then the admin replays
    with tenant_context(tenant_a.organization):
        template = _template(tenant_a.whatsapp.pk, "88")
    webhook_event_replay(event=orphan)
    assert webhook_event_process(event_id=orphan.pk) == "processed"
    [routed] = _events(tenant_a)
    assert (routed.state, routed.waba_id) == ("pending", late)
    assert _process_pending() == ["processed"]
    with tenant_context(tenant_a.organization):
        template.refresh_from_db()
        assert template.status == "PAUSED"


@pytest.mark.parametrize(
    "field",
    ["message_template_quality_update", "phone_number_quality_update", "account_update"],
)
def test_other_business_account_changes_are_ignored_with_their_field_not_orphaned(
    tenant_a: TenantSetup, accounts: None, field: str
) -> None:
    value = {"message_template_id": 41, "previous_quality_score": "GREEN", "new_quality_score": "YELLOW"}
    assert wp.post(wp.business_account_change(WABA_A, field, value)).status_code == 200
    [event] = _events(tenant_a)
    assert _process_pending() == ["ignored"]
    event.refresh_from_db()
    assert field in event.error
    assert not WebhookEvent.objects.filter(state=WebhookEvent.State.ORPHAN).exists()
    # The back office's orphan warning is for numbers nobody owns, not for Meta's routine news.
    page = _platform_admin().get("/admin/tenants/webhookevent/")
    assert page.status_code == 200
    assert b"no organization owns" not in page.content


# --- what each event does --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "before", "after", "sendable"),
    [
        ("APPROVED", "PENDING", "APPROVED", True),
        ("REINSTATED", "PAUSED", "APPROVED", True),
        ("FLAGGED", "APPROVED", "APPROVED", True),  # a warning: Meta keeps it approved until it is disabled
        ("PAUSED", "APPROVED", "PAUSED", False),
        ("REJECTED", "PENDING", "REJECTED", False),
        ("DISABLED", "APPROVED", "DISABLED", False),
        ("IN_APPEAL", "REJECTED", "IN_APPEAL", False),
        ("PENDING", "APPROVED", "PENDING", False),
        ("ARCHIVED", "APPROVED", "ARCHIVED", False),
        ("PENDING_DELETION", "APPROVED", "PENDING_DELETION", False),
        ("DELETED", "APPROVED", "DELETED", False),
    ],
)
def test_each_meta_event_leaves_the_status_it_means(
    tenant_a: TenantSetup, accounts: None, event: str, before: str, after: str, sendable: bool
) -> None:
    with tenant_context(tenant_a.organization):
        template = _template(tenant_a.whatsapp.pk, "41", status=before)
    wp.post(_status("41", event, at=int(time.time())))
    assert _process_pending() == ["processed"]
    with tenant_context(tenant_a.organization):
        template.refresh_from_db()
        assert (template.status, template.status_event) == (after, event)
        assert message_template_list_sendable(account=tenant_a.whatsapp).exists() is sendable


def test_a_rejection_keeps_metas_reason_for_the_admin(tenant_a: TenantSetup, accounts: None) -> None:
    with tenant_context(tenant_a.organization):
        template = _template(tenant_a.whatsapp.pk, "41", status="PENDING")
    rejection = {"reason": "Variable parameters are not defined.", "recommendation": "Add sample values."}
    wp.post(_status("41", "REJECTED", at=int(time.time()), reason="INVALID_FORMAT", rejection_info=rejection))
    assert _process_pending() == ["processed"]
    with tenant_context(tenant_a.organization):
        template.refresh_from_db()
        assert "INVALID_FORMAT" in template.status_reason
        assert "Variable parameters are not defined." in template.status_reason
    client = tenant_a.client()
    client.post("/admin/login/", {"username": tenant_a.admin_email, "password": tenant_a.password})
    listing = client.get("/admin/whatsapp/messagetemplate/")
    assert b"INVALID_FORMAT" in listing.content


def test_the_template_is_found_by_name_and_language_when_its_id_is_not_known(
    tenant_a: TenantSetup, accounts: None
) -> None:
    with tenant_context(tenant_a.organization):
        template = _template(tenant_a.whatsapp.pk, "")  # e.g. stored before Meta gave ids
    # Meta writes the webhook's locale with a hyphen, the catalogue's with an underscore.
    wp.post(_status("41", "PAUSED", at=int(time.time()), language="en-US"))
    assert _process_pending() == ["processed"]
    with tenant_context(tenant_a.organization):
        template.refresh_from_db()
        assert template.status == "PAUSED"


# --- at least once: duplicates, order, replays --------------------------------------------------


def test_applying_the_same_update_twice_changes_nothing(tenant_a: TenantSetup, accounts: None) -> None:
    with tenant_context(tenant_a.organization):
        template = _template(tenant_a.whatsapp.pk, "41")
    wp.post(_status("41", "DISABLED", at=int(time.time())))
    [event] = _events(tenant_a)
    assert webhook_event_process(event_id=event.pk) == "processed"
    with tenant_context(tenant_a.organization):
        template.refresh_from_db()
        first = (template.status, template.status_event, template.status_reason, template.status_event_at)

    webhook_event_replay(event=event)  # the admin's replay, or a worker that ran it twice
    assert webhook_event_process(event_id=event.pk) == "processed"
    with tenant_context(tenant_a.organization):
        template.refresh_from_db()
        assert (template.status, template.status_event, template.status_reason, template.status_event_at) == first


def test_the_same_event_later_again_is_not_taken_for_a_redelivery(tenant_a: TenantSetup, accounts: None) -> None:
    """Paused, reinstated, paused again with the same words: only the time tells the third apart."""
    with tenant_context(tenant_a.organization):
        template = _template(tenant_a.whatsapp.pk, "41")
    now = int(time.time())
    for event, at in (("PAUSED", now - 20), ("REINSTATED", now - 10), ("PAUSED", now)):
        assert wp.post(_status("41", event, at=at)).json()["new"] == 1
        assert _process_pending() == ["processed"]
    with tenant_context(tenant_a.organization):
        template.refresh_from_db()
        assert template.status == "PAUSED"


def test_an_older_update_delivered_late_does_not_roll_back_a_newer_one(tenant_a: TenantSetup, accounts: None) -> None:
    with tenant_context(tenant_a.organization):
        template = _template(tenant_a.whatsapp.pk, "41", synced_ago=timedelta(days=2))
    now = int(time.time())
    wp.post(_status("41", "PAUSED", at=now))
    assert _process_pending() == ["processed"]
    wp.post(_status("41", "APPROVED", at=now - 60))  # Meta retried an earlier delivery
    assert _process_pending() == ["ignored"]
    with tenant_context(tenant_a.organization):
        template.refresh_from_db()
        assert template.status == "PAUSED"
    assert WebhookEvent.objects.get(state="ignored").error.startswith("Older than the status already applied")

    # A catalogue fetched since already holds what an event days old could tell (a redelivery
    # days late, an orphan replayed): the event would only roll it back.
    with tenant_context(tenant_a.organization):
        fresh = _template(tenant_a.whatsapp.pk, "42", name="thanks", synced_ago=timedelta(minutes=1))
    wp.post(_status("42", "PAUSED", at=now - 3 * 24 * 3600, name="thanks"))
    assert _process_pending() == ["ignored"]
    with tenant_context(tenant_a.organization):
        fresh.refresh_from_db()
        assert fresh.status == "APPROVED"


@pytest.fixture
def sync_flags() -> Iterator[None]:
    def clear() -> None:
        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter("imaradesk:whatsapp:templates-sync:*"):
            client.delete(key)

    clear()
    yield
    clear()


def test_an_update_for_a_template_we_do_not_have_fetches_the_catalogue(
    tenant_a: TenantSetup,
    accounts: None,
    graph_api: FakeGraphApi,
    sync_flags: None,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    queued: list[dict[str, Any]] = []
    monkeypatch.setattr(message_templates_sync_task, "apply_async", lambda **kwargs: queued.append(kwargs))
    now = int(time.time())
    # Two new templates approved together: one fetch reads both.
    wp.post(_status("51", "APPROVED", at=now, name="delivery_update", language="sw"))
    wp.post(_status("52", "APPROVED", at=now, name="delivery_update", language="fr"))
    with django_capture_on_commit_callbacks(execute=True):
        assert _process_pending() == ["processed", "processed"]
    assert [(kwargs["args"], kwargs["headers"]) for kwargs in queued] == [
        ((tenant_a.whatsapp.pk,), {"_schema_name": tenant_a.schema})
    ]

    graph_api.templates[WABA_A] = [
        {
            "id": "51",
            "name": "delivery_update",
            "language": "sw",
            "status": "APPROVED",
            "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Habari {{1}}, mzigo wako uko njiani."}],
        }
    ]
    with tenant_context(tenant_a.organization):
        message_templates_sync_task.run(tenant_a.whatsapp.pk)
        assert [t.name for t in message_template_list_sendable(account=tenant_a.whatsapp)] == ["delivery_update"]


def test_a_fetch_keeps_a_status_meta_sent_after_it_asked_and_drops_an_outdated_reason(
    tenant_a: TenantSetup, accounts: None, graph_api: FakeGraphApi
) -> None:
    with tenant_context(tenant_a.organization):
        paused_meanwhile = _template(tenant_a.whatsapp.pk, "41", status="PAUSED")
        reinstated_since = _template(tenant_a.whatsapp.pk, "42", name="thanks", status="PAUSED")
        MessageTemplate.objects.filter(pk=paused_meanwhile.pk).update(
            status_event="PAUSED", status_reason="FIRST_PAUSE", status_event_at=timezone.now() + timedelta(seconds=30)
        )
        MessageTemplate.objects.filter(pk=reinstated_since.pk).update(
            status_event="PAUSED", status_reason="FIRST_PAUSE", status_event_at=timezone.now() - timedelta(hours=4)
        )
    body = [{"type": "BODY", "text": "Hello {{1}}, your order is ready."}]
    graph_api.templates[WABA_A] = [
        {"id": "41", "name": "order_ready", "language": "en_US", "status": "APPROVED", "components": body},
        {"id": "42", "name": "thanks", "language": "en_US", "status": "APPROVED", "components": body},
    ]
    with tenant_context(tenant_a.organization):
        message_templates_sync(account=WhatsAppAccount.objects.get(pk=tenant_a.whatsapp.pk))
        paused_meanwhile.refresh_from_db()
        reinstated_since.refresh_from_db()
    # Meta paused it while the catalogue was on its way: the catalogue's answer is the older one.
    assert (paused_meanwhile.status, paused_meanwhile.status_reason) == ("PAUSED", "FIRST_PAUSE")
    # Meta's last event no longer explains the status the catalogue shows now.
    assert (reinstated_since.status, reinstated_since.status_event, reinstated_since.status_reason) == (
        "APPROVED",
        "",
        "",
    )


# --- category changes ---------------------------------------------------------------------------------


def test_a_recategorised_template_follows_the_marketing_rules(tenant_a: TenantSetup, accounts: None) -> None:
    with tenant_context(tenant_a.organization):
        template = _template(tenant_a.whatsapp.pk, "41", category="UTILITY")
    now = int(time.time())

    def recategorised(new_category: str, *, at: int, **extra: str) -> None:
        template = wp.template_category(
            WABA_A, template_id=41, name="order_ready", language="en_US", new_category=new_category, time_sent=at
        )
        template["entry"][0]["changes"][0]["value"].update(extra)
        wp.post(template)

    # Meta's notice a day ahead names the current category in new_category: nothing changes yet.
    recategorised("UTILITY", at=now - 5, correct_category="MARKETING")
    recategorised("MARKETING", at=now, previous_category="UTILITY")
    assert _process_pending() == ["processed", "processed"]
    with tenant_context(tenant_a.organization):
        template.refresh_from_db()
        assert template.category == "MARKETING"
        # A customer who opted out is offered no marketing template: this one is now marketing.
        assert message_template_list_sendable(account=tenant_a.whatsapp).exists()
        assert not message_template_list_sendable(account=tenant_a.whatsapp, marketing=False).exists()

    recategorised("AUTHENTICATION", at=now + 1)
    wp.post(
        wp.template_category(WABA_A, new_category="UTILITY", time_sent=now, template_id=99, name="x", language="en")
    )
    assert _process_pending() == ["processed", "ignored"]
    with tenant_context(tenant_a.organization):
        template.refresh_from_db()
        # An authentication template needs a one-time code the inbox cannot give.
        assert (template.category, template.is_sendable) == ("AUTHENTICATION", False)


# --- signatures: a tenant's own secret vouches for its own accounts only -----------------------------


def _two_accounts(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(json.dumps(first))
    payload["entry"] += second["entry"]
    return payload


def test_a_tenants_own_secret_cannot_change_another_tenants_templates(
    tenant_a: TenantSetup, tenant_b: TenantSetup, accounts: None
) -> None:
    _account_set(tenant_b, WABA_B, app_secret=BETA_SECRET)
    with tenant_context(tenant_a.organization):
        alpha = _template(tenant_a.whatsapp.pk, "41")
    with tenant_context(tenant_b.organization):
        beta = _template(tenant_b.whatsapp.pk, "42")
    now = int(time.time())
    forged = _status("41", "DISABLED", at=now)

    assert wp.post(forged, secret=BETA_SECRET).status_code == 401  # Beta's secret is no secret of account A
    # Beta types Alpha's account ID on its own number: its secret still vouches for Beta's number
    # only, and account A has Alpha's number too.
    _account_set(tenant_b, WABA_A)
    response = wp.post(forged, secret=BETA_SECRET)
    assert response.status_code == 401
    assert response.json()["extra"] == {"waba_ids": [WABA_A]}
    # Beta's own account beside Alpha's in one delivery: refused whole.
    _account_set(tenant_b, WABA_B)
    mixed = _two_accounts(_status("42", "PAUSED", at=now, waba=WABA_B), forged)
    response = wp.post(mixed, secret=BETA_SECRET)
    assert response.status_code == 401
    assert response.json()["extra"] == {"waba_ids": [WABA_A]}
    assert WebhookEvent.objects.count() == 0

    # Beta's own account, signed with Beta's own secret, is Beta's to hear.
    own = _status("42", "PAUSED", at=now, waba=WABA_B)
    assert wp.post(own, secret=BETA_SECRET).status_code == 200
    [event] = _events(tenant_b)
    assert event.signature == "account"
    assert _process_pending() == ["processed"]
    with tenant_context(tenant_b.organization):
        beta.refresh_from_db()
        assert beta.status == "PAUSED"
    with tenant_context(tenant_a.organization):
        alpha.refresh_from_db()
        assert alpha.status == "APPROVED"


def test_an_orphan_signed_with_a_numbers_own_secret_is_never_routed(
    tenant_a: TenantSetup, tenant_b: TenantSetup, accounts: None
) -> None:
    """Beta's secret may speak for Beta's number beside an account nobody has yet; once Alpha adds
    that account, replaying the orphan must not let Beta's words reach Alpha's templates."""
    _account_set(tenant_b, WABA_B, app_secret=BETA_SECRET)
    later = "555000111222444"
    delivery = _two_accounts(
        wp.text(tenant_b.whatsapp.phone_number_id, "wamid.BETAOWN", "hello"),
        _status("41", "DISABLED", at=int(time.time()), waba=later),
    )
    assert wp.post(delivery, secret=BETA_SECRET).status_code == 200
    [orphan] = _events(None)
    assert (orphan.state, orphan.signature) == ("orphan", "account")

    _account_set(tenant_a, later)
    with tenant_context(tenant_a.organization):
        alpha = _template(tenant_a.whatsapp.pk, "41")
    webhook_event_replay(event=orphan)
    assert webhook_event_process(event_id=orphan.pk) == "ignored"
    orphan.refresh_from_db()
    assert "own app secret" in orphan.error
    assert _events(tenant_a) == []
    with tenant_context(tenant_a.organization):
        alpha.refresh_from_db()
        assert alpha.status == "APPROVED"
