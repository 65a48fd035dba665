"""The outbox: every send is a row first, delivered by a batch sender under the rate governor.

- Enqueueing is idempotent: the same idempotency key never makes a second row. After commit
  it asks for a drain of the row's number (coalesced: one queued drain per number).
- A drain claims a batch of due rows (live before bulk) in a short transaction, takes send
  slots for them from the governor, sends them concurrently over keep-alive connections with
  no transaction open, and records the results in a second short transaction.
- Transient failures (429, 130429, 5xx, network) back off exponentially with jitter;
  permanent ones mark the row failed with Meta's code and title.
- A claim is a lease: if its worker dies, the sweeper (or the next drain) sends the rows
  again once it lapses. That is the only window for a duplicate send; see `sending`.
- Delivery statuses only move forward: sent < delivered < read.
"""

from apps.whatsapp.outbox.enqueue import IdempotencyKeyReused, WindowClosed, outbox_enqueue
from apps.whatsapp.outbox.scheduling import (
    outbox_drain_cycle,
    outbox_drain_release,
    outbox_drain_request,
    outbox_stuck_requeue,
)
from apps.whatsapp.outbox.sending import (
    INLINE_WAIT_MAX,
    DeliveryOutcome,
    DrainReport,
    MessageSender,
    outbox_deliver,
    outbox_drain,
    outbox_next_due_in,
)
from apps.whatsapp.outbox.statuses import DELIVERY_RANK, StatusForUnknownMessage, outbox_status_apply

__all__ = [
    "DELIVERY_RANK",
    "INLINE_WAIT_MAX",
    "DeliveryOutcome",
    "DrainReport",
    "IdempotencyKeyReused",
    "MessageSender",
    "StatusForUnknownMessage",
    "WindowClosed",
    "outbox_deliver",
    "outbox_drain",
    "outbox_drain_cycle",
    "outbox_drain_release",
    "outbox_drain_request",
    "outbox_enqueue",
    "outbox_next_due_in",
    "outbox_status_apply",
    "outbox_stuck_requeue",
]
