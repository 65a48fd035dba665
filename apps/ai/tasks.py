"""Periodic upkeep of the AI engine (run per tenant by the beat fan-out)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from apps.ai.services import ai_cache_prune


@shared_task
def ai_cache_prune_task() -> int:
    return ai_cache_prune(older_than_days=settings.AI_CACHE_DB_DAYS)
