from __future__ import annotations

from django.db.models import QuerySet

from apps.accounts.models import User


def user_role_names(*, user: User) -> list[str]:
    return sorted(group.name for group in user.groups.all())


def user_list_with_roles() -> QuerySet[User]:
    return User.objects.prefetch_related("groups", "teams").select_related("agent_profile").order_by("email")


def user_has_capability(*, user: User, capability: str) -> bool:
    """Whether the user's roles grant a capability of `apps.accounts.roles.CAPABILITIES`."""
    return bool(user.is_active and user.has_perm(f"accounts.{capability}"))
