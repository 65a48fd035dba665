"""What a model sees of a conversation: a sliding window of recent messages within a token
budget, plus a rolling summary of everything before the window, refreshed every few turns.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from apps.ai.catalog import tokens_estimate
from apps.ai.providers.base import ChatMessage
from apps.ai.router import context_budget, summarize
from apps.conversations.models import Conversation, Message

WINDOW_MESSAGES = 12
SUMMARY_EVERY = 10  # refresh the summary once this many messages have left the window
NOTE = "note"


@dataclass(frozen=True)
class ConversationContext:
    summary: str
    messages: list[ChatMessage]
    tokens: int


def _line(message: Message) -> ChatMessage:
    content = message.text or f"[{message.type}]"
    if message.direction == Message.Direction.INBOUND:
        return ChatMessage(role="user", content=content)
    return ChatMessage(role="assistant", content=content)


def conversation_context(
    *, conversation: Conversation, window: int = WINDOW_MESSAGES, budget: int | None = None
) -> ConversationContext:
    """The recent messages (oldest first) that fit the budget, and the summary of earlier ones.

    The budget defaults to that of the model that will answer (`apps.ai.catalog.CONTEXT_BUDGETS`).
    """
    budget = budget if budget is not None else context_budget("generate")
    recent = list(conversation.messages.exclude(type=NOTE).order_by("-sent_at", "-id")[:window])
    lines: list[ChatMessage] = []
    used = tokens_estimate(conversation.summary) if conversation.summary else 0
    for message in recent:  # newest first: the latest turns matter most
        line = _line(message)
        cost = tokens_estimate(line.content)
        if used + cost > budget:
            if lines:
                break
            # The newest message alone is over the budget (a pasted document): its beginning.
            line = ChatMessage(role=line.role, content=_words_within(line.content, budget - used))
            cost = tokens_estimate(line.content)
        lines.append(line)
        used += cost
    lines.reverse()
    return ConversationContext(summary=conversation.summary, messages=lines, tokens=used)


def _words_within(text: str, budget: int) -> str:
    """The first words of `text` whose estimate fits `budget` tokens (at least one word)."""
    words = text.split()
    keep = max(1, int((budget - tokens_estimate("")) / 1.3) - 1)  # one word's room for the "…"
    return " ".join(words[:keep]) + (" …" if keep < len(words) else "")


def conversation_summary_refresh(*, conversation: Conversation, window: int = WINDOW_MESSAGES) -> bool:
    """Summarise the messages that left the window, once enough of them did; True if refreshed."""
    ids = list(conversation.messages.exclude(type=NOTE).order_by("-sent_at", "-id").values_list("pk", flat=True))
    if len(ids) <= window:
        return False
    boundary = ids[window]  # the newest message outside the window
    outside = conversation.messages.exclude(type=NOTE).filter(pk__lte=boundary, pk__gt=conversation.summary_upto)
    if outside.count() < SUMMARY_EVERY:
        return False
    lines = []
    if conversation.summary:
        lines.append(f"Earlier: {conversation.summary}")
    for message in conversation.messages.exclude(type=NOTE).filter(pk__lte=boundary).order_by("sent_at", "id"):
        if message.pk > conversation.summary_upto:
            who = "Customer" if message.direction == Message.Direction.INBOUND else "Business"
            lines.append(f"{who}: {message.text or '[' + message.type + ']'}")
    result = summarize(lines, max_sentences=4, language=conversation.language or None)
    with transaction.atomic():
        Conversation.objects.filter(pk=conversation.pk).update(summary=result.text, summary_upto=boundary)
    conversation.summary, conversation.summary_upto = result.text, boundary
    return True
