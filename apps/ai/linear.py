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
    x: Floats,
    y: npt.NDArray[np.int64],
    n_classes: int,
    *,
    l2: float = 1e-4,
    max_iter: int = 500,
    tolerance: float = 1e-5,
    history: int = 10,
) -> tuple[Floats, Floats]:
    """Fit multinomial logistic regression by full-batch L-BFGS; return (weights, bias).

    Minimises the mean cross-entropy plus `l2 / 2 * |weights|^2` (the bias is not penalised),
    which is scikit-learn's `LogisticRegression(C=1 / (l2 * n))` up to the class weights: the
    problem is convex, so L-BFGS reaches the same optimum in a few hundred steps. Classes weigh
    the same whatever their number of rows, so an intent a tenant added with three phrases is
    not drowned by defaults that have a dozen.
    """
    n, d = x.shape
    x = np.ascontiguousarray(x, dtype=np.float32)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    row_weights = (n / (n_classes * np.maximum(counts, 1.0)))[y]
    row_weights = (row_weights / n).astype(np.float32)[:, None]
    onehot = np.zeros((n, n_classes), dtype=np.float32)
    onehot[np.arange(n), y] = 1.0
    size = d * n_classes

    def loss_grad(params: npt.NDArray[np.float64]) -> tuple[float, npt.NDArray[np.float64]]:
        weights = params[:size].reshape(d, n_classes)
        logits = x @ weights.astype(np.float32) + params[size:].astype(np.float32)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        total = exp.sum(axis=1, keepdims=True)
        log_likelihood = (logits * onehot).sum(axis=1, keepdims=True) - np.log(total)
        loss = -float((row_weights * log_likelihood).sum()) + 0.5 * l2 * float((weights * weights).sum())
        grad_logits = row_weights * (exp / total - onehot)
        grad = np.empty_like(params)
        grad[:size] = (x.T @ grad_logits).ravel() + l2 * weights.ravel()
        grad[size:] = grad_logits.sum(axis=0)
        return loss, grad

    params = np.zeros(size + n_classes, dtype=np.float64)
    loss, grad = loss_grad(params)
    steps: list[npt.NDArray[np.float64]] = []
    changes: list[npt.NDArray[np.float64]] = []
    for _ in range(max_iter):
        if float(np.abs(grad).max()) < tolerance:
            break
        # Two-loop recursion: the quasi-Newton direction from the last `history` steps.
        direction = -grad
        alphas = []
        for step, change in zip(reversed(steps), reversed(changes), strict=True):
            alpha = float(step @ direction) / float(change @ step)
            alphas.append(alpha)
            direction = direction - alpha * change
        if steps:
            direction *= float(steps[-1] @ changes[-1]) / float(changes[-1] @ changes[-1])
        for step, change, alpha in zip(steps, changes, reversed(alphas), strict=True):
            beta = float(change @ direction) / float(change @ step)
            direction = direction + (alpha - beta) * step
        slope = float(grad @ direction)
        if slope >= 0:  # not a descent direction: restart from the gradient
            steps.clear()
            changes.clear()
            direction, slope = -grad, -float(grad @ grad)
        rate = 1.0 if steps else min(1.0, 1.0 / float(np.abs(grad).sum()))
        # Backtracking line search (Armijo condition).
        for _ in range(30):
            candidate = params + rate * direction
            new_loss, new_grad = loss_grad(candidate)
            if new_loss <= loss + 1e-4 * rate * slope:
                break
            rate *= 0.5
        else:
            break
        step, change = candidate - params, new_grad - grad
        if float(change @ step) > 1e-12:
            steps.append(step)
            changes.append(change)
            if len(steps) > history:
                steps.pop(0)
                changes.pop(0)
        converged = loss - new_loss <= tolerance * max(abs(new_loss), 1.0) * 1e-3
        params, loss, grad = candidate, new_loss, new_grad
        if converged:
            break
    weights = params[:size].reshape(d, n_classes).astype(np.float32)
    bias = params[size:].astype(np.float32)
    return weights, bias
