"""The argument checks and one-hot targets of every model of the study (numpy_mlp.MLP here; KerasMLP and
TorchMLP in keras_baseline), written once: every framework refuses the same bad input with the same message."""
from __future__ import annotations

import numbers

import numpy as np


def positive_int(name: str, value) -> int:
    """``value`` as an int; ValueError unless it is a whole number above 0 (True and False are not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class ModelInputs:
    """The checks of a model with ``config`` (an MLPConfig) and ``dtype`` (its NumPy dtype); the model's own
    ``_check_x(x, name)`` says which inputs it takes."""

    def _check_fit(self, x, labels, epochs, batch_size, validation_data, batch_order_rng=None):
        """fit()'s arguments checked: (x, labels, epochs, batch_size, validation_data)."""
        x, labels = self._check_data(x, labels, "x")
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (x_test, labels_test)")
            validation_data = self._check_data(*validation_data, "x_test")
        epochs = positive_int("epochs", epochs)
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or not 0 < batch_size <= len(x):
            raise ValueError(f"batch_size must be between 1 and the number of samples ({len(x)}), got {batch_size!r}")
        if batch_order_rng is not None and not isinstance(batch_order_rng, np.random.Generator):
            raise ValueError(f"batch_order_rng must be a numpy.random.Generator, got {type(batch_order_rng).__name__}")
        return x, labels, epochs, int(batch_size), validation_data

    def _check_data(self, x, labels, name) -> tuple[np.ndarray, np.ndarray]:
        """(x, labels (n,) as int64); ValueError for labels of another shape, a non-integer dtype or a class
        out of 0..n_classes-1."""
        x = self._check_x(x, name)
        labels, n_classes = np.asarray(labels), self.config.layer_sizes[-1]
        if labels.shape != (len(x),):
            raise ValueError(f"labels for {name} must have shape ({len(x)},), got {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
        if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValueError(f"labels must be in 0..{n_classes - 1}, got values from {labels.min()} to {labels.max()}")
        return x, labels.astype(np.int64)

    def _check_weights(self, weights) -> list[tuple[np.ndarray, np.ndarray]]:
        """[(kernel (in, out), bias (out,)), ...] of the config's layer sizes, finite, in the model's dtype."""
        sizes = self.config.layer_sizes
        if len(weights) != len(sizes) - 1:
            raise ValueError(f"expected {len(sizes) - 1} (kernel, bias) pairs, got {len(weights)}")
        checked = []
        for n, (kernel, bias) in enumerate(weights):
            n_in, n_out = sizes[n], sizes[n + 1]
            if np.shape(kernel) != (n_in, n_out) or np.shape(bias) != (n_out,):
                raise ValueError(f"layer {n}: expected kernel {(n_in, n_out)} and bias {(n_out,)}, "
                                 f"got {np.shape(kernel)} and {np.shape(bias)}")
            kernel, bias = np.asarray(kernel, dtype=self.dtype), np.asarray(bias, dtype=self.dtype)
            if not (np.isfinite(kernel).all() and np.isfinite(bias).all()):
                raise ValueError(f"layer {n}: weights contain NaN or infinite values")
            checked.append((kernel, bias))
        return checked

    def _one_hot(self, labels: np.ndarray) -> np.ndarray:
        """Targets (n, outputs) in the model's dtype: 1 at each sample's class, 0 elsewhere."""
        targets = np.zeros((len(labels), self.config.layer_sizes[-1]), dtype=self.dtype)
        targets[np.arange(len(labels)), labels] = 1
        return targets
