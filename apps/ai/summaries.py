"""Extractive summaries, offline: the sentences closest to the conversation's centroid, in order."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from apps.ai.embeddings import embed_passages

MAX_SENTENCES_CONSIDERED = 64  # the latest ones: e5 embeds ~40 sentences/s on 2 cores
MIN_WORDS = 3
_SENTENCE_END = re.compile(r"(?<=[.!?؟।])\s+")


def sentences_split(messages: Sequence[str]) -> list[str]:
    out: list[str] = []
    for message in messages:
        for sentence in _SENTENCE_END.split(message.strip()):
            sentence = sentence.strip()
            if sentence:
                out.append(sentence)
    return out


def summarize_extractive(messages: Sequence[str], *, max_sentences: int = 3) -> str:
    sentences = sentences_split(messages)
    substantive = [s for s in sentences if len(s.split()) >= MIN_WORDS] or sentences
    substantive = substantive[-MAX_SENTENCES_CONSIDERED:]
    if len(substantive) <= max_sentences:
        return " ".join(substantive)
    vectors = embed_passages(substantive)
    centroid = vectors.mean(axis=0)
    scores = vectors @ (centroid / (np.linalg.norm(centroid) or 1.0))
    chosen = sorted(int(i) for i in np.argsort(-scores)[:max_sentences])
    return " ".join(substantive[i] for i in chosen)
