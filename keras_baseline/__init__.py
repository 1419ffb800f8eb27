"""The study's MLP in Keras 3 on the CPU, on its TensorFlow or JAX backend, mathematically identical
to numpy_mlp.

Keras and its backend are imported only when a model is made or a backend is configured, so that
the harness can set up the environment first (one backend per process: Keras picks it at import):

>>> import keras_baseline
>>> keras_baseline.configure_backend("jax", threads=2)   # CPU only, before Keras starts
>>> model = keras_baseline.KerasMLP(MLPConfig(), variant="fit-tuned", seed=0)
>>> model.set_weights(numpy_mlp.init_weights(config, seed))
>>> records = model.fit(x_scaled, y_train, epochs=35, batch_size=500, validation_data=(x_test_scaled, y_test))
"""
from .model import JAX_VARIANTS, VARIANTS, KerasMLP, RunSettings, check_variant, settings_for
from .runtime import (
    configure_backend, configure_jax, configure_tensorflow, jax_runtime_info, tensorflow_runtime_info, xla_threads,
)

__all__ = [
    "JAX_VARIANTS",
    "KerasMLP",
    "RunSettings",
    "VARIANTS",
    "check_variant",
    "configure_backend",
    "configure_jax",
    "configure_tensorflow",
    "jax_runtime_info",
    "settings_for",
    "tensorflow_runtime_info",
    "xla_threads",
]
