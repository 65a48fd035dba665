"""The deploy that moves the 24-hour window from the contact to (contact, number) loses no open window.

A scratch schema is migrated to just before the change, filled with rows as the old code
left them, then migrated forward (and back) the way `migrate_schemas` migrates a tenant. All
of it runs inside the test's transaction, so nothing outlives the test.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from apps.core.tenancy import schema_context
from apps.tenants.models import WhatsAppAccount
from tests.conftest import TenantSetup

pytestmark = pytest.mark.django_db

SCHEMA = "window_migration_scratch"
BEFORE = [("contacts", "0002_servicewindow"), ("conversations", "0007_message_customer_reaction")]
AFTER = [("contacts", "0003_remove_contact_window_expires_at"), ("conversations", "0009_conversation_window_required")]


def _migrate(targets: list[tuple[str, str]]) -> Any:
    """Migrate the scratch schema to `targets`; the models as they stand there."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


def test_every_known_window_is_carried_to_its_number_and_back(tenant_a: TenantSetup) -> None:
    support = tenant_a.whatsapp
    sales = WhatsAppAccount.objects.create(
        tenant=tenant_a.organization, name="Alpha sales", phone_number_id="100000000000088", access_token="t"
    )
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA "{SCHEMA}"')
        # The deferred foreign key checks of the data step would otherwise still be pending
        # when the next migration alters the table: one transaction here, unlike a deploy.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    with schema_context(SCHEMA):
        old = _migrate(BEFORE)
        Contact, Conversation = old.get_model("contacts", "Contact"), old.get_model("conversations", "Conversation")

        # Wrote to support an hour ago (an earlier support thread is closed), to sales 30 h ago.
        amani = Contact.objects.create(wa_id="254711000001", window_expires_at=now + timedelta(hours=23))
        open_support = Conversation.objects.create(
            contact=amani, account_id=support.pk, window_expires_at=now + timedelta(hours=23), last_message_at=now
        )
        closed_support = Conversation.objects.create(
            contact=amani, account_id=support.pk, status="closed", window_expires_at=now - timedelta(hours=10)
        )
        old_sales = Conversation.objects.create(
            contact=amani, account_id=sales.pk, window_expires_at=now - timedelta(hours=6)
        )
        # Threads not made by the inbound path (no copy): the contact's end goes to its latest one.
        juma = Contact.objects.create(wa_id="254711000002", window_expires_at=now + timedelta(hours=5))
        juma_latest = Conversation.objects.create(
            contact=juma, account_id=support.pk, last_message_at=now - timedelta(minutes=5)
        )
        juma_older = Conversation.objects.create(
            contact=juma, account_id=sales.pk, last_message_at=now - timedelta(hours=3)
        )
        # No conversation: no number to carry the window to.
        Contact.objects.create(wa_id="254711000003", window_expires_at=now + timedelta(hours=2))

        new = _migrate(AFTER)
        Window, Conversation = (
            new.get_model("contacts", "ServiceWindow"),
            new.get_model("conversations", "Conversation"),
        )
        ends = {(w.contact_id, w.account_id): w.expires_at for w in Window.objects.all()}
        assert ends == {
            (amani.pk, support.pk): now + timedelta(hours=23),
            (amani.pk, sales.pk): now - timedelta(hours=6),
            (juma.pk, support.pk): now + timedelta(hours=5),
            (juma.pk, sales.pk): None,
        }
        windows = dict(Conversation.objects.values_list("pk", "window__expires_at"))
        assert windows[open_support.pk] == windows[closed_support.pk] == now + timedelta(hours=23)
        assert windows[old_sales.pk] == now - timedelta(hours=6)
        assert (windows[juma_latest.pk], windows[juma_older.pk]) == (now + timedelta(hours=5), None)

        back = _migrate(BEFORE)
        Contact, Conversation = back.get_model("contacts", "Contact"), back.get_model("conversations", "Conversation")
        assert Contact.objects.get(pk=amani.pk).window_expires_at == now + timedelta(hours=23)
        assert Contact.objects.get(pk=juma.pk).window_expires_at == now + timedelta(hours=5)
        copies = dict(Conversation.objects.values_list("pk", "window_expires_at"))
        assert copies[closed_support.pk] == copies[open_support.pk] == now + timedelta(hours=23)
        assert copies[old_sales.pk] == now - timedelta(hours=6)
