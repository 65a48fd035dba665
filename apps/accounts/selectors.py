from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db.models import Q, QuerySet

from apps.accounts.models import User
from apps.accounts.roles import ADMIN


def user_role_names(*, user: User) -> list[str]:
    return sorted(group.name for group in user.groups.all())


def user_list_with_roles() -> QuerySet[User]:
    return User.objects.prefetch_related("groups", "teams").select_related("agent_profile").order_by("email")


def user_has_capability(*, user: User, capability: str) -> bool:
    """Whether the user's roles grant a capability of `apps.accounts.roles.CAPABILITIES`."""
    return bool(user.is_active and user.has_perm(f"accounts.{capability}"))


def user_permission_names(*, user: User) -> set[str]:
    """The "app_label.codename" permissions the user's roles and own grants hold, active or not."""
    rows = (
        Permission.objects.filter(Q(group__user=user) | Q(user=user))
        .values_list("content_type__app_label", "codename")
        .distinct()
    )
    return {f"{app_label}.{codename}" for app_label, codename in rows}


def role_permission_names(*, role: Group) -> set[str]:
    return {f"{p.content_type.app_label}.{p.codename}" for p in role.permissions.select_related("content_type")}


def role_list_grantable_by(*, actor: User) -> QuerySet[Group]:
    """The roles the actor may give: those whose every permission the actor holds."""
    roles = Group.objects.order_by("name")
    if actor.is_superuser:
        return roles
    held = actor.get_all_permissions()
    grantable = [role.pk for role in roles if role_permission_names(role=role) <= held]
    return Group.objects.filter(pk__in=grantable).order_by("name")


def user_may_manage(*, actor: User, target: User) -> bool:
    """Whether the actor may edit the target: never someone who holds more than the actor."""
    if actor.is_superuser:
        return True
    if target.is_superuser:
        return False
    return user_permission_names(user=target) <= actor.get_all_permissions()


def user_list_admins_active() -> QuerySet[User]:
    """Who can run the organization's back office in full: active staff, superuser or Admin role."""
    return (
        User.objects.filter(is_active=True, is_staff=True)
        .filter(Q(is_superuser=True) | Q(groups__name=ADMIN))
        .distinct()
    )


def user_is_last_admin(*, user: User) -> bool:
    admins = user_list_admins_active()
    return admins.filter(pk=user.pk).exists() and not admins.exclude(pk=user.pk).exists()
