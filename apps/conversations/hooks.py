"""Registries through which higher apps (knowledge, tickets, flows) react to conversation events.

Conversations sit below tickets and never import them: a higher app appends its handler
to one of these lists in `AppConfig.ready()`. Handlers run after the transaction that made
the change commits, in the schema it ran in; one failing handler is logged and never
undoes the change nor stops the other handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db import transaction

from apps.core.tenancy import current_schema, schema_context

if TYPE_CHECKING:
    from apps.conversations.models import Conversation, Message
    from apps.whatsapp.payloads import InboundMessage

logger = logging.getLogger(__name__)

# A conversation was handed off to people: (conversation, reason).
on_handoff: list[Callable[[Conversation, str], None]] = []
# An inbound message has been analysed (language, intent, sentiment): (message).
on_message_analysed: list[Callable[[Message], None]] = []
# An agent's reply was queued to the customer: (message).
on_agent_reply: list[Callable[[Message], None]] = []
# An agent took or was given the conversation: (conversation, previous agent's id or None).
on_assigned: list[Callable[[Conversation, int | None], None]] = []
# A conversation was resolved: (conversation).
on_resolved: list[Callable[[Conversation], None]] = []
# Predicates, called synchronously while an inbound message is recorded: True keeps a
# resolved conversation resolved (the message answers something the resolve sent).
keeps_resolved: list[Callable[[InboundMessage], bool]] = []


def hooks_fire(handlers: list[Callable[..., None]], *args: Any) -> None:
    """Call each handler after the current transaction commits, in this tenant's schema."""
    if not handlers:
        return
    schema = current_schema()

    def run() -> None:
        with schema_context(schema):
            for handler in list(handlers):
                try:
                    handler(*args)
                except Exception:  # a ticket failure never undoes the conversation's change
                    logger.exception("conversation hook %s failed in %s", getattr(handler, "__name__", handler), schema)

    transaction.on_commit(run)


# Called once per analysed inbound message in a Celery task of its own
# (`message_automation_task`, retried on error), after the `on_message_analysed` handlers
# have run: the bot's answer (knowledge), later the flows. Handlers must be idempotent.
_after_analysis: list[Callable[[Message], None]] = []


def after_analysis_register(handler: Callable[[Message], None]) -> None:
    if handler not in _after_analysis:
        _after_analysis.append(handler)


def after_analysis_handlers() -> tuple[Callable[[Message], None], ...]:
    return tuple(_after_analysis)


# Predicates by which a higher app claims an analysed inbound message for itself (a flow
# runs for it): the built-in knowledge reply then leaves it alone, whichever handler the
# task calls first. They must not change anything and must answer the same on a retry.
_automation_claims: list[Callable[[Message], bool]] = []


def automation_claim_register(predicate: Callable[[Message], bool]) -> None:
    if predicate not in _automation_claims:
        _automation_claims.append(predicate)


def message_claimed_by_automation(message: Message) -> bool:
    return any(predicate(message) for predicate in tuple(_automation_claims))
