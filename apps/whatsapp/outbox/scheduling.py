"""Waking the batch sender: at most one drain task per number is asked for at a time.

Enqueueing a row asks for a drain of its number after commit. A Redis flag per (schema,
number) coalesces those asks, so a burst of 10,000 rows queues one task, not 10,000. The
drain task releases the flag when it runs dry and then looks once more, so a row committed
while the flag was still held is never left behind. The flag expires on its own, so a lost
task only delays rows until the next enqueue or the sweeper. Extra drains are harmless:
claims skip locked rows and a row's result is recorded only under its own claim.
"""

from __future__ import annotations

import contextlib
import logging
import time
from functools import cache

import redis
from django.conf import settings

from apps.core.tenancy import current_schema
from apps.whatsapp.outbox.sending import DrainReport, outbox_drain, outbox_next_due_in, outbox_stuck_list

logger = logging.getLogger(__name__)


@cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def _flag_key(schema: str, account_id: int) -> str:
    return f"imaradesk:whatsapp:drain:{schema}:{account_id}"


def _wake_key(schema: str, account_id: int) -> str:
    return f"imaradesk:whatsapp:drain-wake:{schema}:{account_id}"


def _flag_seconds() -> int:
    # Longer than one drain task runs before it hands over to the next.
    return int(settings.WHATSAPP_DRAIN_SECONDS) + 10


def outbox_drain_request(*, account_id: int, schema: str, force: bool = False) -> bool:
    """Queue a drain of this number's due rows unless one is already queued or running."""
    from apps.whatsapp.tasks import outbox_drain_task

    try:
        client = _redis(settings.REDIS_URL)
        key = _flag_key(schema, account_id)
        if force:
            client.set(key, "1", ex=_flag_seconds())
        elif not client.set(key, "1", ex=_flag_seconds(), nx=True):
            return False
        outbox_drain_task.apply_async(args=(account_id,), headers={"_schema_name": schema})
    except Exception:  # the rows are stored: the sweeper asks again
        logger.exception("could not queue a drain of number %s in %s; the sweeper will retry", account_id, schema)
        with contextlib.suppress(redis.RedisError):  # so that the next enqueue asks again
            _redis(settings.REDIS_URL).delete(_flag_key(schema, account_id))
        return False
    return True


def outbox_drain_release(*, account_id: int, schema: str) -> None:
    """Say that no drain of this number is running any more (the caller then looks once more)."""
    _redis(settings.REDIS_URL).delete(_flag_key(schema, account_id))


def outbox_drain_wake(*, account_id: int, schema: str, in_seconds: float) -> bool:
    """Queue a drain for when the earliest retry falls due, unless an earlier one is queued."""
    from apps.whatsapp.tasks import outbox_drain_task

    now = time.time()
    due = now + in_seconds
    client = _redis(settings.REDIS_URL)
    key = _wake_key(schema, account_id)
    queued = client.get(key)
    # A wake-up still ahead and no later than this one covers it. Not atomic on purpose: two
    # wake-ups for one moment cost a spare drain, nothing more.
    if queued is not None and now < float(queued) <= due + 0.5:
        return False
    client.set(key, repr(due), px=int(in_seconds * 1000) + 1000)
    outbox_drain_task.apply_async(args=(account_id,), countdown=in_seconds, headers={"_schema_name": schema})
    return True


def outbox_drain_cycle(*, account_id: int) -> DrainReport:
    """Run one drain task's share of the work, then hand over, release the flag, or set a wake-up."""
    schema = current_schema()
    report = outbox_drain(account_id=account_id)
    if report.more:
        # A fresh task carries on, so that one busy number never holds a worker thread for long.
        outbox_drain_request(account_id=account_id, schema=schema, force=True)
        return report
    outbox_drain_release(account_id=account_id, schema=schema)
    if report.held:
        return report  # switched off: the sweeper asks again once the number is back on
    # A row committed while the flag was still held asked for no drain: look once more.
    due_in = outbox_next_due_in(account_id=account_id)
    if due_in is not None and due_in <= 0:
        outbox_drain_request(account_id=account_id, schema=schema)
    elif due_in is not None:
        outbox_drain_wake(account_id=account_id, schema=schema, in_seconds=due_in)
    return report


def outbox_stuck_requeue() -> int:
    """Queue drains for numbers whose rows nobody is sending; return how many rows that covers."""
    schema = current_schema()
    stuck = outbox_stuck_list()
    for account_id in stuck:
        outbox_drain_request(account_id=account_id, schema=schema, force=True)
    if stuck:
        logger.warning("re-queued drains for %d stuck outbox messages in %s", sum(stuck.values()), schema)
    return sum(stuck.values())
