"""Nobody gives more than they hold, and no organization (nor the platform) loses its last admin."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from django.contrib.admin.widgets import AdminSplitDateTime
from django.contrib.auth.models import Permission
from django.test import Client

from apps.accounts.models import Role, User
from apps.accounts.roles import ADMIN, AGENT, SUPPORT_MANAGER
from apps.accounts.services import user_create
from apps.core.tenancy import tenant_context
from tests.conftest import PASSWORD, TenantSetup, admin_user

pytestmark = pytest.mark.django_db


def _form_value(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [str(item) for item in value]
    return "" if value is None else value


def _change_form_data(client: Client, url: str) -> dict[str, Any]:
    """What the browser would send back from the admin's change form, unchanged."""
    page = client.get(url)
    assert page.status_code == 200, page.content[:2000]
    data: dict[str, Any] = {}
    forms = [page.context["adminform"].form]
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        for name, value in formset.management_form.initial.items():
            data[f"{formset.prefix}-{name}"] = value
        forms.extend(formset.forms)
    for form in forms:
        for name, field in form.fields.items():
            if field.disabled:
                continue
            key, value = form.add_prefix(name), form[name].value()
            if isinstance(field.widget, AdminSplitDateTime):
                if isinstance(value, datetime):
                    data[f"{key}_0"], data[f"{key}_1"] = value.strftime("%Y-%m-%d"), value.strftime("%H:%M:%S")
            elif isinstance(value, bool):
                if value:
                    data[key] = "on"
            else:
                data[key] = _form_value(value)
    return data


def _signed_in(host: str, email: str) -> Client:
    client = Client(HTTP_HOST=host)
    response = client.post("/admin/login/", {"username": email, "password": PASSWORD})
    assert response.status_code == 302, response.content[:2000]
    return client


def _manager_with_user_rights(tenant: TenantSetup, email: str) -> User:
    """A Support Manager whose role an admin widened to manage people (the roles are editable)."""
    with tenant_context(tenant.organization):
        role = Role.objects.get(name=SUPPORT_MANAGER)
        role.permissions.add(*Permission.objects.filter(content_type__app_label="accounts", codename__endswith="_user"))
        return user_create(email=email, password=PASSWORD, role=SUPPORT_MANAGER)


def test_manager_cannot_give_themselves_the_admin_role(tenant_a: TenantSetup) -> None:
    manager = _manager_with_user_rights(tenant_a, "manager.up@alpha.test")
    client = _signed_in(tenant_a.domain, manager.email)
    url = f"/admin/accounts/user/{manager.pk}/change/"
    data = _change_form_data(client, url)
    with tenant_context(tenant_a.organization):
        admin_role = Role.objects.get(name=ADMIN)
    data["groups"] = [*data.get("groups", []), str(admin_role.pk)]
    client.post(url, data)
    with tenant_context(tenant_a.organization):
        assert not manager.groups.filter(name=ADMIN).exists()
        assert not User.objects.get(pk=manager.pk).has_perm("accounts.manage_billing")


def test_manager_cannot_add_an_admin(tenant_a: TenantSetup) -> None:
    manager = _manager_with_user_rights(tenant_a, "manager.add@alpha.test")
    client = _signed_in(tenant_a.domain, manager.email)
    form = client.get("/admin/accounts/user/add/")
    assert f'value="{AGENT}"'.encode() in form.content
    assert f'value="{ADMIN}"'.encode() not in form.content
    client.post(
        "/admin/accounts/user/add/",
        {"email": "sidekick@alpha.test", "role": ADMIN, "password1": "a-Long-pass-123", "password2": "a-Long-pass-123"},
    )
    with tenant_context(tenant_a.organization):
        assert not User.objects.filter(email="sidekick@alpha.test").exists()


def test_manager_cannot_take_over_an_admins_account(tenant_a: TenantSetup) -> None:
    manager = _manager_with_user_rights(tenant_a, "manager.pw@alpha.test")
    client = _signed_in(tenant_a.domain, manager.email)
    admin = admin_user(tenant_a)
    response = client.post(
        f"/admin/accounts/user/{admin.pk}/password/",
        {"password1": "Taken-over-98765", "password2": "Taken-over-98765", "usable_password": "true"},
    )
    assert response.status_code == 403
    assert client.post(f"/admin/accounts/user/{admin.pk}/change/", {"is_active": ""}).status_code == 403
    admin.refresh_from_db()
    assert admin.check_password(PASSWORD) and admin.is_active


def test_the_last_admin_cannot_be_switched_off(tenant_a: TenantSetup) -> None:
    admin = admin_user(tenant_a)
    client = _signed_in(tenant_a.domain, admin.email)
    url = f"/admin/accounts/user/{admin.pk}/change/"
    for change in ({"is_active": False}, {"is_staff": False}):
        data = _change_form_data(client, url)
        data.pop(next(iter(change)), None)
        response = client.post(url, data)
        assert response.status_code == 200
        assert b"last active admin" in response.content
    admin.refresh_from_db()
    assert admin.is_active and admin.is_staff

    # With a second admin, the first may step down.
    with tenant_context(tenant_a.organization):
        user_create(email="second.admin@alpha.test", password=PASSWORD, role=ADMIN)
    data = _change_form_data(client, url)
    data.pop("is_active")
    assert client.post(url, data).status_code == 302
    admin.refresh_from_db()
    assert not admin.is_active


def test_platform_staff_cannot_make_themselves_superuser() -> None:
    staff = User.objects.create_user(
        username="ops@platform.test", email="ops@platform.test", password=PASSWORD, is_staff=True
    )
    staff.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="accounts", codename__in=["view_user", "change_user"])
    )
    client = _signed_in("localhost", staff.email)
    url = f"/admin/accounts/user/{staff.pk}/change/"
    data = _change_form_data(client, url)
    data["is_superuser"] = "on"
    client.post(url, data)
    staff.refresh_from_db()
    assert not staff.is_superuser


def test_manager_cannot_widen_a_role_beyond_their_own_permissions(tenant_a: TenantSetup) -> None:
    manager = _manager_with_user_rights(tenant_a, "manager.role@alpha.test")
    with tenant_context(tenant_a.organization):
        role = Role.objects.get(name=SUPPORT_MANAGER)
        role.permissions.add(*Permission.objects.filter(content_type__app_label="accounts", codename__endswith="_role"))
        billing = Permission.objects.get(content_type__app_label="accounts", codename="manage_billing")
        admin_role = Role.objects.get(name=ADMIN)
    client = _signed_in(tenant_a.domain, manager.email)
    url = f"/admin/accounts/role/{role.pk}/change/"
    data = _change_form_data(client, url)
    data["permissions"] = [*data["permissions"], str(billing.pk)]
    client.post(url, data)
    assert client.post(f"/admin/accounts/role/{admin_role.pk}/change/", {"name": "Mine"}).status_code == 403
    with tenant_context(tenant_a.organization):
        assert not role.permissions.filter(pk=billing.pk).exists()
        assert Role.objects.filter(name=ADMIN).exists()
