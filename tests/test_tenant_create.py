"""Creating tenants: the command, the platform admin, refusals and all-or-nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client, override_settings

from apps.accounts.models import Role, User
from apps.accounts.roles import ROLE_NAMES
from apps.core.tenancy import schema_context, schema_exists, use_public_schema
from apps.tenants import services as tenant_services
from apps.tenants.exceptions import (
    DomainTaken,
    OrganizationSettingInvalid,
    OrganizationSlugInvalid,
    OrganizationSlugTaken,
)
from apps.tenants.models import Domain, Organization
from apps.tenants.services import organization_create
from tests.conftest import PASSWORD, TenantSetup

# These tests commit (schemas are created and dropped), so they use `committed_db`.


@pytest.fixture
def cleanup_orgs(committed_db: None) -> Iterator[list[str]]:
    slugs: list[str] = []
    yield slugs
    use_public_schema()
    for org in Organization.objects.filter(slug__in=slugs):
        org.delete(force_drop=True)


def test_tenant_create_command(cleanup_orgs: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    cleanup_orgs.append("acme")
    call_command(
        "tenant_create",
        "--slug",
        "acme",
        "--name",
        "Acme",
        "--domain",
        "acme.localhost",
        "--admin-email",
        "boss@acme.test",
    )
    out = capsys.readouterr().out
    assert "Created Acme (schema acme) at acme.localhost" in out
    password = out.split("Admin: boss@acme.test / ")[1].strip()

    org = Organization.objects.get(slug="acme")
    assert org.domains.get().domain == "acme.localhost"
    assert schema_exists("acme")
    with schema_context("acme"):
        admin = User.objects.get(email="boss@acme.test")
        assert admin.is_staff and admin.check_password(password)
        assert sorted(Role.objects.values_list("name", flat=True)) == sorted(ROLE_NAMES)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM django_migrations")
            migrations_in_clone = cursor.fetchone()[0]
    with schema_context("tenant_template"), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_migrations")
        assert cursor.fetchone()[0] == migrations_in_clone
        assert not User.objects.exists()  # the template holds no people

    response = Client(HTTP_HOST="acme.localhost").post(
        "/admin/login/?next=/admin/", {"username": "boss@acme.test", "password": password}
    )
    assert response.status_code == 302


def test_tenant_create_refuses_duplicates_and_bad_slugs(tenant_a: TenantSetup, cleanup_orgs: list[str]) -> None:
    with pytest.raises(OrganizationSlugTaken):
        organization_create(slug="alpha", name="Again", domain="again.localhost")
    with pytest.raises(DomainTaken):
        organization_create(slug="again", name="Again", domain=tenant_a.domain)
    for bad in ("public", "A", "pg-x", "has space", "-lead"):
        with pytest.raises(OrganizationSlugInvalid):
            organization_create(slug=bad, name="Bad", domain="bad.localhost")
    with pytest.raises(OrganizationSettingInvalid, match="time zone"):
        organization_create(slug="again", name="Again", domain="again.localhost", time_zone="Mars/Olympus")
    with pytest.raises(OrganizationSettingInvalid, match="language"):
        organization_create(slug="again", name="Again", domain="again.localhost", default_language="xx")
    with pytest.raises(CommandError, match="organization_slug_taken"):
        call_command("tenant_create", "--slug", "alpha", "--name", "A", "--domain", "x.localhost")
    assert not Organization.objects.filter(slug="again").exists()


def test_failed_tenant_creation_leaves_nothing(cleanup_orgs: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    cleanup_orgs.append("broken")

    def fail() -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(tenant_services, "roles_sync", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        organization_create(slug="broken", name="Broken", domain="broken.localhost", admin_email="a@broken.test")
    assert not Organization.objects.filter(slug="broken").exists()
    assert not Domain.objects.filter(domain="broken.localhost").exists()
    assert not schema_exists("broken")


def test_platform_admin_creates_a_tenant(cleanup_orgs: list[str]) -> None:
    cleanup_orgs.append("shop")
    with schema_context("public"):
        User.objects.create_superuser(username="root@platform.test", email="root@platform.test", password=PASSWORD)
    try:
        client = Client(HTTP_HOST="localhost")
        assert client.login(username="root@platform.test", password=PASSWORD)
        form = client.get("/admin/tenants/organization/add/")
        assert form.status_code == 200
        response = client.post(
            "/admin/tenants/organization/add/",
            {
                "name": "Shop",
                "slug": "shop",
                "domain": "shop.localhost",
                "plan": "starter",
                "time_zone": "Africa/Nairobi",
                "default_language": "sw",
                "admin_email": "owner@shop.test",
            },
        )
        assert response.status_code == 302, response.content[:2000]
        org = Organization.objects.get(slug="shop")
        assert (org.plan, org.time_zone, org.default_language) == ("starter", "Africa/Nairobi", "sw")
        with schema_context("shop"):
            assert User.objects.filter(email="owner@shop.test", groups__name="Admin").exists()

        duplicate = client.post(
            "/admin/tenants/organization/add/",
            {"name": "Shop 2", "slug": "shop", "domain": "shop2.localhost", "plan": "free", "time_zone": "UTC",
             "default_language": "en"},
        )  # fmt: skip
        assert duplicate.status_code == 200
        assert b"already exists" in duplicate.content

        # Platform admins are deactivated, not deleted (the cascade cannot run in public).
        root = User.objects.get(username="root@platform.test")
        assert client.get(f"/admin/accounts/user/{root.pk}/delete/").status_code == 403
    finally:
        use_public_schema()
        User.objects.filter(username="root@platform.test").update(is_active=False)


def test_a_template_behind_the_code_is_migrated_before_cloning(committed_db: None) -> None:
    from apps.tenants.schemas import TEMPLATE_SCHEMA, schema_migrations_applied, template_migrate_if_behind

    assert template_migrate_if_behind() is False
    # An options-only migration: re-applying it touches no table, like a new migration would.
    row = ("authtoken", "0004_alter_tokenproxy_options")
    with schema_context(TEMPLATE_SCHEMA), connection.cursor() as cursor:
        cursor.execute("DELETE FROM django_migrations WHERE app = %s AND name = %s", list(row))
    assert row not in schema_migrations_applied(TEMPLATE_SCHEMA)

    assert template_migrate_if_behind() is True
    assert row in schema_migrations_applied(TEMPLATE_SCHEMA)


def test_demo_setup_is_idempotent(cleanup_orgs: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    cleanup_orgs.append("demo")
    with pytest.raises(CommandError, match="DEMO_PASSWORD"):
        call_command("demo_setup")  # tests run with DEBUG off, like production
    try:
        with override_settings(DEBUG=True):
            call_command("demo_setup", "--port", "8123")
            call_command("demo_setup", "--port", "8123")
        out = capsys.readouterr().out
        assert out.count("Demo ready.") == 2
        assert "http://demo.localhost:8123/admin/  (admin@demo.localhost / imaradesk-demo)" in out
        assert Organization.objects.filter(slug="demo").count() == 1
        with schema_context("demo"):
            assert User.objects.filter(groups__name="Agent").count() == 2
            # The demo knowledge base, imported once and indexed, for the bot's answers.
            from apps.knowledge.models import Chunk, Document

            assert Document.objects.filter(status="ready").count() == 1
            assert Chunk.objects.filter(is_live=True).count() >= 5
        assert "already has content" in out
        # The default flow (cloned from the template) and the two samples, each once, live.
        with schema_context("demo"):
            from apps.flows.models import Flow

            live = dict(
                Flow.objects.filter(is_active=True, versions__isnull=False).values_list("key", "name").distinct()
            )
            assert live == {
                "default": "Default: answer from knowledge, else hand off",
                "demo-order-status": "Order status",
                "demo-book-appointment": "Book an appointment",
            }
            assert Flow.objects.count() == 3
        assert "Sample flows published: Order status, Book an appointment." in out
        assert "The sample flows are already there" in out
        client = Client(HTTP_HOST="demo.localhost")
        response = client.post("/admin/login/", {"username": "admin@demo.localhost", "password": "imaradesk-demo"})
        assert response.status_code == 302
        assert client.get("/admin/").status_code == 200
        platform = Client(HTTP_HOST="localhost")
        response = platform.post("/admin/login/", {"username": "platform@localhost", "password": "imaradesk-demo"})
        assert response.status_code == 302
    finally:
        use_public_schema()
        User.objects.filter(username="platform@localhost").update(is_active=False)
