"""The argument checks and one-hot targets of the peer models (KerasMLP, TorchMLP), written once:
every framework refuses the same bad input with the same message."""
from __future__ import annotations

import numbers

import numpy as np


def check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


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
        epochs = check_positive_int("epochs", epochs)
        batch_size = check_positive_int("batch_size", batch_size)
        if batch_size > len(x):
            raise ValueError(f"batch_size must be between 1 and the number of samples ({len(x)}), got {batch_size}")
        if batch_order_rng is not None and not isinstance(batch_order_rng, np.random.Generator):
            raise ValueError(f"batch_order_rng must be a numpy.random.Generator, got {type(batch_order_rng).__name__}")
        return x, labels, epochs, batch_size, validation_data

    def _check_weights(self, weights) -> list[tuple[np.ndarray, np.ndarray]]:
        """[(kernel (in, out), bias (out,)), ...] of the config's layer sizes, finite, in the model's dtype."""
        sizes = self.config.layer_sizes
        if len(weights) != len(sizes) - 1:
            raise ValueError(f"expected {len(sizes) - 1} (kernel, bias) pairs, got {len(weights)}")
        checked = []
        for n, (kernel, bias) in enumerate(weights):
            if np.shape(kernel) != (sizes[n], sizes[n + 1]) or np.shape(bias) != (sizes[n + 1],):
                raise ValueError(
                    f"layer {n}: expected kernel {(sizes[n], sizes[n + 1])} and bias {(sizes[n + 1],)}, "
                    f"got {np.shape(kernel)} and {np.shape(bias)}"
                )
            kernel, bias = np.asarray(kernel, dtype=self.dtype), np.asarray(bias, dtype=self.dtype)
            if not (np.isfinite(kernel).all() and np.isfinite(bias).all()):
                raise ValueError(f"layer {n}: weights contain NaN or infinite values")
            checked.append((kernel, bias))
        return checked

    def _one_hot(self, labels: np.ndarray) -> np.ndarray:
        y = np.zeros((len(labels), self.config.layer_sizes[-1]), dtype=self.dtype)
        y[np.arange(len(labels)), labels] = 1
        return y

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
        labels = np.asarray(labels)
        if labels.shape != (len(x),):
            raise ValueError(f"labels for {name} must have shape ({len(x)},), got {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
        n_out = self.config.layer_sizes[-1]
        if labels.min() < 0 or labels.max() >= n_out:
            raise ValueError(f"labels must be in 0..{n_out - 1}, got values from {labels.min()} to {labels.max()}")
        return x, labels.astype(np.int64)
