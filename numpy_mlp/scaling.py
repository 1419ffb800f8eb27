"""Input scaling as (x - shift) * scale per feature, fitted on the training set.

The model can take raw (uint8) pixels and a scaler: the article's variants scale the whole training
set once, ``optimized`` scales each gathered chunk of rows (gathering uint8 moves a quarter of the
bytes). Both use the same float operations, so their inputs are bit-identical, and the peers are given
``scaler.transform(x)``, the very same numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import CHOICES


@dataclass(frozen=True)
class InputScaler:
    shift: np.ndarray  # (features,)
    scale: np.ndarray  # (features,)

    @classmethod
    def fit(cls, x_train: np.ndarray, method: str = "standardize", dtype="float32") -> "InputScaler":
        """'standardize': zero mean, unit variance per feature (constant features become 0);
        'unit': x / 255. Statistics are computed in float64, then stored in ``dtype``."""
        n_features = x_train.shape[1]
        if method == "standardize":
            shift = x_train.mean(axis=0, dtype=np.float64)
            # blocks of rows keep the float64 temporaries small (the whole set would be 376 MB)
            squares = sum(
                np.square(x_train[i : i + 8192] - shift).sum(axis=0) for i in range(0, len(x_train), 8192)
            )
            std = np.sqrt(squares / len(x_train))
            scale = np.divide(1.0, std, out=np.ones_like(std), where=std > 0)
        elif method == "unit":
            shift, scale = np.zeros(n_features), np.full(n_features, 1.0 / 255.0)
        else:
            raise ValueError(f"unknown input scaling {method!r}; choose one of {', '.join(CHOICES['input_scaling'])}")
        return cls(shift.astype(dtype), scale.astype(dtype))

    @property
    def dtype(self) -> np.dtype:
        return self.shift.dtype

    def transform(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(n, features) -> (n, features) in the scaler's dtype."""
        out = np.subtract(x, self.shift, out=out, dtype=self.dtype)
        out *= self.scale
        return out

    def astype(self, dtype) -> "InputScaler":
        return InputScaler(self.shift.astype(dtype), self.scale.astype(dtype))
