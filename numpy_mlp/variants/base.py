"""What every implementation of the training step provides.

A variant owns the weights in its own layout and the training data in the form its batches are cut
from. One mini-batch is the article's five phases, each a method, so that the training loop can time
them (``MLP.fit(..., phase_timing=True)``) or call ``train_batch`` without any timing cost.
``forward`` returns everything ``backward`` needs; nothing of a batch is kept on the object.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..config import MLPConfig

# (kernel (inputs, outputs), bias (outputs,)) per layer: Keras' layout, the exchange format.
Weights = list[tuple[np.ndarray, np.ndarray]]

PHASES = ("prepare", "forward", "cost", "backward", "update")


class Variant(ABC):
    name: str = ""
    description: str = ""

    def __init__(self, config: MLPConfig, weights: Weights):
        self.config = config
        self.dtype = self.compute_dtype(config)
        self.set_weights(weights)

    @classmethod
    def compute_dtype(cls, config: MLPConfig) -> np.dtype:
        """The float type this variant computes in (the article's original is always float64)."""
        return np.dtype(config.dtype)

    def blas_threads(self, batch_size: int, available: int) -> int:
        """BLAS threads to train with at this batch size, at most ``available``; default: all of them."""
        return available

    @abstractmethod
    def set_weights(self, weights: Weights) -> None:
        """Take weights in Keras' layout; resets the momentum."""

    @abstractmethod
    def get_weights(self) -> Weights:
        """Copies of the weights in Keras' layout, in this variant's dtype."""

    @abstractmethod
    def bind(self, x: np.ndarray, y_onehot: np.ndarray, labels: np.ndarray, scaler=None) -> None:
        """Hold the training data: x (n, inputs), raw when ``scaler`` (an InputScaler) is given, else
        already scaled; y_onehot (n, outputs); labels (n,) int."""

    @abstractmethod
    def prepare(self, idx: np.ndarray):
        """The batch for the sample indices ``idx`` (batch,)."""

    @abstractmethod
    def forward(self, batch):
        """Forward propagation; returns what ``cost`` and ``backward`` need."""

    @abstractmethod
    def cost(self, batch, cache) -> tuple[float, int]:
        """(loss of the batch including regularization, number of correctly classified samples)."""

    @abstractmethod
    def backward(self, batch, cache):
        """Gradients of the summed loss (+ regularization) for every layer."""

    @abstractmethod
    def update(self, grads, lr: float) -> None:
        """The article's rule: step = lr * grad; W -= step + momentum * previous step."""

    def train_batch(self, idx: np.ndarray, lr: float) -> tuple[float, int]:
        batch = self.prepare(idx)
        cache = self.forward(batch)
        loss, n_correct = self.cost(batch, cache)
        grads = self.backward(batch, cache)
        self.update(grads, lr)
        return loss, n_correct
