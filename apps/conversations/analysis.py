"""Analysis of every inbound message: language, intent with confidence, sentiment, translation.

Runs in Celery after the message is stored (`message_analyse_task`), so a slow or failing
analyser never delays or loses the message itself; a sweeper re-queues messages whose
analysis did not happen. Everything here works offline (apps.ai's local analysers).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.ai.language import UNKNOWN as UNKNOWN_LANGUAGE
from apps.ai.language import detect_language
from apps.ai.router import classify_intent, translate
from apps.ai.selectors import custom_intent_examples
from apps.ai.sentiment import analyse_sentiment
from apps.conversations.context import conversation_summary_refresh
from apps.conversations.hooks import hooks_fire, on_message_analysed
from apps.conversations.models import Conversation, Message
from apps.conversations.selectors import conversation_routing
from apps.core.queue import enqueue_on_commit
from apps.core.realtime import event_publish
from apps.tenants.selectors import organization_working_language

logger = logging.getLogger(__name__)

# How many earlier customer messages decide the language of a short or ambiguous one.
HISTORY_SIZE = 5
ANALYSIS_VERSION = 1


def _history_languages(message: Message) -> list[str]:
    """The conversation's recent customer languages, newest first (the conversation's own last)."""
    recent = list(
        Message.objects.filter(
            conversation_id=message.conversation_id,
            direction=Message.Direction.INBOUND,
            sent_at__lte=message.sent_at,
            analysed_at__isnull=False,
        )
        .exclude(pk=message.pk)
        .exclude(language="")
        .order_by("-sent_at")
        .values_list("language", flat=True)[:HISTORY_SIZE]
    )
    conversation_language = message.conversation.language
    return [*recent, conversation_language] if conversation_language else recent


def message_analyse(*, message_id: int) -> Message | None:
    """Analyse one inbound message and store the results on it; None if there is nothing to do.

    Idempotent: a message analysed before is left as it is.
    """
    message = (
        Message.objects.select_related("conversation")
        .filter(pk=message_id, direction=Message.Direction.INBOUND, analysed_at__isnull=True)
        .first()
    )
    if message is None:
        return None
    started = time.perf_counter()
    text = message.text.strip()
    analysis: dict[str, object] = {"version": ANALYSIS_VERSION, "provider": "local"}
    if not text:
        # A photo without a caption, a sticker, a location: nothing to read; the language stays.
        analysis["skipped"] = "no text"
        message.language = message.conversation.language
    else:
        language = detect_language(text, _history_languages(message), languages=tuple(settings.AI_DETECT_LANGUAGES))
        intent = classify_intent(text, intents=custom_intent_examples() or None, language=language.code)
        sentiment = analyse_sentiment(text, language=language.code)
        message.language = "" if language.code == UNKNOWN_LANGUAGE else language.code
        message.intent = intent.intent
        message.intent_confidence = round(intent.confidence, 4)
        message.sentiment = round(sentiment.score, 4)
        analysis.update(
            language={
                "code": message.language,
                "confidence": round(language.confidence, 4),
                "reliable": language.reliable,
            },
            intent={
                "name": intent.intent,
                "confidence": round(intent.confidence, 4),
                "similarity": round(intent.similarity, 4),
                "top": [
                    [name, round(score, 4)]
                    for name, score in sorted(intent.scores.items(), key=lambda item: -item[1])[:3]
                ],
            },
            sentiment={"score": message.sentiment, "label": sentiment.label, "probabilities": sentiment.probabilities},
        )
        analysis["provider"] = intent.provider
        analysis["translation"] = _translation(message, text)
        _conversation_language_update(message.conversation, language.code, reliable=language.reliable)
    analysis["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
    message.analysis = analysis
    message.analysed_at = timezone.now()
    with transaction.atomic():
        message.save(
            update_fields=[
                "translation",
                "translated_to",
                "language",
                "intent",
                "intent_confidence",
                "sentiment",
                "analysis",
                "analysed_at",
            ]
        )
        event_publish(
            event_type="message.analysed",
            data={
                **conversation_routing(message.conversation),
                "message": message.pk,
                "language": message.language,
                "intent": message.intent,
                "intent_confidence": message.intent_confidence,
                "sentiment": message.sentiment,
            },
        )
    conversation_summary_refresh(conversation=message.conversation)
    handoff_reason = _handoff_reason(message)
    with transaction.atomic():
        if handoff_reason:
            from apps.conversations.lifecycle import conversation_handoff

            conversation_handoff(conversation=message.conversation, reason=handoff_reason)
        # At commit, in this order: the rules (tickets) see the new status first, then the
        # bot's automation is queued and sees what the rules did (see hooks.py).
        hooks_fire(on_message_analysed, message)
        from apps.conversations.tasks import message_automation_task

        enqueue_on_commit(message_automation_task, message.pk)
    return message


def _translation(message: Message, text: str) -> dict[str, object]:
    """Translate into the tenant's working language when a provider can; never pretend offline."""
    target = organization_working_language()
    if not message.language or message.language == target:
        return {"status": "not_needed", "target": target}
    result = translate(text, message.language, target)
    if not result.translated:
        return {"status": "untranslated", "target": target, "reason": "no translation provider is available"}
    message.translation = result.text
    message.translated_to = target
    return {"status": "translated", "target": target, "provider": result.provider, "model": result.model}


def _handoff_reason(message: Message) -> str:
    """The bot gives way to a person when the customer asks for one or is clearly upset."""
    if message.conversation.status != Conversation.Status.BOT:
        return ""
    if message.intent == "human_request" and (message.intent_confidence or 0) >= settings.HANDOFF_MIN_CONFIDENCE:
        return "customer asked for a person"
    if message.sentiment is not None and message.sentiment <= settings.HANDOFF_SENTIMENT_BELOW:
        return "negative sentiment"
    return ""


def _conversation_language_update(conversation: Conversation, code: str, *, reliable: bool) -> None:
    """A conversation takes a language from a reliable detection, or from its first guess."""
    if code == UNKNOWN_LANGUAGE or code == conversation.language:
        return
    if reliable or not conversation.language:
        Conversation.objects.filter(pk=conversation.pk).update(language=code)
        conversation.language = code


def messages_unanalysed(*, older_than: timedelta, limit: int = 500) -> list[int]:
    """Inbound messages whose analysis should have happened by now (its task was lost)."""
    cutoff = timezone.now() - older_than
    return list(
        Message.objects.filter(
            direction=Message.Direction.INBOUND, analysed_at__isnull=True, created__lt=cutoff
        ).values_list("pk", flat=True)[:limit]
    )
