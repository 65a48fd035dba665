"""Circuit breakers per provider per tenant, in Redis so every worker shares them.

Closed: calls go through. After AI_BREAKER_FAILURES consecutive failed calls it opens: the
provider is skipped. After AI_BREAKER_COOLDOWN_SECONDS it is half-open: exactly one caller
(across all workers) is let through as a probe; success closes it, failure re-opens it.
If Redis itself fails the breaker lets calls through: it protects latency, not correctness.
"""

from __future__ import annotations

import logging
import time
from functools import cache
from typing import Literal

import redis
from django.conf import settings

logger = logging.getLogger(__name__)
State = Literal["closed", "open", "half_open"]

# KEYS[1] state hash; ARGV now, threshold, cooldown, probe_ttl. 1 closed, 2 probe granted, 0 refused.
_ALLOW = """
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
if failures < tonumber(ARGV[2]) then return 1 end
local now = tonumber(ARGV[1])
local opened = tonumber(redis.call('HGET', KEYS[1], 'opened_at') or '0')
if now - opened < tonumber(ARGV[3]) then return 0 end
local probe_until = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0')
if probe_until > now then return 0 end
redis.call('HSET', KEYS[1], 'probe_until', now + tonumber(ARGV[4]))
return 2
"""
# KEYS[1]; ARGV now, threshold, ttl. Returns the consecutive failures.
_FAIL = """
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if failures >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'opened_at', ARGV[1])
  redis.call('HDEL', KEYS[1], 'probe_until')
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return failures
"""


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)


def _key(schema: str, provider: str) -> str:
    # The tenant's schema first: one tenant's outage never trips another tenant's breaker.
    return f"imaradesk:ai:breaker:{schema}:{provider}"


def breaker_allow(*, schema: str, provider: str, probe_seconds: float) -> bool:
    try:
        granted = _client(settings.REDIS_URL).eval(
            _ALLOW,
            1,
            _key(schema, provider),
            time.time(),
            settings.AI_BREAKER_FAILURES,
            settings.AI_BREAKER_COOLDOWN_SECONDS,
            probe_seconds,
        )
    except redis.RedisError:
        logger.warning("AI breaker: Redis unavailable, letting %s through", provider, exc_info=True)
        return True
    if int(granted) == 2:
        logger.info("AI breaker half-open for %s in %s: probing", provider, schema)
    return int(granted) > 0


def breaker_success(*, schema: str, provider: str) -> None:
    try:
        _client(settings.REDIS_URL).delete(_key(schema, provider))
    except redis.RedisError:
        logger.warning("AI breaker: Redis unavailable", exc_info=True)


def breaker_failure(*, schema: str, provider: str) -> None:
    ttl = max(3600, int(settings.AI_BREAKER_COOLDOWN_SECONDS * 10))
    try:
        failures = _client(settings.REDIS_URL).eval(
            _FAIL, 1, _key(schema, provider), time.time(), settings.AI_BREAKER_FAILURES, ttl
        )
    except redis.RedisError:
        logger.warning("AI breaker: Redis unavailable", exc_info=True)
        return
    if int(failures) >= settings.AI_BREAKER_FAILURES:
        logger.warning("AI breaker open for %s in %s after %s failures", provider, schema, failures)


def breaker_state(*, schema: str, provider: str) -> State:
    raw = _client(settings.REDIS_URL).hgetall(_key(schema, provider))
    state = {k.decode(): float(v) for k, v in raw.items()}  # type: ignore[union-attr]
    if state.get("failures", 0) < settings.AI_BREAKER_FAILURES:
        return "closed"
    if time.time() - state.get("opened_at", 0) < settings.AI_BREAKER_COOLDOWN_SECONDS:
        return "open"
    return "half_open"


def breaker_reset(*, schema: str, provider: str) -> None:
    _client(settings.REDIS_URL).delete(_key(schema, provider))
