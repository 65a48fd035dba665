"""Keep roles in step with permissions after every migration of a schema."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate
from django.dispatch import receiver

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
