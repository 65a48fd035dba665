"""What a model sees of a conversation: a sliding window of recent messages within a token
budget, plus a rolling summary of everything before the window, refreshed every few turns.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from apps.ai.catalog import tokens_estimate
from apps.ai.providers.base import ChatMessage
from apps.ai.router import summarize
from apps.conversations.models import Conversation, Message

WINDOW_MESSAGES = 12
TOKEN_BUDGET = 1500
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
    *, conversation: Conversation, window: int = WINDOW_MESSAGES, budget: int = TOKEN_BUDGET
) -> ConversationContext:
    """The recent messages (oldest first) that fit the budget, and the summary of earlier ones."""
    recent = list(conversation.messages.exclude(type=NOTE).order_by("-sent_at", "-id")[:window])
    chosen: list[Message] = []
    used = tokens_estimate(conversation.summary) if conversation.summary else 0
    for message in recent:  # newest first: the latest turns matter most
        cost = tokens_estimate(message.text)
        if chosen and used + cost > budget:
            break
        chosen.append(message)
        used += cost
    chosen.reverse()
    return ConversationContext(summary=conversation.summary, messages=[_line(m) for m in chosen], tokens=used)


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
