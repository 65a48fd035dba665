"""Two tenants, one platform: nothing of one tenant is reachable from the other."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from apps.accounts.models import Role
from apps.accounts.roles import ROLE_NAMES
from apps.core.tenancy import tenant_context
from apps.tenants.models import Domain
from tests.conftest import PASSWORD, TenantSetup

pytestmark = pytest.mark.django_db


def _login(tenant: TenantSetup, email: str, password: str) -> Any:
    client = tenant.client()
    response = client.post("/admin/login/?next=/admin/", {"username": email, "password": password})
    return client, response


def test_admin_login_works_on_own_tenant(tenant_a: TenantSetup) -> None:
    client, response = _login(tenant_a, tenant_a.admin_email, PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    index = client.get("/admin/")
    assert index.status_code == 200
    assert b"Roles" in index.content


def test_user_of_a_cannot_log_in_to_b_admin(tenant_a: TenantSetup, tenant_b: TenantSetup) -> None:
    _client, response = _login(tenant_b, tenant_a.admin_email, PASSWORD)
    assert response.status_code == 200  # the login form again, with an error
    assert b"Please enter the correct" in response.content


def test_session_of_a_is_worthless_on_b(tenant_a: TenantSetup, tenant_b: TenantSetup) -> None:
    client, response = _login(tenant_a, tenant_a.admin_email, PASSWORD)
    assert response.status_code == 302
    # The Django test client sends its cookies to every host: the session key must
    # simply not exist in tenant B's schema.
    response = client.get("/admin/", HTTP_HOST=tenant_b.domain)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_api_token_of_a_is_rejected_by_b(tenant_a: TenantSetup, tenant_b: TenantSetup) -> None:
    client = tenant_a.client()
    response = client.post(
        "/api/v1/auth/token/", {"email": tenant_a.admin_email, "password": PASSWORD}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    token = response.json()["token"]

    me = client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token}")
    assert me.status_code == 200
    assert me.json()["tenant"] == tenant_a.schema
    assert me.json()["email"] == tenant_a.admin_email
    assert me.json()["roles"] == ["Admin"]

    other = tenant_b.client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token}")
    assert other.status_code == 401
    assert other.json()["code"] == "authentication_failed"


def test_api_login_with_a_credentials_on_b_fails(tenant_a: TenantSetup, tenant_b: TenantSetup) -> None:
    response = tenant_b.client().post(
        "/api/v1/auth/token/", {"email": tenant_a.admin_email, "password": PASSWORD}, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "credentials_invalid"


def test_cache_entries_are_per_tenant(tenant_a: TenantSetup, tenant_b: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        cache.set("greeting", "from alpha", 30)
    with tenant_context(tenant_b.organization):
        assert cache.get("greeting") is None
        cache.set("greeting", "from beta", 30)
    with tenant_context(tenant_a.organization):
        assert cache.get("greeting") == "from alpha"
        cache.delete("greeting")
    with tenant_context(tenant_b.organization):
        cache.delete("greeting")


def test_unknown_host_is_404() -> None:
    response = Client(HTTP_HOST="nobody.localhost").get("/admin/")
    assert response.status_code == 404


def test_template_schema_is_not_served() -> None:
    assert not Domain.objects.filter(tenant__is_template=True).exists()


def test_public_host_serves_the_platform_admin() -> None:
    response = Client(HTTP_HOST="localhost").get("/admin/login/")
    assert response.status_code == 200
    assert b"Imaradesk platform" in response.content


def test_every_tenant_has_the_four_roles(tenant_a: TenantSetup, tenant_b: TenantSetup) -> None:
    for tenant in (tenant_a, tenant_b):
        with tenant_context(tenant.organization):
            assert sorted(Role.objects.values_list("name", flat=True)) == sorted(ROLE_NAMES)


def test_back_office_speaks_the_chosen_language(tenant_a: TenantSetup) -> None:
    client = tenant_a.client()
    client.post("/admin/login/", {"username": tenant_a.admin_email, "password": PASSWORD})
    english = client.get("/admin/")
    assert b"Back office" in english.content
    assert b'name="language"' in english.content  # the switcher in the header

    response = client.post("/i18n/setlang/", {"language": "sw", "next": "/admin/"})
    assert response.status_code == 302
    swahili = client.get("/admin/").content.decode()
    assert "Usimamizi" in swahili
    assert "Back office" not in swahili
    assert "Lugha" in swahili
    login_page = tenant_a.client().get("/admin/login/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "E-mail" in login_page
