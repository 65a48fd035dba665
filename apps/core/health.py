"""Liveness of the services the product depends on; each check answers "ok" or why not."""

from __future__ import annotations

import logging
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


def celery_check() -> str:
    from imaradesk.celery import app

    timeout = settings.HEALTHCHECK_TIMEOUT
    # Fail fast on a dead broker instead of letting kombu retry for minutes.
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=max(1, round(timeout)))
        replies = app.control.ping(timeout=timeout, limit=1, connection=conn)
    if not replies:
        return f"no worker answered within {timeout:g}s"
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
