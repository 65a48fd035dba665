"""Enqueueing Celery tasks after commit, in the schema of the code that asked.

tenant-schemas-celery reads the schema at send time; an on_commit callback may run after
the code has left the tenant's schema (a nested tenant_context has exited by the time the
outer transaction commits). So the schema is captured when the task is requested.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from django.db import transaction

from apps.core.tenancy import current_schema

logger = logging.getLogger(__name__)


def enqueue_on_commit(task: Task, *args: Any, countdown: float = 0, **kwargs: Any) -> None:  # type: ignore[type-arg]
    schema = current_schema()

    def send() -> None:
        try:
            task.apply_async(args=args, kwargs=kwargs, countdown=countdown, headers={"_schema_name": schema})
        except Exception:  # the row that asked for it is stored: a sweeper enqueues it again
            logger.exception("could not enqueue %s%r in %s; a sweeper will retry", task.name, args, schema)

    transaction.on_commit(send)
