"""What the peer models (KerasMLP, TorchMLP) share: their checks (numpy_mlp's, with inputs already scaled), the
article's rates across fit() calls, an epoch's end, and how the compiled loops cut an epoch into calls."""
from __future__ import annotations

import numbers

import numpy as np

from numpy_mlp.checks import ModelInputs
from numpy_mlp.config import MLPConfig, lr_schedule
from numpy_mlp.model import EpochRecord, batch_slices, finish_epoch, shuffle_rng


class PeerModel(ModelInputs):
    """A model of ``config`` whose initial weights and batch order come from ``seed`` as numpy_mlp.MLP's do
    (``numpy_mlp.init_weights``, ``numpy_mlp.shuffle_rng``); ``what`` names it in a divergence's message."""

    what = ""

    def __init__(self, config: MLPConfig | None, seed: int):
        config = MLPConfig() if config is None else config
        if not isinstance(config, MLPConfig):
            raise ValueError(f"config must be a numpy_mlp.MLPConfig, got {type(config).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.config, self.seed, self.dtype = config, int(seed), np.dtype(config.dtype)
        self.epochs_done = 0
        self._initial_lr = None
        self._loop_rng = shuffle_rng(self.seed)

    def _rates(self, epochs: int, batch_size: int) -> list[float]:
        """The rates of the next ``epochs`` epochs: numpy_mlp's, bit for bit (a later fit() continues the decay)."""
        if self.epochs_done == 0:
            self._initial_lr = self.config.lr_for(batch_size)
        return lr_schedule(self._initial_lr, self.config.lr_decay, self.epochs_done + epochs)[self.epochs_done :]

    def _finish_epoch(self, record: EpochRecord, validation_data, callback) -> EpochRecord:
        """After the epoch's clock stopped: divergence check, evaluation (timed apart), callback."""
        self.epochs_done += 1
        return finish_epoch(record, self._evaluate, validation_data, callback, f"{self.what} variant {self.variant}")

    def _check_x(self, x, name) -> np.ndarray:
        x = np.asarray(x)
        n_in = self.config.layer_sizes[0]
        if x.ndim != 2 or x.shape[1] != n_in:
            raise ValueError(f"{name} must have shape (n, {n_in}), got {x.shape}")
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"{name} must be the scaled float inputs, got dtype {x.dtype}")
        if len(x) == 0:
            raise ValueError(f"{name} is empty")
        if not np.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        return np.ascontiguousarray(x, dtype=self.dtype)


def calls_of_epoch(order: np.ndarray, batch_size: int, per_call: int):
    """An epoch's batches in the order ``order`` as a compiled loop takes them: with ``per_call`` 1, one index
    array (batch,) per call; else (calls, batch) arrays of up to ``per_call`` equal batches, and a smaller last
    batch alone (batch,)."""
    if per_call == 1:
        yield from batch_slices(order, batch_size)
        return
    n_full = len(order) // batch_size
    full = order[: n_full * batch_size].reshape(n_full, batch_size)
    for start in range(0, n_full, per_call):
        yield full[start : start + per_call]
    if n_full * batch_size < len(order):
        yield order[n_full * batch_size :]
