"""Loss values and the error signal at the output layer, summed over nodes and samples (the article's rule).

All functions take batch-major arrays (batch, classes); the feature-major ladder variants pass
transposed views, which is why every reduction here is a full sum.
"""
from __future__ import annotations

import numpy as np

# Keeps log() finite for saturated outputs; the same value as Keras' backend epsilon, so that both
# frameworks report the same loss.
LOG_EPSILON = 1e-7


def logloss(a: np.ndarray, y: np.ndarray) -> float:
    """Binary cross-entropy of each sigmoid output node, summed over nodes and samples."""
    a = np.clip(a, LOG_EPSILON, 1.0 - LOG_EPSILON)
    return float(-(y * np.log(a) + (1.0 - y) * np.log(1.0 - a)).sum())


def logloss_onehot(a: np.ndarray, y: np.ndarray) -> float:
    """``logloss`` for targets that are exactly 0 or 1, bit for bit: each term y log(a) + (1 - y) log(1 - a)
    is then exactly log(a) or log(1 - a), so one log of the picked value replaces two logs and three
    products (6 passes over the batch instead of 10)."""
    a = np.clip(a, LOG_EPSILON, 1.0 - LOG_EPSILON)
    picked = np.where(y > 0.5, a, 1.0 - a)
    return float(-np.log(picked, out=picked).sum())


def categorical_logloss(a: np.ndarray, y: np.ndarray) -> float:
    """Cross-entropy of a softmax output, summed over samples."""
    a = np.clip(a, LOG_EPSILON, 1.0 - LOG_EPSILON)
    return float(-(y * np.log(a)).sum())


def mse(a: np.ndarray, y: np.ndarray) -> float:
    """0.5 * squared error, summed over nodes and samples."""
    diff = a - y
    return float(0.5 * np.vdot(diff, diff))


def loss_function(output_activation: str, loss: str, onehot_targets: bool = False):
    """The loss value function for a configuration, chosen once; ``onehot_targets`` promises targets
    of exactly 0 and 1, which allows a cheaper LogLoss of the same value."""
    if loss == "mse":
        return mse
    if output_activation == "softmax":
        return categorical_logloss
    return logloss_onehot if onehot_targets else logloss


def output_delta_function(output_activation: str, loss: str):
    """dLoss/dZ at the output layer as f(a, y, out) -> delta, chosen once per configuration.

    For LogLoss with its matching output (sigmoid or softmax) the derivative of the output function
    cancels and delta = A - Y; for MSE it is (A - Y) times the output Jacobian.
    """
    if loss == "logloss":
        return _delta_a_minus_y
    if output_activation == "sigmoid":
        return _delta_mse_sigmoid
    return _delta_mse_softmax


def _delta_a_minus_y(a, y, out=None):
    return np.subtract(a, y, out=out)


def _delta_mse_sigmoid(a, y, out=None):
    out = np.subtract(a, y, out=out)  # dL/dA
    out *= a
    out *= 1.0 - a
    return out


def _delta_mse_softmax(a, y, out=None):
    g = a - y  # dL/dA, (batch, classes)
    dot = (g * a).sum(axis=-1, keepdims=True)
    return np.multiply(a, g - dot, out=out)


def loss_gradient_wrt_output(a: np.ndarray, y: np.ndarray, loss: str) -> np.ndarray:
    """dLoss/dA for an element-wise output function (the article's delta_out before D is applied).

    The clipped denominator only matters for saturated outputs, where A(1-A) underflows.
    """
    if loss == "mse":
        return a - y
    denom = np.maximum(a * (1.0 - a), np.finfo(a.dtype).tiny)
    return (a - y) / denom


def regularization_cost(kernels, l2: float, l1: float) -> float:
    """l2/2 * sum(W^2) + l1 * sum(|W|) over the kernels only (bias weights excluded)."""
    cost = 0.0
    if l2 > 0:
        cost += 0.5 * l2 * sum(float(np.vdot(k, k)) for k in kernels)
    if l1 > 0:
        cost += l1 * sum(float(np.abs(k).sum()) for k in kernels)
    return cost
