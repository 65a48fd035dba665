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
from apps.ai.language import LanguageResult, detect_language
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
    # Only reliable detections: a guess on "Hi" must not decide the next messages' language.
    recent = list(
        Message.objects.filter(
            conversation_id=message.conversation_id,
            direction=Message.Direction.INBOUND,
            sent_at__lte=message.sent_at,
            analysed_at__isnull=False,
            analysis__language__reliable=True,
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
    detected: LanguageResult | None = None
    if not text:
        # A photo without a caption, a sticker, a location: nothing to read; the language stays.
        analysis["skipped"] = "no text"
        message.language = message.conversation.language
    else:
        language = detected = detect_language(
            text, _history_languages(message), languages=tuple(settings.AI_DETECT_LANGUAGES)
        )
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
        known = language.reliable or message.language == message.conversation.language
        analysis["translation"] = _translation(message, text, language_known=known)
    analysis["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
    message.analysis = analysis
    message.analysed_at = timezone.now()
    handoff_reason = _handoff_reason(message)
    # One transaction for the results and what they set off (hand-off, rules, the bot's turn):
    # if any of it fails, the message stays unanalysed and the retry (or the sweeper) redoes
    # all of it, instead of finding it analysed and leaving the customer without a reply.
    with transaction.atomic():
        if detected is not None:
            _conversation_language_update(message.conversation, detected.code, reliable=detected.reliable)
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
        if handoff_reason:
            _handoff(message.conversation, handoff_reason)
        # At commit, in this order: the rules (tickets) see the new status first, then the
        # bot's automation is queued and sees what the rules did (see hooks.py).
        hooks_fire(on_message_analysed, message)
        from apps.conversations.tasks import message_automation_task

        enqueue_on_commit(message_automation_task, message.pk)
    # Last: the rolling summary may wait on a provider, and only the copilot reads it.
    conversation_summary_refresh(conversation=message.conversation)
    return message


def _handoff(conversation: Conversation, reason: str) -> None:
    from apps.conversations.exceptions import ConversationTransitionInvalid
    from apps.conversations.lifecycle import conversation_handoff

    try:
        with transaction.atomic():
            conversation_handoff(conversation=conversation, reason=reason)
    except ConversationTransitionInvalid:
        # Closed since the message arrived: nobody to hand it to, and no reason to fail.
        logger.info("conversation %s was not handed off (%s): it is closed", conversation.pk, reason)


def _translation(message: Message, text: str, *, language_known: bool) -> dict[str, object]:
    """Translate into the tenant's working language when a provider can; never pretend offline."""
    target = organization_working_language()
    if not message.language or message.language == target:
        return {"status": "not_needed", "target": target}
    if not language_known:
        # "Hi" guessed as Swahili is not worth a paid translation from Swahili.
        return {"status": "untranslated", "target": target, "reason": "the language is uncertain"}
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
    """A conversation takes its language from reliable detections only (a first "Hi" is a guess)."""
    if code == UNKNOWN_LANGUAGE or code == conversation.language:
        return
    if reliable:
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
