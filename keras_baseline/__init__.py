"""The study's MLP in Keras 3 / TensorFlow 2 on the CPU, mathematically identical to numpy_mlp.

TensorFlow is imported only when a model is made or ``configure_tensorflow`` is called, so that the
harness can set up the environment first:

>>> import keras_baseline
>>> keras_baseline.configure_tensorflow(threads=2)   # CPU only, before TensorFlow starts
>>> model = keras_baseline.KerasMLP(MLPConfig(), variant="fit-tuned", seed=0)
>>> model.set_weights(numpy_mlp.init_weights(config, seed))
>>> records = model.fit(x_scaled, y_train, epochs=35, batch_size=500, validation_data=(x_test_scaled, y_test))
"""
from .model import VARIANTS, KerasMLP, RunSettings, check_variant, settings_for
from .runtime import configure_tensorflow, tensorflow_runtime_info

__all__ = [
    "KerasMLP",
    "RunSettings",
    "VARIANTS",
    "check_variant",
    "configure_tensorflow",
    "settings_for",
    "tensorflow_runtime_info",
]
