"""Sentiment of a message in -1..1, multilingual and emoji-aware, without the network.

Two logistic-regression heads trained on AfriSenti's train splits (Swahili, Hausa, Yoruba,
Nigerian Pidgin; `scripts/train_ai_heads.py`): one over hashed char/word n-grams, one over
e5 embeddings, whose probabilities are mixed. The n-gram head is language-conditioned: each
n-gram also counts in a copy of its own for the message's language (as the language module's
Hausa/Pidgin fallback model guesses it among the four), so a word can lean one way in Hausa
and another in Yoruba while evidence shared across languages stays shared. An emoji lexicon adds evidence the heads
rarely saw, and decides on its own when a message is nothing but emoji.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from apps.ai.embeddings import embed_query
from apps.ai.language import fallback_proba
from apps.ai.linear import Floats, LinearModel, softmax
from apps.ai.ngrams import ngram_features

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
NGRAM_DIM = 2**18
LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
HEAD_LANGUAGES: tuple[str, ...] = ("sw", "ha", "yo", "pcm")
Label = Literal["negative", "neutral", "positive"]

# Polarity in -1..1 of emoji customers send; skin-tone modifiers and variation selectors are ignored.
EMOJI_POLARITY: dict[str, float] = {
    **dict.fromkeys("😡🤬😠👿💢", -1.0),
    **dict.fromkeys("😤😞😢😭😩😫😒🙄👎💔😖😣😔😟😕🤮🤢😾😿☹🙁😓😰😱🥺😪", -0.7),
    **dict.fromkeys("😐😑🤔😶", 0.0),
    **dict.fromkeys("🙏👍👌💯🎉🥳✅💪🌟⭐🤗", 0.7),
    **dict.fromkeys("😀😃😄😁😊☺🙂😉😍🥰😘❤💖💕💗💓💞😇🤩👏🙌💚💙💛🧡💜😻", 0.8),
    **dict.fromkeys("😂🤣😆😅", 0.3),
}
EMOJI_WEIGHT = 0.35  # per emoji, capped at EMOJI_MAX_WEIGHT when the text also has words
EMOJI_MAX_WEIGHT = 0.8


@dataclass(frozen=True)
class SentimentResult:
    score: float
    label: Label
    probabilities: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Heads:
    ngram: LinearModel
    embed: LinearModel
    ngram_weight: float


_lock = threading.Lock()
_heads: _Heads | None = None


def _heads_get() -> _Heads:
    global _heads
    with _lock:
        if _heads is None:
            _heads = _Heads(
                ngram=LinearModel.load(ARTIFACTS / "sentiment_ngram.npz"),
                embed=LinearModel.load(ARTIFACTS / "sentiment_embed.npz"),
                ngram_weight=float((ARTIFACTS / "sentiment_mix.txt").read_text().strip()),
            )
        return _heads


def emoji_polarity(text: str) -> tuple[float, int]:
    """Return the mean polarity of the known emoji in `text` and how many there were."""
    found = [EMOJI_POLARITY[char] for char in text if char in EMOJI_POLARITY]
    return (sum(found) / len(found), len(found)) if found else (0.0, 0)


def head_language(text: str) -> str | None:
    """The language of the n-gram head's per-language features: the fallback model's best guess, if one of the four."""
    proba = fallback_proba(text)
    code = max(proba, key=lambda name: proba[name])
    return code if code in HEAD_LANGUAGES else None


def sentiment_features(text: str) -> tuple[npt.NDArray[np.int64], Floats]:
    """The n-gram head's features: shared hashed n-grams plus their copy for the text's language."""
    indices, values = ngram_features(text, dim=NGRAM_DIM)
    language = head_language(text)
    if language is None or not len(indices):
        return indices, values
    shifted = (indices * 31 + 7 + 1_000_003 * (HEAD_LANGUAGES.index(language) + 1)) % NGRAM_DIM
    return np.concatenate([indices, shifted]), np.concatenate([values, values])


def _ordered(
    model: LinearModel, proba: np.ndarray[tuple[int], np.dtype[np.float32]]
) -> np.ndarray[tuple[int], np.dtype[np.float32]]:
    return np.array([proba[model.classes.index(label)] for label in LABELS], dtype=np.float32)


def model_proba(text: str, vector: Floats | None = None) -> np.ndarray[tuple[int], np.dtype[np.float32]]:
    """The heads' mixed (negative, neutral, positive) probabilities, before emoji evidence.

    `vector` is the text's e5 query embedding when the caller already has it.
    """
    heads = _heads_get()
    indices, values = sentiment_features(text)
    p_ngram = _ordered(heads.ngram, softmax(heads.ngram.logits_sparse(indices, values)))
    vector = embed_query(text) if vector is None else vector
    p_embed = _ordered(heads.embed, heads.embed.proba_dense(vector[None, :])[0])
    return (heads.ngram_weight * p_ngram + (1 - heads.ngram_weight) * p_embed).astype(np.float32)


def analyse_sentiment(text: str, *, vector: Floats | None = None) -> SentimentResult:
    """Score a message from -1 (angry) to 1 (delighted) and label it negative, neutral or positive.

    `vector` is the text's e5 query embedding when the caller already has it.
    """
    polarity, count = emoji_polarity(text)
    has_words = any(char.isalpha() for char in text)
    proba = model_proba(text, vector) if has_words else np.array([0.0, 1.0, 0.0], dtype=np.float32)
    if count:
        weight = 1.0 if not has_words else min(EMOJI_MAX_WEIGHT, EMOJI_WEIGHT * count)
        emoji_proba = np.array([max(-polarity, 0.0), 1.0 - abs(polarity), max(polarity, 0.0)], dtype=np.float32)
        proba = (1 - weight) * proba + weight * emoji_proba
    label: Label = ("negative", "neutral", "positive")[int(proba.argmax())]
    return SentimentResult(
        score=float(np.clip(proba[2] - proba[0], -1.0, 1.0)),
        label=label,
        probabilities={name: round(float(p), 4) for name, p in zip(LABELS, proba, strict=True)},
    )
