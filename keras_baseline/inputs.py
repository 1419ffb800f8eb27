"""The input checks of the peer models (KerasMLP, TorchMLP), with numpy_mlp.checks' shared parts: every
framework refuses the same bad input with the same message."""
from __future__ import annotations

import numpy as np

from numpy_mlp.checks import batch_size_for, checked_labels, checked_weights, one_hot, positive_int


class ModelInputs:
    """Checks of a model's data and training arguments; the model has ``config`` (an MLPConfig) and
    ``dtype`` (its NumPy dtype)."""

    def _check_fit(self, x, labels, epochs, batch_size, validation_data, batch_order_rng):
        """fit()'s arguments checked: (x, labels, epochs, batch_size, validation_data)."""
        x, labels = self._check_data(x, labels, "x")
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (x_test, labels_test)")
            validation_data = self._check_data(*validation_data, "x_test")
        epochs = positive_int("epochs", epochs)
        batch_size = batch_size_for(batch_size, len(x))
        if batch_order_rng is not None and not isinstance(batch_order_rng, np.random.Generator):
            raise ValueError(f"batch_order_rng must be a numpy.random.Generator, got {type(batch_order_rng).__name__}")
        return x, labels, epochs, batch_size, validation_data

    def _check_weights(self, weights) -> list[tuple[np.ndarray, np.ndarray]]:
        """[(kernel (in, out), bias (out,)), ...] of the config's layer sizes, finite, in the model's dtype."""
        return checked_weights(weights, self.config.layer_sizes, self.dtype)

    def _one_hot(self, labels: np.ndarray) -> np.ndarray:
        return one_hot(labels, self.config.layer_sizes[-1], self.dtype)

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

    def _check_data(self, x, labels, name) -> tuple[np.ndarray, np.ndarray]:
        x = self._check_x(x, name)
        return x, checked_labels(labels, len(x), self.config.layer_sizes[-1], name)
