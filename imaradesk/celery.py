"""Celery app: tasks run in the schema of the tenant that sent them (tenant-schemas-celery)."""

from __future__ import annotations

import os

from celery.signals import setup_logging, worker_process_init
from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imaradesk.settings.base")

app = CeleryApp("imaradesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def _use_django_logging(**_kwargs: object) -> None:
    """Keep Django's LOGGING (JSON with the tenant in production) in workers and beat."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@worker_process_init.connect
def _warm_offline_models(**_kwargs: object) -> None:
    """Each process of the AI worker (IMARADESK_WARM_AI=1) loads the offline models as it starts."""
    if os.environ.get("IMARADESK_WARM_AI") != "1":
        return
    from apps.ai.warmup import analysers_warm_in_background

    analysers_warm_in_background()
