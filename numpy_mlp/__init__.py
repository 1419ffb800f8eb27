"""The article's MNIST multilayer perceptron in plain NumPy, in every rung of its optimization ladder.

>>> from numpy_mlp import MLP, MLPConfig
>>> model = MLP(MLPConfig(), variant="optimized", seed=0)
>>> records = model.fit(x_train, y_train, epochs=35, batch_size=500, validation_data=(x_test, y_test))
"""
from .config import MLPConfig, lr_schedule
from .model import MLP, EpochRecord, TrainingDiverged, init_weights, shuffle_rng
from .scaling import InputScaler
from .variants import PHASES, VARIANTS

__all__ = ["MLP", "MLPConfig", "EpochRecord", "InputScaler", "PHASES", "TrainingDiverged", "VARIANTS", "init_weights",
           "lr_schedule", "shuffle_rng"]
