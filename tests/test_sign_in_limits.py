"""Password guessing is cut off at every door, per tenant, whatever X-Forwarded-For says."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client, override_settings

from tests.conftest import PASSWORD, TenantSetup, sign_in_limits_clear

pytestmark = pytest.mark.django_db

BLOCKED = b"Too many failed sign-in attempts"


@pytest.fixture(autouse=True)
def _fresh_counters() -> Iterator[None]:
    sign_in_limits_clear()
    with override_settings(SIGN_IN_MAX_FAILURES=3, SIGN_IN_MAX_FAILURES_PER_ADDRESS=5):
        yield
    sign_in_limits_clear()


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_sign_in_forms_stop_checking_passwords_after_repeated_failures(
    tenant_a: TenantSetup, tenant_b: TenantSetup, path: str
) -> None:
    client = tenant_a.client()
    for _ in range(3):
        failed = client.post(path, {"username": tenant_a.admin_email, "password": "guess"})
        assert failed.status_code == 200
        assert BLOCKED not in failed.content
    refused = client.post(path, {"username": tenant_a.admin_email, "password": PASSWORD})
    assert refused.status_code == 200  # the form again: the right password is not even checked
    assert BLOCKED in refused.content
    assert "_auth_user_id" not in client.session

    # Tenant B's counters are its own: its admin signs in from the same address.
    other = tenant_b.client()
    response = other.post(path, {"username": tenant_b.admin_email, "password": PASSWORD})
    assert response.status_code == 302
    assert "_auth_user_id" in other.session


def test_many_accounts_from_one_address_are_cut_off_too(tenant_a: TenantSetup) -> None:
    client = tenant_a.client()
    for number in range(5):
        client.post("/login/", {"username": f"nobody{number}@alpha.test", "password": "guess"})
    refused = client.post("/login/", {"username": tenant_a.admin_email, "password": PASSWORD})
    assert BLOCKED in refused.content


def test_token_api_failures_count_whatever_the_forwarded_for_header(
    tenant_a: TenantSetup, tenant_b: TenantSetup
) -> None:
    client = tenant_a.client()
    for number in range(3):
        failed = client.post(
            "/api/v1/auth/token/",
            {"email": tenant_a.admin_email, "password": "guess"},
            content_type="application/json",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{number}",
        )
        assert failed.status_code == 400
    refused = client.post(
        "/api/v1/auth/token/",
        {"email": tenant_a.admin_email, "password": PASSWORD},
        content_type="application/json",
        HTTP_X_FORWARDED_FOR="203.0.113.99",
    )
    assert refused.status_code == 429
    assert refused.json()["code"] == "throttled"
    assert "token" not in refused.json()

    response = tenant_b.client().post(
        "/api/v1/auth/token/", {"email": tenant_b.admin_email, "password": PASSWORD}, content_type="application/json"
    )
    assert response.status_code == 200


def test_token_api_rate_ignores_a_forged_forwarded_for(tenant_a: TenantSetup) -> None:
    """The API's request rate (20 a minute) is per client address, not per header value."""
    client = Client(HTTP_HOST=tenant_a.domain)
    statuses = [
        client.post(
            "/api/v1/auth/token/",
            {"email": f"nobody{number}@alpha.test"},  # invalid (no password): counts, checks nothing
            content_type="application/json",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{number}",
        ).status_code
        for number in range(21)
    ]
    assert statuses[:20] == [400] * 20
    assert statuses[20] == 429


def test_a_correct_password_forgets_earlier_failures(tenant_a: TenantSetup) -> None:
    client = tenant_a.client()
    for _ in range(2):
        client.post("/login/", {"username": tenant_a.admin_email, "password": "guess"})
    assert client.post("/login/", {"username": tenant_a.admin_email, "password": PASSWORD}).status_code == 302
    client.logout()
    for _ in range(2):
        client.post("/login/", {"username": tenant_a.admin_email, "password": "guess"})
    assert client.post("/login/", {"username": tenant_a.admin_email, "password": PASSWORD}).status_code == 302
