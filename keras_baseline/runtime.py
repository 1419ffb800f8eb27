"""Starting TensorFlow for the study: CPU only, a fixed number of threads, quiet logs.

TensorFlow reads its GPU visibility and thread pools once, when its runtime context is created (at
the first op), so everything here must happen before that. Nothing in ``keras_baseline`` imports
TensorFlow at module level: the harness can ``import keras_baseline``, set environment variables
(e.g. ``TF_ENABLE_ONEDNN_OPTS``) and then call ``configure_tensorflow(threads)``.
"""
from __future__ import annotations

import numbers
import os
import sys


def _check_threads(threads) -> int:
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads <= 0:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    return int(threads)


def _cpu_only_environment() -> None:
    """Environment read by TensorFlow at import: hide CUDA devices, keep C++ logs to errors."""
    if "tensorflow" not in sys.modules:
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def import_tensorflow():
    """Import TensorFlow (once) with GPUs hidden; returns the module."""
    _cpu_only_environment()
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # the runtime is already initialized: only check below
        pass
    if tf.config.get_visible_devices("GPU"):
        raise RuntimeError(
            "a GPU is visible to TensorFlow; import keras_baseline and call configure_tensorflow() "
            "before anything else starts TensorFlow"
        )
    return tf


def import_keras():
    """(tensorflow, keras), imported in that order with GPUs hidden."""
    tf = import_tensorflow()
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"keras_baseline needs the TensorFlow backend of Keras, got {keras.backend.backend()!r}")
    return tf, keras


def configure_tensorflow(threads: int) -> dict:
    """Make TensorFlow use the CPU only, with ``threads`` intra-op and inter-op threads.

    Must run before TensorFlow executes its first op (thread pools cannot change later: a different
    count then raises RuntimeError; the same count is accepted). Returns what is in effect, read back
    from TensorFlow: see ``tensorflow_runtime_info``.
    """
    threads = _check_threads(threads)  # ValueError before TensorFlow is imported
    tf = import_tensorflow()
    threading = tf.config.threading
    try:
        threading.set_intra_op_parallelism_threads(threads)
        threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError as exc:
        raise RuntimeError(
            f"TensorFlow is already running with {threading.get_intra_op_parallelism_threads()} intra-op and "
            f"{threading.get_inter_op_parallelism_threads()} inter-op threads, cannot switch to {threads}; "
            "call configure_tensorflow() first, in a fresh process"
        ) from exc
    return tensorflow_runtime_info()


def tensorflow_runtime_info() -> dict:
    """Thread counts, visible devices, oneDNN and versions, as TensorFlow reports them."""
    tf, keras = import_keras()
    try:  # what TensorFlow decided from TF_ENABLE_ONEDNN_OPTS (TF 2.21's default here: off)
        from tensorflow.python.util import _pywrap_util_port

        onednn_enabled = bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):  # private API: may move in other versions
        onednn_enabled = None
    return {
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "visible_gpus": [d.name for d in tf.config.get_visible_devices("GPU")],
        "visible_devices": [d.name for d in tf.config.get_visible_devices()],
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "onednn_env": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),  # as set; None = TensorFlow's default
        "onednn_enabled": onednn_enabled,  # in effect, as TensorFlow reports it
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
    }
