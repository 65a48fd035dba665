"""Small linear classifiers: numpy softmax regression, fitted and applied in-process.

Committed artifacts (sentiment, the Hausa/Pidgin language fallback) are `.npz` files holding
a weight matrix over hashed n-gram buckets and/or embedding dimensions; intents fit their
weights at run time from example embeddings in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float32]


def softmax(logits: Floats) -> Floats:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    proba: Floats = (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)
    return proba


@dataclass(frozen=True)
class LinearModel:
    classes: tuple[str, ...]
    weights: Floats  # (features, classes)
    bias: Floats  # (classes,)

    def proba_dense(self, x: Floats) -> Floats:
        return softmax(x @ self.weights + self.bias)

    def logits_sparse(self, indices: npt.NDArray[np.int64], values: Floats) -> Floats:
        return (values @ self.weights[indices]).astype(np.float32) + self.bias

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path, classes=np.array(self.classes), weights=self.weights.astype(np.float16), bias=self.bias
        )

    @classmethod
    def load(cls, path: Path) -> LinearModel:
        with np.load(path, allow_pickle=False) as data:
            return cls(
                classes=tuple(str(c) for c in data["classes"]),
                weights=data["weights"].astype(np.float32),
                bias=data["bias"].astype(np.float32),
            )


def softmax_fit(
    x: Floats, y: npt.NDArray[np.int64], n_classes: int, *, l2: float = 1e-4, epochs: int = 300, lr: float = 0.05
) -> tuple[Floats, Floats]:
    """Fit multinomial logistic regression by full-batch Adam; return (weights, bias).

    Classes weigh the same whatever their number of rows, so an intent a tenant added with
    three phrases is not drowned by defaults that have a dozen.
    """
    n, d = x.shape
    counts = np.bincount(y, minlength=n_classes).astype(np.float32)
    row_weights = (n / (n_classes * np.maximum(counts, 1.0)))[y][:, None].astype(np.float32)
    weights = np.zeros((d, n_classes), dtype=np.float32)
    bias = np.zeros(n_classes, dtype=np.float32)
    onehot = np.zeros((n, n_classes), dtype=np.float32)
    onehot[np.arange(n), y] = 1.0
    m_w, v_w = np.zeros_like(weights), np.zeros_like(weights)
    m_b, v_b = np.zeros_like(bias), np.zeros_like(bias)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, epochs + 1):
        grad_logits = row_weights * (softmax(x @ weights + bias) - onehot) / n
        g_w = x.T @ grad_logits + l2 * weights
        g_b = grad_logits.sum(axis=0)
        m_w = beta1 * m_w + (1 - beta1) * g_w
        v_w = beta2 * v_w + (1 - beta2) * g_w * g_w
        m_b = beta1 * m_b + (1 - beta1) * g_b
        v_b = beta2 * v_b + (1 - beta2) * g_b * g_b
        correction1, correction2 = 1 - beta1**step, 1 - beta2**step
        weights -= (lr * (m_w / correction1) / (np.sqrt(v_w / correction2) + eps)).astype(np.float32)
        bias -= (lr * (m_b / correction1) / (np.sqrt(v_b / correction2) + eps)).astype(np.float32)
    return weights, bias
