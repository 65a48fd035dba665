"""Hashed character and word n-gram features, the same at training and at run time.

Hashing (crc32, stable across processes and Python versions) keeps artifacts small: a
model is a weight matrix over `dim` buckets, with no vocabulary to ship.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter

import numpy as np
import numpy.typing as npt

_URL = re.compile(r"https?://\S+|www\.\S+")
_USER = re.compile(r"@\w+")
_DIGITS = re.compile(r"\d+")
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def text_normalise(text: str) -> str:
    text = _URL.sub(" url ", text.lower())
    text = _USER.sub(" @user ", text)
    return _DIGITS.sub("0", text)


def ngram_features(
    text: str, *, dim: int, char_orders: tuple[int, ...] = (1, 2, 3, 4), word_orders: tuple[int, ...] = (1, 2)
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Return (bucket indices, L2-normalised sublinear tf values) for one text."""
    tokens = _TOKEN.findall(text_normalise(text))
    counts: Counter[str] = Counter()
    for token in tokens:
        padded = f" {token} "
        for n in char_orders:
            for start in range(max(1, len(padded) - n + 1)):
                counts["c" + padded[start : start + n]] += 1
    for n in word_orders:
        for start in range(len(tokens) - n + 1):
            counts["w" + " ".join(tokens[start : start + n])] += 1
    buckets: Counter[int] = Counter()
    for gram, count in counts.items():
        buckets[zlib.crc32(gram.encode()) % dim] += 1.0 + math.log(count)  # type: ignore[assignment]
    if not buckets:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    indices = np.fromiter(buckets.keys(), dtype=np.int64, count=len(buckets))
    values = np.fromiter(buckets.values(), dtype=np.float32, count=len(buckets))
    return indices, values / np.float32(np.linalg.norm(values))
