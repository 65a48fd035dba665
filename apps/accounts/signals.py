"""Keep roles in step with permissions after every migration of a schema; end live sockets that lost access."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig, apps
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_migrate, post_save, pre_save
from django.dispatch import receiver
from django.http import HttpRequest
from rest_framework.authtoken.models import Token

from apps.accounts.models import User
from apps.core.realtime import sockets_close
from apps.core.tenancy import is_public_schema


@receiver(post_migrate)
def roles_sync_after_migrate(sender: AppConfig, **kwargs: Any) -> None:
    # post_migrate fires once per app, in INSTALLED_APPS order: wait for the last
    # one so that every app's permissions exist. The public schema has no roles.
    with_models = [config for config in apps.get_app_configs() if config.models_module is not None]
    if sender.label != with_models[-1].label or is_public_schema():
        return
    from apps.accounts.services import roles_sync

    roles_sync()


# A live socket is authenticated when it opens, and a session is invalidated without one: these
# receivers close the sockets (and revoke the API token) that lost access: invalidation, like a
# cache's, not business logic.


@receiver(pre_save, sender=User)
def user_access_before_save(sender: type[User], instance: User, update_fields: Any = None, **kwargs: Any) -> None:
    if instance.pk is None or (update_fields is not None and not {"is_active", "password"} & set(update_fields)):
        return  # new, or a save that cannot change access (last_login on every sign-in)
    instance._access_before = User.objects.filter(pk=instance.pk).values("is_active", "password").first()  # type: ignore[attr-defined]


@receiver(post_save, sender=User)
def user_sockets_close_on_lost_access(sender: type[User], instance: User, created: bool, **kwargs: Any) -> None:
    before = getattr(instance, "_access_before", None)
    if before is None or is_public_schema():
        return
    # A password change also ends the user's other sessions (Django's session hash); the
    # browser it was changed from reconnects with its refreshed session.
    password_changed = before["password"] != instance.password
    if (before["is_active"] and not instance.is_active) or password_changed:
        sockets_close(user_id=instance.pk)
    if password_changed:
        # One changes a password after a leak: the API token must not outlive the old one
        # (a switched-off user's token is refused by DRF's own is_active check).
        Token.objects.filter(user=instance).delete()


@receiver(user_logged_out)
def session_sockets_close(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key and not is_public_schema():
        sockets_close(session_key=session_key)
