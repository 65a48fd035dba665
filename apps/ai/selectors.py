"""Reads of the AI engine's state: the tenant's settings, this month's usage, cached results."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Sum

from apps.ai.models import SINGLETON_ID, AICacheEntry, AISettings, AIUsage
from apps.tenants.selectors import organization_today

logger = logging.getLogger(__name__)
CACHE_PREFIX = "ai:result:"  # the cache's key function adds the tenant's schema


@dataclass(frozen=True)
class UsageTotals:
    tokens: int
    cost_usd: Decimal


def ai_settings_get() -> AISettings:
    """The tenant's settings, or unsaved defaults (everything offline) when none were saved."""
    return AISettings.objects.filter(pk=SINGLETON_ID).first() or AISettings(pk=SINGLETON_ID)


def ai_usage_month_totals() -> UsageTotals:
    today = organization_today()
    totals = AIUsage.objects.filter(day__gte=today.replace(day=1)).aggregate(
        tokens_in=Sum("tokens_in"), tokens_out=Sum("tokens_out"), cost=Sum("cost_usd")
    )
    return UsageTotals(
        tokens=int(totals["tokens_in"] or 0) + int(totals["tokens_out"] or 0),
        cost_usd=totals["cost"] or Decimal(0),
    )


def ai_budget_exhausted(settings: AISettings) -> bool:
    if not settings.monthly_token_budget and not settings.monthly_cost_budget:
        return False
    totals = ai_usage_month_totals()
    if settings.monthly_token_budget and totals.tokens >= settings.monthly_token_budget:
        return True
    return bool(settings.monthly_cost_budget and totals.cost_usd >= settings.monthly_cost_budget)


def ai_cache_get(key: str) -> Any | None:
    """A cached value: Redis first, then the database (which refills Redis)."""
    try:
        hit = cache.get(CACHE_PREFIX + key)
    except Exception:  # Redis down: the database still answers
        logger.warning("AI cache: Redis read failed", exc_info=True)
        hit = None
    if hit is not None:
        return hit
    row = AICacheEntry.objects.filter(key=key).values_list("value", flat=True).first()
    if row is None:
        return None
    try:
        cache.set(CACHE_PREFIX + key, row, timeout=settings.AI_CACHE_REDIS_TTL_SECONDS)
    except Exception:
        logger.warning("AI cache: Redis write failed", exc_info=True)
    return row


def custom_intent_examples() -> dict[str, list[str]]:
    """The tenant's active custom intents and their phrases (cached briefly; edits show within a minute)."""
    from django.core.cache import cache

    from apps.ai.models import CustomIntent

    key = "ai:custom-intents"  # the cache's key function prefixes the tenant's schema
    cached = cache.get(key)
    if cached is None:
        cached = {intent.name: intent.example_list() for intent in CustomIntent.objects.filter(is_active=True)}
        cache.set(key, cached, 60)
    return dict(cached)


def custom_intents_forget() -> None:
    from django.core.cache import cache

    cache.delete("ai:custom-intents")
