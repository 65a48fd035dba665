from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.exceptions import RoleUnknown, UserEmailTaken
from apps.accounts.models import AgentProfile, Role, User
from apps.accounts.roles import (
    ADMIN,
    CAPABILITIES,
    ROLE_CAPABILITIES,
    ROLE_MODEL_PERMISSIONS,
    ROLE_NAMES,
    STAFF_ROLES,
)


@transaction.atomic
def roles_sync() -> list[Group]:
    """Create the four roles in the current schema and give each its default permissions.

    Runs after every migration of the schema: it only adds what is missing, so a role
    an admin has narrowed or widened in the back office keeps the admin's choice.
    """
    role_ct = ContentType.objects.get_for_model(Role, for_concrete_model=False)
    for codename, name in CAPABILITIES.items():
        Permission.objects.get_or_create(content_type=role_ct, codename=codename, defaults={"name": name})

    all_permissions = list(Permission.objects.select_related("content_type"))
    by_key = {f"{p.content_type.app_label}.{p.codename}": p for p in all_permissions}
    roles: list[Group] = []
    for name in ROLE_NAMES:
        role, _created = Role.objects.get_or_create(name=name)
        if name == ADMIN:
            wanted = all_permissions
        else:
            keys = {f"accounts.{c}" for c in ROLE_CAPABILITIES[name]} | ROLE_MODEL_PERMISSIONS[name]
            wanted = [by_key[key] for key in sorted(keys) if key in by_key]
        role.permissions.add(*wanted)
        roles.append(role)
    return roles


def _role_get(name: str) -> Group:
    if name not in ROLE_NAMES:
        raise RoleUnknown(_("Unknown role %(role)s.") % {"role": name}, extra={"roles": list(ROLE_NAMES)})
    role = Role.objects.filter(name=name).first()
    if role is None:
        roles_sync()
        role = Role.objects.get(name=name)
    return role


@transaction.atomic
def user_create(
    *,
    email: str,
    password: str | None,
    role: str,
    first_name: str = "",
    last_name: str = "",
    is_superuser: bool = False,
) -> User:
    """Add a member to the current tenant with one role; staff roles may use the back office."""
    email = User.objects.normalize_email(email).strip()
    if User.objects.filter(email__iexact=email).exists() or User.objects.filter(username__iexact=email).exists():
        raise UserEmailTaken(_("A user with this email already exists."), extra={"email": email})
    group = _role_get(role)
    user = User(
        username=email,
        email=email,
        first_name=first_name,
        last_name=last_name,
        is_staff=role in STAFF_ROLES or is_superuser,
        is_superuser=is_superuser,
    )
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    user.groups.add(group)
    AgentProfile.objects.create(user=user)
    return user


def agent_presence_touch(*, user: User, now: datetime | None = None) -> None:
    """Record that the agent is connected; an agent who went offline by timeout comes back online."""
    now = now or timezone.now()
    profile, _created = AgentProfile.objects.get_or_create(user=user)
    profile.last_seen_at = now
    if profile.status == AgentProfile.Status.OFFLINE:
        profile.status = AgentProfile.Status.ONLINE
    profile.save(update_fields=["last_seen_at", "status"])


def agent_presence_expire(*, ttl_seconds: int, now: datetime | None = None) -> int:
    """Mark agents whose sockets went quiet as offline, so nothing is assigned to them."""
    cutoff = (now or timezone.now()) - timedelta(seconds=ttl_seconds)
    return (
        AgentProfile.objects.exclude(status=AgentProfile.Status.OFFLINE)
        .filter(last_seen_at__lt=cutoff)
        .update(status=AgentProfile.Status.OFFLINE)
    )
