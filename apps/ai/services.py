"""State changes of the AI engine: usage meters and the result cache."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.ai.models import AICacheEntry, AIUsage
from apps.ai.selectors import CACHE_PREFIX
from apps.tenants.selectors import organization_today

logger = logging.getLogger(__name__)


def ai_usage_record(
    *,
    task: str,
    provider: str,
    model: str,
    tokens_in: int = 0,
    tokens_out: int = 0,
    cost_usd: Decimal = Decimal(0),
    failed: bool = False,
) -> None:
    """Add one call to today's meter row, creating the row on the day's first call."""
    day = organization_today()
    match = {"day": day, "task": task, "provider": provider, "model": model[:100]}
    increments = {
        "requests": F("requests") + (0 if failed else 1),
        "failures": F("failures") + (1 if failed else 0),
        "tokens_in": F("tokens_in") + tokens_in,
        "tokens_out": F("tokens_out") + tokens_out,
        "cost_usd": F("cost_usd") + cost_usd,
    }
    if AIUsage.objects.filter(**match).update(**increments):
        return
    try:
        with transaction.atomic():  # a savepoint: a concurrent first call may win the insert
            AIUsage.objects.create(
                **match,
                requests=0 if failed else 1,
                failures=1 if failed else 0,
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                cost_usd=cost_usd,
            )
    except IntegrityError:
        AIUsage.objects.filter(**match).update(**increments)


def ai_cache_put(*, key: str, task: str, provider: str, model: str, value: Any) -> None:
    """Store a result in Redis (with a TTL) and in the database (until pruned)."""
    try:
        cache.set(CACHE_PREFIX + key, value, timeout=settings.AI_CACHE_REDIS_TTL_SECONDS)
    except Exception:  # Redis down: the database copy is enough
        logger.warning("AI cache: Redis write failed", exc_info=True)
    AICacheEntry.objects.bulk_create(
        [AICacheEntry(key=key, task=task, provider=provider, model=model[:100], value=value)], ignore_conflicts=True
    )


def ai_cache_prune(*, older_than_days: int) -> int:
    """Delete database cache entries older than N days; Redis entries expire on their own."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted, _ = AICacheEntry.objects.filter(created_at__lt=cutoff).delete()
    return deleted
