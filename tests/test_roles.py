"""The four roles of the product spec, users, teams and agent presence."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from apps.accounts.exceptions import RoleUnknown, UserEmailTaken
from apps.accounts.models import AgentProfile, Role, Team, User
from apps.accounts.roles import ADMIN, AGENT, KNOWLEDGE_EDITOR, SUPPORT_MANAGER
from apps.accounts.services import agent_presence_expire, agent_presence_touch, roles_sync, user_create
from apps.accounts.tasks import agent_presence_expire_task
from apps.core.tenancy import tenant_context
from tests.conftest import PASSWORD, TenantSetup

pytestmark = pytest.mark.django_db


def _perms(role: str, email: str) -> set[str]:
    user = user_create(email=email, password="pw-123456789", role=role)
    return {p.split(".", 1)[1] for p in user.get_all_permissions() if p.startswith("accounts.")}


def test_role_permissions_follow_the_product_spec(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        admin = _perms(ADMIN, "admin2@alpha.test")
        manager = _perms(SUPPORT_MANAGER, "manager@alpha.test")
        agent = _perms(AGENT, "agent@alpha.test")
        editor = _perms(KNOWLEDGE_EDITOR, "editor@alpha.test")

    assert {
        "manage_team", "manage_billing", "manage_knowledge_base", "manage_ai_settings", "manage_integrations",
        "view_all_conversations", "view_analytics", "add_user", "change_user",
    } <= admin  # fmt: skip
    assert {
        "manage_agents", "view_all_conversations", "assign_conversations", "configure_escalations",
        "view_analytics", "review_ai_responses",
    } <= manager  # fmt: skip
    assert "manage_billing" not in manager and "add_user" not in manager
    assert {"view_assigned_conversations", "respond_to_conversations", "view_customer_history",
            "resolve_conversations"} == agent  # fmt: skip
    assert editor == {"manage_articles"}


def test_staff_access_follows_the_role(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        agent = user_create(email="agent2@alpha.test", password="pw-123456789", role=AGENT)
        manager = user_create(email="manager2@alpha.test", password="pw-123456789", role=SUPPORT_MANAGER)
        assert not agent.is_staff
        assert manager.is_staff and not manager.is_superuser
        assert AgentProfile.objects.get(user=agent).max_concurrent_chats == 5


def test_user_create_refuses_duplicates_and_unknown_roles(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        with pytest.raises(UserEmailTaken):
            user_create(email=tenant_a.admin_email.upper(), password="x", role=AGENT)
        with pytest.raises(RoleUnknown):
            user_create(email="new@alpha.test", password="x", role="Overlord")


def test_same_email_may_exist_in_two_tenants(tenant_a: TenantSetup, tenant_b: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        user_create(email="shared@example.com", password="pw-123456789", role=AGENT)
    with tenant_context(tenant_b.organization):
        user = user_create(email="shared@example.com", password="pw-123456789", role=KNOWLEDGE_EDITOR)
        assert [g.name for g in user.groups.all()] == [KNOWLEDGE_EDITOR]


def test_roles_sync_is_idempotent_and_repairs(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        Role.objects.get(name=AGENT).permissions.clear()
        roles_sync()
        roles_sync()
        assert Role.objects.count() == 4
        assert Role.objects.get(name=AGENT).permissions.count() == 4


def test_presence_expires_quiet_agents(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        quiet = user_create(email="quiet@alpha.test", password="pw-123456789", role=AGENT)
        active = user_create(email="active@alpha.test", password="pw-123456789", role=AGENT)
        now = timezone.now()
        agent_presence_touch(user=quiet, now=now - timedelta(minutes=10))
        agent_presence_touch(user=active, now=now)
        assert agent_presence_expire(ttl_seconds=300, now=now) == 1
        assert AgentProfile.objects.get(user=quiet).status == AgentProfile.Status.OFFLINE
        assert AgentProfile.objects.get(user=active).status == AgentProfile.Status.ONLINE
        assert agent_presence_expire_task.apply().get() == 0


def test_teams_group_agents(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        agent = user_create(email="sales@alpha.test", password="pw-123456789", role=AGENT)
        team = Team.objects.create(name="Sales")
        team.members.add(agent)
        assert list(agent.teams.values_list("name", flat=True)) == ["Sales"]


def test_admin_adds_a_team_member_with_a_role(tenant_a: TenantSetup) -> None:
    client = tenant_a.client()
    response = client.post("/admin/login/", {"username": tenant_a.admin_email, "password": PASSWORD})
    assert response.status_code == 302
    form = client.get("/admin/accounts/user/add/")
    assert form.status_code == 200
    assert b'name="role"' in form.content

    mismatch = client.post(
        "/admin/accounts/user/add/",
        {"email": "new.agent@alpha.test", "role": AGENT, "password1": "a-Long-pass-123", "password2": "other"},
    )
    assert mismatch.status_code == 200
    assert b"The two passwords do not match." in mismatch.content

    response = client.post(
        "/admin/accounts/user/add/",
        {
            "email": "New.Agent@alpha.test",
            "first_name": "Neema",
            "last_name": "Otieno",
            "role": AGENT,
            "password1": "a-Long-pass-123",
            "password2": "a-Long-pass-123",
        },
    )
    assert response.status_code == 302, response.content[:3000]
    with tenant_context(tenant_a.organization):
        user = User.objects.get(email="New.Agent@alpha.test")
        assert [g.name for g in user.groups.all()] == [AGENT]
        assert user.check_password("a-Long-pass-123")
        assert not user.is_staff
        assert AgentProfile.objects.filter(user=user).exists()

    duplicate = client.post("/admin/accounts/user/add/", {"email": "new.agent@ALPHA.test", "role": AGENT})
    assert duplicate.status_code == 200
    assert b"A user with this email already exists." in duplicate.content


def test_roles_sync_keeps_an_admins_changes_to_a_role(tenant_a: TenantSetup) -> None:
    with tenant_context(tenant_a.organization):
        agent = Role.objects.get(name=AGENT)
        extra = Permission.objects.get(codename="view_analytics")
        agent.permissions.add(extra)
        roles_sync()
        assert agent.permissions.filter(pk=extra.pk).exists()
