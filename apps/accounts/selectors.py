from __future__ import annotations

from django.db.models import QuerySet

from apps.accounts.models import User


def user_role_names(*, user: User) -> list[str]:
    return sorted(group.name for group in user.groups.all())


def user_list_with_roles() -> QuerySet[User]:
    return User.objects.prefetch_related("groups", "teams").select_related("agent_profile").order_by("email")
