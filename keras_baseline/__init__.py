"""The study's MLP in Keras 3 on the CPU, on its TensorFlow, JAX or PyTorch backend, and in plain
PyTorch (TorchMLP: the torch framework's loops), mathematically identical to numpy_mlp.

Keras and its backend are imported only when a model is made or a backend is configured, so that
the harness can set up the environment first (one backend per process: Keras picks it at import):

>>> import keras_baseline
>>> keras_baseline.configure_backend("jax", threads=2)   # CPU only, before Keras starts
>>> model = keras_baseline.KerasMLP(MLPConfig(), variant="fit-tuned", seed=0)
>>> model.set_weights(numpy_mlp.init_weights(config, seed))
>>> records = model.fit(x_scaled, y_train, epochs=35, batch_size=500, validation_data=(x_test_scaled, y_test))
"""
from .model import BACKEND_VARIANTS, TORCH_VARIANTS, VARIANTS, KerasMLP, RunSettings, settings_for
from .runtime import (
    TORCH_INSTALL_HINT, configure_backend, configure_jax, configure_tensorflow, jax_runtime_info,
    tensorflow_runtime_info, torch_available,
)
from .torch_loop import LOOP_VARIANTS, TorchMLP


def make_model(backend: str, config, variant: str, seed: int):
    """The peer model of a variant on a backend: PyTorch's own loops are TorchMLP's, the rest KerasMLP's."""
    if backend == "torch" and variant in LOOP_VARIANTS:
        return TorchMLP(config, variant, seed=seed)
    return KerasMLP(config, variant, seed=seed)


__all__ = [
    "BACKEND_VARIANTS", "TORCH_INSTALL_HINT", "TORCH_VARIANTS", "VARIANTS", "KerasMLP", "RunSettings", "TorchMLP",
    "configure_backend", "configure_jax", "configure_tensorflow", "jax_runtime_info", "make_model", "settings_for",
    "tensorflow_runtime_info", "torch_available",
]
