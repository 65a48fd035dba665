"""Extension points for the apps above conversations (knowledge, tickets, flows).

A higher app registers a handler in its `AppConfig.ready()`; conversations calls the
handlers without importing those apps (see docs/architecture.md, layering).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from apps.conversations.models import Message

logger = logging.getLogger(__name__)

MessageHandler = Callable[[Message], None]

# Called once per analysed inbound message, in a Celery task of its own (retried on error),
# in registration order. Handlers must be idempotent: a retry calls them again.
_after_analysis: list[MessageHandler] = []


def after_analysis_register(handler: MessageHandler) -> None:
    if handler not in _after_analysis:
        _after_analysis.append(handler)


def after_analysis_handlers() -> tuple[MessageHandler, ...]:
    return tuple(_after_analysis)
