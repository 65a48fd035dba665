"""Liveness of the services the product depends on; each check answers "ok" or why not."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)


def database_check() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def redis_check() -> str:
    timeout = settings.HEALTHCHECK_TIMEOUT
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    finally:
        client.close()
    return "ok"


# broker URL -> when a worker last answered. /healthz is open to anyone, on every host, and a
# ping is a broadcast every worker answers: a good answer is reused for a while per process.
_celery_answered: dict[str, float] = {}


def health_cache_clear() -> None:
    _celery_answered.clear()


def celery_check() -> str:
    from imaradesk.celery import app

    broker = str(app.conf.broker_url)
    answered = _celery_answered.get(broker)
    if answered is not None and time.monotonic() - answered < settings.HEALTHCHECK_CELERY_REUSE_SECONDS:
        return "ok"
    timeout = settings.HEALTHCHECK_TIMEOUT
    # Fail fast on a dead broker instead of letting kombu retry for minutes.
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=max(1, round(timeout)))
        replies = app.control.ping(timeout=timeout, limit=1, connection=conn)
    if not replies:
        _celery_answered.pop(broker, None)
        return f"no worker answered within {timeout:g}s"
    _celery_answered[broker] = time.monotonic()
    return "ok"


CHECKS: dict[str, Callable[[], str]] = {
    "database": database_check,
    "redis": redis_check,
    "celery": celery_check,
}


def health_report() -> dict[str, str]:
    report: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            report[name] = check()
        except Exception as exc:  # a health check reports every failure, it never raises
            # Anyone may ask, on any host: the answer names the kind of failure only. The
            # message (database host and user, Redis address) goes to the log.
            logger.warning("health check %s failed: %s", name, exc, exc_info=True)
            report[name] = f"error: {type(exc).__name__}"
    return report
