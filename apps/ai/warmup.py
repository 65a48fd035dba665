"""Load the offline models before the first message needs them (a cold start takes ~15 s)."""

from __future__ import annotations

import gc
import logging
import threading
import time

from django.conf import settings

logger = logging.getLogger(__name__)


def analysers_warm() -> float:
    """Load the embedding model, the language detector and the classifier heads; return seconds."""
    from apps.ai.intents import classify_intent
    from apps.ai.language import detect_language
    from apps.ai.sentiment import analyse_sentiment

    started = time.perf_counter()
    detect_language("Hello, where is my order?", languages=tuple(settings.AI_DETECT_LANGUAGES))
    classify_intent("Hello, where is my order?", language="en")  # the English head's encoder too
    analyse_sentiment("Thank you, that was quick!", language="en")
    return time.perf_counter() - started


def analysers_warm_in_background() -> None:
    def run() -> None:
        try:
            logger.info("offline AI models loaded in %.1f s", analysers_warm())
        except Exception:  # a cold first message is slower, never wrong
            logger.exception("could not warm the offline AI models")
        gc.freeze()  # the models live as long as the process: out of the collector's full passes

    threading.Thread(target=run, name="ai-warmup", daemon=True).start()
