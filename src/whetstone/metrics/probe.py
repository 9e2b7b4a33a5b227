"""Linear probe: how much of the class a representation (e.g. an autoencoder's binary code)
keeps, measured by a multinomial logistic regression trained on it (numpy only).

With features ``z`` ``(N, D)`` (standardised by the training set's mean and standard
deviation) and weights ``W`` ``(D, C)``, ``b`` ``(C,)``, the regression minimises

    L = mean_n -log softmax(z_n W + b)[y_n] + (l2 / 2) ||W||^2

by full-batch gradient descent with Adam steps; the probe's score is the accuracy of
``argmax(z W + b)`` on held-out features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ProbeResult:
    """``train_accuracy`` and ``test_accuracy`` of the fitted probe, its final training
    ``loss``, and the ``steps`` it took."""

    train_accuracy: float
    test_accuracy: float
    loss: float
    steps: int


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                 test_y: np.ndarray, steps: int = 500, lr: float = 0.05, l2: float = 1e-4,
                 ) -> ProbeResult:
    """Fit the logistic regression of the module docstring on ``(train_x, train_y)`` and score
    it on ``(test_x, test_y)``. Features ``(N, D)`` of any real dtype (e.g. spikes), labels
    ``(N,)`` integers in ``[0, C)``; deterministic (zero initial weights)."""
    train_x = np.asarray(train_x, dtype=np.float64).reshape(len(train_x), -1)
    test_x = np.asarray(test_x, dtype=np.float64).reshape(len(test_x), -1)
    train_y, test_y = np.asarray(train_y).astype(np.int64), np.asarray(test_y).astype(np.int64)
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise ValueError("linear_probe: features and labels differ in length")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"linear_probe: {train_x.shape[1]} training features, "
                         f"{test_x.shape[1]} test features")
    if len(train_x) == 0 or len(test_x) == 0:
        raise ValueError("linear_probe: no samples")
    mean, std = train_x.mean(axis=0), train_x.std(axis=0)
    std[std == 0] = 1.0
    z, zt = (train_x - mean) / std, (test_x - mean) / std
    classes = int(max(train_y.max(), test_y.max())) + 1
    onehot = np.eye(classes)[train_y]
    w = np.zeros((z.shape[1], classes))
    b = np.zeros(classes)
    m = [np.zeros_like(w), np.zeros_like(b)]
    v = [np.zeros_like(w), np.zeros_like(b)]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    loss = float("nan")
    for t in range(1, steps + 1):
        p = _softmax(z @ w + b)
        loss = float(-np.log(np.maximum(p[np.arange(len(z)), train_y], 1e-300)).mean()
                     + 0.5 * l2 * np.square(w).sum())
        diff = (p - onehot) / len(z)
        grads = [z.T @ diff + l2 * w, diff.sum(axis=0)]
        for i, (param, g) in enumerate(zip((w, b), grads, strict=True)):
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            m_hat, v_hat = m[i] / (1 - beta1 ** t), v[i] / (1 - beta2 ** t)
            param -= lr * m_hat / (np.sqrt(v_hat) + eps)
    train_acc = float(((z @ w + b).argmax(axis=1) == train_y).mean())
    test_acc = float(((zt @ w + b).argmax(axis=1) == test_y).mean())
    return ProbeResult(train_acc, test_acc, loss, steps)
