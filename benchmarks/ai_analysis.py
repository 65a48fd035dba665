"""How long the offline analysis of one inbound message takes: language + intent + sentiment.

    python -m benchmarks.ai_analysis [--runs N]

Warm (models loaded, default intent classifier fitted) and with the embedding caches cleared
before every message, so each run pays for one real e5 embedding (and English messages for
one MiniLM embedding too, as the pipeline's English intent head does). Prints p50/p99 of the
full analysis, overall and for the English messages alone, and of the raw e5 embedding call
measured in the same run, and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from apps.ai import embeddings, minilm
from apps.ai.intents import classify_intent
from apps.ai.language import detect_language
from apps.ai.sentiment import analyse_sentiment

MESSAGES = [
    "Hello, where is my order? I paid on Monday and nothing has arrived yet 😡",
    "Bonjour, je voudrais parler à un conseiller s'il vous plaît",
    "Habari, nimekatwa pesa mara mbili kwenye kadi yangu, naomba msaada",
    "Olá, o aplicativo não abre desde ontem",
    "Abeg make una help me, my account no dey open",
    "Thank you so much, great service 🙏",
    "Sannu, ina son yin booking na gobe da safe",
    "ok",
]


def _analyse(text: str) -> None:
    language = detect_language(text, ["en"])
    classify_intent(text, language=language.code)
    analyse_sentiment(text, language=language.code)


def _time(func: Callable[[str], object], runs: int, messages: list[str] = MESSAGES) -> list[float]:
    seconds = []
    for i in range(runs):
        # Vary the text so that neither the embedding caches nor lingua's caches can answer.
        text = f"{messages[i % len(messages)]} #{i}"
        embeddings.cache_clear()
        minilm.cache_clear()
        started = time.perf_counter()
        func(text)
        seconds.append(time.perf_counter() - started)
    return seconds


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    ordered = sorted(seconds)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    _analyse("warm up: load the models and fit the default intents")
    baseline = _time(lambda text: embeddings.embed_queries([text]), args.runs)
    full = _time(_analyse, args.runs)
    english = _time(_analyse, args.runs, [text for text in MESSAGES if detect_language(text, ["en"]).code == "en"])
    base_p50, base_p99 = _percentiles(baseline)
    p50, p99 = _percentiles(full)
    en_p50, en_p99 = _percentiles(english)
    print(f"embedding only (baseline): p50 {base_p50:.1f} ms  p99 {base_p99:.1f} ms  ({args.runs} messages)")
    print(f"full analysis:             p50 {p50:.1f} ms  p99 {p99:.1f} ms")
    print(f"  English messages only:   p50 {en_p50:.1f} ms  p99 {en_p99:.1f} ms  (e5 + MiniLM heads)")
    print(f"ratio full/baseline p50:   {p50 / base_p50:.2f}x  (English: {en_p50 / base_p50:.2f}x)")


if __name__ == "__main__":
    main()
