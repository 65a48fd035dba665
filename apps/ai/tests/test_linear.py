from __future__ import annotations

import numpy as np

from apps.ai.linear import softmax, softmax_fit


def _objective_gradient(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray, bias: np.ndarray, l2: float
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of the class-balanced mean cross-entropy plus l2/2 |W|^2, computed independently."""
    n, k = len(y), weights.shape[1]
    balance = (n / (k * np.bincount(y, minlength=k)))[y][:, None]
    residual = balance * (softmax((x @ weights + bias).astype(np.float32)) - np.eye(k)[y]) / n
    return x.T @ residual + l2 * weights, residual.sum(axis=0)


def test_softmax_fit_reaches_the_optimum() -> None:
    rng = np.random.default_rng(0)
    n, d, k = 400, 24, 5
    y = rng.integers(0, k, n)
    x = (rng.normal(size=(k, d))[y] * 0.4 + rng.normal(size=(n, d))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for l2 in (1e-2, 1e-4):
        weights, bias = softmax_fit(x, y, k, l2=l2, max_iter=2000, tolerance=1e-7)
        g_w, g_b = _objective_gradient(x, y, weights, bias, l2)
        # At the minimum of the convex objective the gradient vanishes (a few Adam steps do not get there).
        assert float(np.abs(g_w).max()) < 1e-4
        assert float(np.abs(g_b).max()) < 1e-4
        assert float(((x @ weights + bias).argmax(axis=1) == y).mean()) >= 0.75


def test_softmax_fit_weak_penalty_separates_tiny_classes() -> None:
    x = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0, 1], [0, 0.1, 0.9]], dtype=np.float32)
    y = np.array([0, 0, 1, 2, 2])
    weights, bias = softmax_fit(x, y, 3, l2=1e-5)
    proba = softmax(x @ weights + bias)
    assert (proba.argmax(axis=1) == y).all()
    assert float(proba.max(axis=1).min()) > 0.9
