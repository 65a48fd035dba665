"""Sentiment of a message in -1..1, multilingual and emoji-aware, without the network.

Two logistic-regression heads trained on AfriSenti's train splits (Swahili, Hausa, Yoruba,
Nigerian Pidgin) and on English rated by people (VADER's ground truth: tweets, product and
movie reviews, editorials; `scripts/train_ai_heads.py`): one over hashed char/word n-grams,
one over e5 embeddings, whose probabilities are mixed. The n-gram head is
language-conditioned: each n-gram also counts in a copy of its own for the message's
language (as the language module's Hausa/Pidgin fallback model guesses it among those five),
so a word can lean one way in Hausa and another in Pidgin or English while evidence shared
across languages stays shared. The mix depends on the message's language: one for the four
African training languages, one for English, and one for the languages the heads never saw
(French, Portuguese, ...), which leans on the multilingual e5 head (`Mixes`). An emoji
lexicon adds evidence, and decides on its own when a message is nothing but emoji.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
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
AFRISENTI_LANGUAGES: tuple[str, ...] = ("sw", "ha", "yo", "pcm")
HEAD_LANGUAGES: tuple[str, ...] = (*AFRISENTI_LANGUAGES, "en")  # the languages of the training rows
Label = Literal["negative", "neutral", "positive"]
Probabilities = np.ndarray[tuple[int], np.dtype[np.float32]]  # (negative, neutral, positive)

# Polarity in -1..1 of emoji customers send; skin-tone modifiers and variation selectors are ignored.
EMOJI_POLARITY: dict[str, float] = {
    **dict.fromkeys("😡🤬😠👿💢", -1.0),
    **dict.fromkeys("😤😞😢😭😩😫😒🙄👎💔😖😣😔😟😕🤮🤢😾😿☹🙁😓😰😱🥺😪", -0.7),
    **dict.fromkeys("😐😑🤔😶", 0.0),
    **dict.fromkeys("🙏👍👌💯🎉🥳✅💪🌟⭐🤗", 0.7),
    **dict.fromkeys("😀😃😄😁😊☺🙂😉😍🥰😘❤💖💕💗💓💞😇🤩👏🙌💚💙💛🧡💜😻", 0.8),
    **dict.fromkeys("😂🤣😆😅", 0.3),
}


@dataclass(frozen=True)
class SentimentResult:
    score: float
    label: Label
    probabilities: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Mix:
    """How the evidence is combined (`scripts/train_ai_heads.py` chooses it on training data).

    `ngram_weight` is the n-gram head's share beside the e5 head. `emoji_weight` is the
    lexicon's weight per emoji when the message also has words, capped at `emoji_max_weight`:
    the heads already learnt the emoji of their training tweets, where the lexicon's reading
    often disagrees with the writers' (in Hausa tweets, 😭 marks more positive than negative
    ones and 😂 mostly neutral ones).
    """

    ngram_weight: float
    emoji_weight: float
    emoji_max_weight: float


@dataclass(frozen=True)
class Mixes:
    """One mix for messages in the four AfriSenti languages, one for English, one for every other language.

    `trained` and `english` are chosen on the train hold-out. `other` is chosen with each
    training language left out of training in turn, as a language the heads never saw: there
    the n-gram head knows little and the multilingual e5 head must weigh more.
    """

    trained: Mix
    english: Mix
    other: Mix

    def for_language(self, language: str | None) -> Mix:
        if language in AFRISENTI_LANGUAGES:
            return self.trained
        return self.english if language == "en" else self.other

    @classmethod
    def load(cls, path: Path) -> Mixes:
        values = json.loads(path.read_text())
        return cls(**{group: Mix(**values[group]) for group in ("trained", "english", "other")})

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")


EMOJI_ONLY = Mix(ngram_weight=0.0, emoji_weight=1.0, emoji_max_weight=1.0)


@dataclass(frozen=True)
class _Heads:
    ngram: LinearModel
    embed: LinearModel
    mixes: Mixes


_lock = threading.Lock()
_heads: _Heads | None = None


def _heads_get() -> _Heads:
    global _heads
    with _lock:
        if _heads is None:
            _heads = _Heads(
                ngram=LinearModel.load(ARTIFACTS / "sentiment_ngram.npz"),
                embed=LinearModel.load(ARTIFACTS / "sentiment_embed.npz"),
                mixes=Mixes.load(ARTIFACTS / "sentiment_mix.json"),
            )
        return _heads


def emoji_polarity(text: str) -> tuple[float, int]:
    """Return the mean polarity of the known emoji in `text` and how many there were."""
    found = [EMOJI_POLARITY[char] for char in text if char in EMOJI_POLARITY]
    return (sum(found) / len(found), len(found)) if found else (0.0, 0)


def head_language(text: str) -> str:
    """The language of the n-gram head's per-language features: the fallback model's guess among `HEAD_LANGUAGES`."""
    proba = fallback_proba(text)
    return max(proba, key=lambda name: proba[name])


def sentiment_features(text: str, language: str | None = None) -> tuple[npt.NDArray[np.int64], Floats]:
    """The n-gram head's features: shared hashed n-grams plus their copy for the text's language.

    `language` is the detected one, if known: a language the heads never saw (French, ...)
    gets no copy; otherwise the copy is for the fallback model's guess among the heads' five.
    """
    indices, values = ngram_features(text, dim=NGRAM_DIM)
    if not len(indices) or (language is not None and language not in HEAD_LANGUAGES):
        return indices, values
    copy = head_language(text)
    shifted = (indices * 31 + 7 + 1_000_003 * (HEAD_LANGUAGES.index(copy) + 1)) % NGRAM_DIM
    return np.concatenate([indices, shifted]), np.concatenate([values, values])


def _ordered(model: LinearModel, proba: Probabilities) -> Probabilities:
    return np.array([proba[model.classes.index(label)] for label in LABELS], dtype=np.float32)


def heads_proba(
    text: str, vector: Floats | None = None, language: str | None = None
) -> tuple[Probabilities, Probabilities]:
    """The n-gram head's and the e5 head's (negative, neutral, positive) probabilities.

    `vector` is the text's e5 query embedding when the caller already has it; `language` the
    detected language (`sentiment_features`).
    """
    heads = _heads_get()
    indices, values = sentiment_features(text, language)
    p_ngram = _ordered(heads.ngram, softmax(heads.ngram.logits_sparse(indices, values)))
    vector = embed_query(text) if vector is None else vector
    return p_ngram, _ordered(heads.embed, heads.embed.proba_dense(vector[None, :])[0])


def emoji_apply(proba: Probabilities, text: str, mix: Mix) -> Probabilities:
    """Add the lexicon's evidence for the emoji of `text` to the heads' probabilities."""
    polarity, count = emoji_polarity(text)
    if not count:
        return proba
    weight = min(mix.emoji_max_weight, mix.emoji_weight * count)
    emoji_proba = np.array([max(-polarity, 0.0), 1.0 - abs(polarity), max(polarity, 0.0)], dtype=np.float32)
    return ((1 - weight) * proba + weight * emoji_proba).astype(np.float32)


def evidence_combine(text: str, heads: Callable[[], tuple[Probabilities, Probabilities]], mix: Mix) -> Probabilities:
    """The final probabilities: the two heads' (`heads()`, run only if `text` has words) mixed, plus the emoji's.

    A message of nothing but emoji (or punctuation) is the lexicon's alone.
    """
    if not any(char.isalpha() for char in text):
        return emoji_apply(np.array([0.0, 1.0, 0.0], dtype=np.float32), text, EMOJI_ONLY)
    p_ngram, p_embed = heads()
    mixed = (mix.ngram_weight * p_ngram + (1 - mix.ngram_weight) * p_embed).astype(np.float32)
    return emoji_apply(mixed, text, mix)


def analyse_sentiment(text: str, *, vector: Floats | None = None, language: str | None = None) -> SentimentResult:
    """Score a message from -1 (angry) to 1 (delighted) and label it negative, neutral or positive.

    `vector` is the text's e5 query embedding when the caller already has it; `language` is
    the detected language (without it, the fallback model's guess among the heads' five).
    """
    mix = _heads_get().mixes.for_language(head_language(text) if language is None else language)
    proba = evidence_combine(text, lambda: heads_proba(text, vector, language), mix)
    label: Label = ("negative", "neutral", "positive")[int(proba.argmax())]
    return SentimentResult(
        score=float(np.clip(proba[2] - proba[0], -1.0, 1.0)),
        label=label,
        probabilities={name: round(float(p), 4) for name, p in zip(LABELS, proba, strict=True)},
    )
