"""Language of a message: lingua over a configured set, plus rules and a fallback for what lingua lacks.

- Ethiopic script is Amharic (lingua has no Amharic).
- Hausa and Nigerian Pidgin are scored by a hashed char/word n-gram model trained on
  AfriSenti's train splits (`scripts/train_ai_heads.py`); it overrides lingua only when
  lingua's answer is a language the two are confused with and the fallback is sure.
- Google's CLD2 (`pycld2`) gives a second opinion: when it reliably reads Hausa or Yoruba,
  that wins. The fallback knows Hausa tweets, not support chats ("Kudi na bai shigo ba"),
  and lingua confuses Yoruba written without its tone marks with English or Swahili.
- Short or unreliable messages ("ok", "👍", "asante") keep the conversation's language. A
  message is reliable when lingua is sure, or when lingua and CLD2 agree on it: lingua's
  confidence is spread over all configured languages, so a plain "Where is my order?" gets
  0.45 for English and would otherwise stay in the conversation's earlier language.
- @handles, links and e-mail addresses say nothing about the language and are removed
  first: the fallback learned "@user" from AfriSenti's Hausa tweets.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pycld2  # type: ignore[import-untyped]
from lingua import IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder

from apps.ai.linear import LinearModel, softmax
from apps.ai.ngrams import ngram_features

DEFAULT_LANGUAGES: tuple[str, ...] = ("en", "fr", "pt", "es", "it", "ar", "sw", "yo", "zu", "xh", "so", "af")
FALLBACK_PATH = Path(__file__).resolve().parent / "artifacts" / "language_fallback.npz"
FALLBACK_DIM = 2**17
UNKNOWN = "und"

# Below this many letters a guess is not worth switching a conversation's language for.
MIN_RELIABLE_LETTERS = 12
MIN_RELIABLE_CONFIDENCE = 0.5
# The fallback may replace these lingua answers: Hausa tweets read as Somali/Yoruba/Swahili
# to lingua, Pidgin as English. Other Latin-script answers only when lingua itself is unsure,
# because the fallback never saw French, Spanish, Italian or Portuguese.
FALLBACK_MAY_REPLACE = frozenset({"en", "sw", "yo", "so", "zu", "xh", "af"})
FALLBACK_MAY_REPLACE_UNSURE = frozenset({"fr", "es", "it", "pt"})
LINGUA_UNSURE = 0.6
FALLBACK_THRESHOLDS = {"ha": 0.5, "pcm": 0.5}
# CLD2's reliable answer wins for these (Yoruba only if configured); its confidence is then this.
CLD2_OVERRIDES = frozenset({"ha", "yo"})
CLD2_CONFIDENCE = 0.6

# Greetings and thanks that are a language on their own even though they are short.
_SHORT_WORDS = {
    "asante": "sw",
    "sawa": "sw",
    "habari": "sw",
    "karibu": "sw",
    "merci": "fr",
    "bonjour": "fr",
    "obrigado": "pt",
    "obrigada": "pt",
    "gracias": "es",
    "hola": "es",
    "grazie": "it",
    "ciao": "it",
    "shukran": "ar",
    "e se": "yo",
    "ese": "yo",
    "nagode": "ha",
    "sannu": "ha",
    "abeg": "pcm",
    "wetin": "pcm",
    "ngiyabonga": "zu",
    "sawubona": "zu",
    "enkosi": "xh",
    "molo": "xh",
    "dankie": "af",
    "mahadsanid": "so",
}

_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
# Links, e-mail addresses and @handles (Twitter's, or an e-mail's remainder), and retweet marks.
_NOT_LANGUAGE = re.compile(r"https?://\S+|www\.\S+|\S+@\S+|@\w+|\bRT\b", re.UNICODE)


def language_text(text: str) -> str:
    """The part of `text` that is language: without links, e-mail addresses, @handles and RT marks."""
    return " ".join(_NOT_LANGUAGE.sub(" ", text).split())


@dataclass(frozen=True)
class LanguageResult:
    code: str
    confidence: float
    reliable: bool


@lru_cache(maxsize=8)
def _detector(languages: tuple[str, ...]) -> LanguageDetector:
    isos = [IsoCode639_1.from_str(code) for code in languages]
    return LanguageDetectorBuilder.from_iso_codes_639_1(*isos).with_preloaded_language_models().build()


_fallback_lock = threading.Lock()
_fallback: LinearModel | None = None


def _fallback_model() -> LinearModel:
    global _fallback
    with _fallback_lock:
        if _fallback is None:
            _fallback = LinearModel.load(FALLBACK_PATH)
        return _fallback


def fallback_proba(text: str) -> dict[str, float]:
    """Probabilities of the Hausa/Pidgin fallback's classes (ha, pcm, and the languages it tells them from)."""
    model = _fallback_model()
    indices, values = ngram_features(text, dim=FALLBACK_DIM)
    proba = softmax(model.logits_sparse(indices, values))
    return {code: float(p) for code, p in zip(model.classes, proba, strict=True)}


def cld2_language(text: str) -> str | None:
    """CLD2's language code for `text` when it calls its answer reliable, else None."""
    try:
        reliable, _, details = pycld2.detect(text, bestEffort=True)
    except (pycld2.error, UnicodeEncodeError):  # text it cannot take, such as lone surrogates
        return None
    return str(details[0][1]) if reliable else None


def _is_ethiopic(char: str) -> bool:
    return "\u1200" <= char <= "\u139f" or "\u2d80" <= char <= "\u2ddf" or "\uab00" <= char <= "\uab2f"


def _history_language(history: list[str] | None) -> str | None:
    known = [code for code in history or [] if code and code != UNKNOWN]
    if not known:
        return None
    counts = Counter(known)
    # Most frequent, ties to the most recent (history is newest first; max keeps the first).
    return max(known, key=lambda code: counts[code])


def _iso(language: Language) -> str:
    return language.iso_code_639_1.name.lower()


def _guess(text: str, letters: list[str], languages: tuple[str, ...]) -> tuple[str, float, bool]:
    """(code, confidence, whether CLD2 reliably agrees with lingua's answer)."""
    ethiopic = sum(1 for char in letters if _is_ethiopic(char))
    if ethiopic * 2 >= len(letters):
        return "am", min(1.0, 0.5 + ethiopic / 20), False
    words = text.lower().strip(" !.?,").split()
    short = " ".join(words)
    if short in _SHORT_WORDS and len(words) <= 2:
        return _SHORT_WORDS[short], 0.6, False
    values = _detector(languages).compute_language_confidence_values(text)
    if not values:
        return UNKNOWN, 0.0, False
    code, confidence = _iso(values[0].language), float(values[0].value)
    second = cld2_language(text)
    if second in CLD2_OVERRIDES and second != code and (second == "ha" or second in languages):
        return second, CLD2_CONFIDENCE, False
    replaceable = code in FALLBACK_MAY_REPLACE or (code in FALLBACK_MAY_REPLACE_UNSURE and confidence < LINGUA_UNSURE)
    if replaceable and FALLBACK_PATH.exists():
        proba = fallback_proba(text)
        for candidate, threshold in FALLBACK_THRESHOLDS.items():
            if proba.get(candidate, 0.0) >= threshold:
                return candidate, proba[candidate], False
    return code, confidence, second == code


def detect_language(
    text: str, history_languages: list[str] | None = None, *, languages: tuple[str, ...] = DEFAULT_LANGUAGES
) -> LanguageResult:
    """Detect the language of a message; the conversation's recent languages win when the text says too little.

    `history_languages` are the conversation's recent languages, newest first.
    """
    text = language_text(unicodedata.normalize("NFC", text))
    letters = [char for char in text if _LETTER.match(char)]
    sticky = _history_language(history_languages)
    if not letters:
        return LanguageResult(sticky or UNKNOWN, 0.5 if sticky else 0.0, False)
    code, confidence, agreed = _guess(text, letters, languages)
    enough = len(letters) >= MIN_RELIABLE_LETTERS or (code == "am" and len(letters) >= 4)
    reliable = enough and (confidence >= MIN_RELIABLE_CONFIDENCE or agreed)
    if not reliable and sticky is not None:
        return LanguageResult(sticky, max(confidence, 0.5) if code == sticky else 0.5, False)
    return LanguageResult(code, confidence, reliable)
