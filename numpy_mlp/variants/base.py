"""What every implementation of the training step provides.

A variant owns the weights in its own layout and the training data in the form its batches are cut
from, and trains one mini-batch in ``train_batch``: the article's five phases (``PHASES``), each
timed when asked to (``MLP.fit(..., phase_timing=True)``). Nothing of a batch is kept on the object.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..config import MLPConfig

# (kernel (inputs, outputs), bias (outputs,)) per layer: Keras' layout, the exchange format.
Weights = list[tuple[np.ndarray, np.ndarray]]

PHASES = ("prepare", "forward", "cost", "backward", "update")


@dataclass(frozen=True)
class Threads:
    """How a variant trains on its cores: ``rows`` threads each train a share of a batch's rows,
    every product of each of them running on ``blas`` BLAS threads."""

    rows: int
    blas: int


class PhaseClock:
    """Adds the time since the previous lap to ``phases[name]``; does nothing when ``phases`` is None."""

    def __init__(self, phases: dict[str, float] | None):
        self.phases = phases
        self.last = time.perf_counter() if phases is not None else 0.0

    def lap(self, name: str) -> None:
        if self.phases is not None:
            now = time.perf_counter()
            self.phases[name] += now - self.last
            self.last = now


class Variant(ABC):
    name: str = ""
    description: str = ""
    always_float64 = False  # computes in float64 whatever the configured dtype (the article's original)

    def __init__(self, config: MLPConfig, weights: Weights):
        self.config = config
        self.dtype = np.dtype(np.float64 if self.always_float64 else config.dtype)
        self.set_weights(weights)

    def threads(self, batch_size: int, available: int) -> Threads:
        """How to use ``available`` cores at this batch size; default: one thread, BLAS on all of them."""
        return Threads(rows=1, blas=available)

    @contextmanager
    def running(self, row_threads: int):
        """The span of one ``fit``: variants that train with several row threads start them here."""
        yield

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
    def train_batch(self, idx: np.ndarray, lr: float, phases: dict[str, float] | None = None) -> tuple[float, int]:
        """One mini-batch of the samples ``idx`` (batch,) at learning rate ``lr``: returns (loss
        including regularization, correctly classified samples); with a ``phases`` dict, adds each
        phase's wall time to it."""
