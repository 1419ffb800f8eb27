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


def batch_size_for(batch_size, n_samples: int) -> int:
    """``batch_size`` as an int; ValueError unless it lies in 1..n_samples."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or not 0 < batch_size <= n_samples:
        raise ValueError(f"batch_size must be between 1 and the number of samples ({n_samples}), got {batch_size!r}")
    return int(batch_size)


def checked_labels(labels, n_samples: int, n_classes: int, name: str) -> np.ndarray:
    """Class labels (n_samples,) of the inputs ``name``, as int64; ValueError for another shape, a non-integer
    dtype or a class out of 0..n_classes-1."""
    labels = np.asarray(labels)
    if labels.shape != (n_samples,):
        raise ValueError(f"labels for {name} must have shape ({n_samples},), got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must be in 0..{n_classes - 1}, got values from {labels.min()} to {labels.max()}")
    return labels.astype(np.int64)


def one_hot(labels: np.ndarray, n_classes: int, dtype) -> np.ndarray:
    """Targets (n, n_classes) in ``dtype``: 1 at each sample's class, 0 elsewhere."""
    targets = np.zeros((len(labels), n_classes), dtype=dtype)
    targets[np.arange(len(labels)), labels] = 1
    return targets


def checked_weights(weights, layer_sizes, dtype) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(kernel (in, out), bias (out,)), ...] for ``layer_sizes``, finite, as arrays of ``dtype``."""
    if len(weights) != len(layer_sizes) - 1:
        raise ValueError(f"expected {len(layer_sizes) - 1} (kernel, bias) pairs, got {len(weights)}")
    checked = []
    for n, (kernel, bias) in enumerate(weights):
        n_in, n_out = layer_sizes[n], layer_sizes[n + 1]
        if np.shape(kernel) != (n_in, n_out) or np.shape(bias) != (n_out,):
            raise ValueError(f"layer {n}: expected kernel {(n_in, n_out)} and bias {(n_out,)}, "
                             f"got {np.shape(kernel)} and {np.shape(bias)}")
        kernel, bias = np.asarray(kernel, dtype=dtype), np.asarray(bias, dtype=dtype)
        if not (np.isfinite(kernel).all() and np.isfinite(bias).all()):
            raise ValueError(f"layer {n}: weights contain NaN or infinite values")
        checked.append((kernel, bias))
    return checked
