"""Activation functions and their derivatives, written for in-place use on float arrays.

Each derivative exists in two forms: from the stored output A (what the article's step III and our
optimized code use) and from the input Z (what the article's original code did: it called the
activation again).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


def sigmoid(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """1 / (1 + exp(-z)), element-wise; four passes over memory, no temporaries when ``out`` is given."""
    out = np.negative(z, out=out)
    np.exp(out, out=out)
    out += 1.0
    return np.reciprocal(out, out=out)


def relu(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return np.maximum(z, 0.0, out=out)


def softmax(z: np.ndarray, out: np.ndarray | None = None, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis`` (the class axis), shifted by the maximum for stability."""
    out = np.subtract(z, z.max(axis=axis, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=axis, keepdims=True)
    return out


def sigmoid_derivative_from_output(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """D = A (1 - A)."""
    out = np.subtract(1.0, a, out=out)
    out *= a
    return out


def tanh_derivative_from_output(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """D = 1 - A^2."""
    out = np.multiply(a, a, out=out)
    return np.subtract(1.0, out, out=out)


def relu_derivative_from_output(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """D = 1 where A > 0, else 0: the sign of A, since relu's output is never negative."""
    return np.sign(a, out=out)


def sigmoid_derivative_from_input(z: np.ndarray) -> np.ndarray:
    """sigmoid(Z) (1 - sigmoid(Z)): recomputes the activation, as the article's original code did."""
    s = sigmoid(z)
    return s * (1.0 - s)


def tanh_derivative_from_input(z: np.ndarray) -> np.ndarray:
    t = np.tanh(z)
    return 1.0 - t * t


def relu_derivative_from_input(z: np.ndarray) -> np.ndarray:
    return (z > 0).astype(z.dtype)


@dataclass(frozen=True)
class Activation:
    name: str
    forward: Callable[..., np.ndarray]
    derivative_from_output: Callable[..., np.ndarray] | None
    derivative_from_input: Callable[[np.ndarray], np.ndarray] | None


# by the names MLPConfig accepts (it refuses the others)
ACTIVATIONS = {
    "sigmoid": Activation("sigmoid", sigmoid, sigmoid_derivative_from_output, sigmoid_derivative_from_input),
    "tanh": Activation("tanh", np.tanh, tanh_derivative_from_output, tanh_derivative_from_input),
    "relu": Activation("relu", relu, relu_derivative_from_output, relu_derivative_from_input),
    # softmax's Jacobian is not element-wise: its delta is computed together with the loss.
    "softmax": Activation("softmax", softmax, None, None),
}
