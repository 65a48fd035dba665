"""A send-rate governor shared by every worker: a Redis token bucket per phone number.

Meta allows 80 messages/s per number by default (up to 1,000) and answers 130429 past
it. The bucket holds one second of tokens. Bulk sends may not take the last
`WHATSAPP_LIVE_RESERVE` share of them, so replies to live conversations go first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings

# KEYS[1] bucket; ARGV: rate/s, reserve tokens the caller may not use. Redis's own clock
# is used so that workers on several machines share one time line.
# Returns 0 when a token was taken, else the milliseconds to wait.
_TAKE = """
local rate = tonumber(ARGV[1])
local reserve = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil then
  tokens = rate
  at = now
end
tokens = math.min(rate, tokens + (now - at) * rate / 1000.0)
local wait = 0
if tokens >= 1 + reserve then
  tokens = tokens - 1
else
  wait = math.ceil((1 + reserve - tokens) * 1000.0 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], 60000)
return wait
"""


# KEYS[1] bucket; ARGV: rate/s, live wanted, bulk wanted, bulk reserve. Live sends are served
# first and may use every token; bulk ones then take what is left above the reserve.
# Returns {live granted, bulk granted, milliseconds until the next token any of them could use}.
_TAKE_MANY = """
local rate = tonumber(ARGV[1])
local live = tonumber(ARGV[2])
local bulk = tonumber(ARGV[3])
local reserve = tonumber(ARGV[4])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil then
  tokens = rate
  at = now
end
tokens = math.min(rate, tokens + (now - at) * rate / 1000.0)
local live_granted = math.max(0, math.min(live, math.floor(tokens)))
tokens = tokens - live_granted
local bulk_granted = math.max(0, math.min(bulk, math.floor(tokens - reserve)))
tokens = tokens - bulk_granted
local wait = 0
if live_granted < live then
  wait = math.ceil((1 - tokens) * 1000.0 / rate)
elseif bulk_granted < bulk then
  wait = math.ceil((1 + reserve - tokens) * 1000.0 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], 60000)
return {live_granted, bulk_granted, wait}
"""


@dataclass(frozen=True)
class Grant:
    live: int
    bulk: int
    wait: float  # seconds before another token is worth asking for; 0.0 when all were granted


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def _key(phone_number_id: str) -> str:
    return f"imaradesk:whatsapp:rate:{phone_number_id}"


def send_slot_take(*, phone_number_id: str, rate_per_second: int, bulk: bool) -> float:
    """Take a send slot for this number: 0.0 if taken now, else the seconds to wait before asking again."""
    reserve = rate_per_second * settings.WHATSAPP_LIVE_RESERVE if bulk else 0.0
    client = _client(settings.REDIS_URL)
    waited_ms = client.eval(_TAKE, 1, _key(phone_number_id), rate_per_second, reserve)
    return float(waited_ms) / 1000.0


def send_slots_take(*, phone_number_id: str, rate_per_second: int, live: int, bulk: int) -> Grant:
    """Take up to `live` + `bulk` send slots at once, live first; bulk never takes the live reserve."""
    reserve = rate_per_second * settings.WHATSAPP_LIVE_RESERVE
    client = _client(settings.REDIS_URL)
    live_granted, bulk_granted, wait_ms = client.eval(
        _TAKE_MANY, 1, _key(phone_number_id), rate_per_second, live, bulk, reserve
    )
    return Grant(live=int(live_granted), bulk=int(bulk_granted), wait=float(wait_ms) / 1000.0)


def send_slot_wait(*, phone_number_id: str, rate_per_second: int, bulk: bool, max_wait: float = 5.0) -> bool:
    """Block (briefly) until a slot is taken; False if that would take longer than max_wait."""
    deadline = time.monotonic() + max_wait
    while True:
        wait = send_slot_take(phone_number_id=phone_number_id, rate_per_second=rate_per_second, bulk=bulk)
        if wait <= 0:
            return True
        if time.monotonic() + wait > deadline:
            return False
        time.sleep(wait)
