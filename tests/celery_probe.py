"""Tasks the test worker loads (-I tests.celery_probe) to observe where tasks run."""

from __future__ import annotations

import redis
from celery import shared_task
from django.conf import settings

from apps.accounts.models import User
from apps.core.tenancy import current_schema


def probe_key(token: str) -> str:
    return f"imaradesk-test:probe:{token}"


@shared_task(name="tests.schema_probe")
def schema_probe(token: str = "") -> dict[str, object]:
    """Report the schema this task ran in and the users it can see there."""
    result: dict[str, object] = {
        "schema": current_schema(),
        "users": sorted(User.objects.values_list("email", flat=True)),
    }
    if token:
        client = redis.Redis.from_url(settings.REDIS_URL)
        client.rpush(probe_key(token), current_schema())
        client.expire(probe_key(token), 300)
    return result
