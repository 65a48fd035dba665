"""Fixtures and helpers for the AI engine tests: the three fake vendor APIs and tenant settings."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from django.conf import settings

from apps.ai.models import SINGLETON_ID, AISettings
from tests.fakes.llm_apis import FakeAnthropic, FakeGemini, FakeOpenAI


@dataclass(frozen=True)
class Fakes:
    openai: FakeOpenAI
    anthropic: FakeAnthropic
    google: FakeGemini

    def reset(self) -> None:
        for fake in (self.openai, self.anthropic, self.google):
            fake.reset()

    def base_urls(self) -> dict[str, str]:
        return {
            "openai_base_url": f"{self.openai.url}/v1",
            "anthropic_base_url": self.anthropic.url,
            "google_base_url": self.google.url,
        }


def redis_clear_ai() -> None:
    """Forget breakers and cached AI results (Redis is not rolled back with the test's transaction)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    for pattern in ("imaradesk:ai:breaker:*", "*ai:result:*"):
        keys = list(client.scan_iter(match=pattern, count=500))
        if keys:
            client.delete(*keys)


@pytest.fixture(scope="session")
def ai_fakes_server() -> Iterator[Fakes]:
    fakes = Fakes(FakeOpenAI().start(), FakeAnthropic().start(), FakeGemini().start())
    yield fakes
    for fake in (fakes.openai, fakes.anthropic, fakes.google):
        fake.stop()


@pytest.fixture
def ai_fakes(ai_fakes_server: Fakes) -> Iterator[Fakes]:
    ai_fakes_server.reset()
    redis_clear_ai()
    yield ai_fakes_server
    ai_fakes_server.reset()
    redis_clear_ai()


def ai_configure(
    fakes: Fakes, *, keys: tuple[str, ...] = ("openai", "anthropic", "google"), **fields: Any
) -> AISettings:
    """Save the current tenant's AI settings with keys for `keys`, pointed at the fakes."""
    values: dict[str, Any] = {
        **fakes.base_urls(),
        "provider_order": ",".join(keys),
        "request_timeout_seconds": 2.0,
        **{f"{name}_api_key": f"sk-{name}-test" for name in keys},
    }
    values.update(fields)
    row, _ = AISettings.objects.update_or_create(pk=SINGLETON_ID, defaults=values)
    return row
