from __future__ import annotations

from celery import shared_task
from django.conf import settings

from apps.accounts.services import agent_presence_expire


@shared_task
def agent_presence_expire_task() -> int:
    return agent_presence_expire(ttl_seconds=settings.AGENT_PRESENCE_TTL_SECONDS)
