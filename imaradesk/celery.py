"""Celery app: tasks run in the schema of the tenant that sent them (tenant-schemas-celery)."""

from __future__ import annotations

import gc
import os

from celery.concurrency import get_implementation
from celery.signals import setup_logging, worker_init, worker_process_init, worker_ready
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


@worker_ready.connect
@worker_process_init.connect
def _freeze_what_is_loaded(**_kwargs: object) -> None:
    """Keep the objects loaded at start-up out of the garbage collector's full passes.

    They live as long as the process; walking them again on every full collection cost
    the web process 120-160 ms each (see imaradesk/asgi.py), and a worker the same.
    """
    gc.freeze()


@worker_process_init.connect
def _warm_offline_models(**_kwargs: object) -> None:
    """Each process of the AI worker (IMARADESK_WARM_AI=1) loads the offline models as it starts."""
    if os.environ.get("IMARADESK_WARM_AI") != "1":
        return
    from apps.ai.warmup import analysers_warm_in_background

    analysers_warm_in_background()


@worker_init.connect
def _warm_offline_models_in_a_thread_pool(sender: object = None, **_kwargs: object) -> None:
    """A threads-pool AI worker (`-P threads`) runs tasks in its own process: warm that one.

    The prefork and solo pools send `worker_process_init` (above); the threads pool does not,
    so without this its first messages waited ~15 s for the models.
    """
    pool = get_implementation(getattr(sender, "pool_cls", "prefork"))
    if pool.__module__ == "celery.concurrency.thread":
        _warm_offline_models()
