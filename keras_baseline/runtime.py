"""Starting Keras for the study on one of its backends (TensorFlow, JAX, PyTorch): CPU only, a fixed
number of threads, quiet logs.

Keras picks its backend once, at import (``KERAS_BACKEND``); TensorFlow reads its GPU visibility and
thread pools when its runtime starts (at the first op), JAX its platforms and XLA's flags when its
CPU client starts (at the first array), PyTorch its inter-op pool at its first parallel work. So
everything here must happen before that, which is why nothing in ``keras_baseline`` imports Keras,
TensorFlow, JAX or PyTorch at module level: the harness can ``import keras_baseline``, set environment
variables and then call ``configure_backend``.

XLA has no thread-count option for its CPU client: its thread pools take one thread per core the
process may run on (its CPU affinity). ``configure_jax(threads)`` therefore needs the process held to
that many cores beforehand (the harness's worker does it for every framework, before NumPy starts).
"""
from __future__ import annotations

import importlib.util
import os
import sys
import time

from numpy_mlp.checks import positive_int
from numpy_mlp.config import CHOICES

BACKENDS = ("tensorflow", "jax", "torch")
SINGLE_THREAD_XLA_FLAG = "--xla_cpu_multi_thread_eigen=false"  # XLA's own knob: one thread per product
XLA_POOL_THREAD_NAME = "tf_XLAEigen"  # the threads of XLA's intra-op pool, as the OS names them


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended: what an epoch's ``cpu_s`` counts.
    The children matter where a framework compiles with a compiler of its own (torch.compile's
    Inductor runs g++); elsewhere this is ``time.process_time()``."""
    ended = os.times()
    return time.process_time() + ended.children_user + ended.children_system


def cpu_affinity() -> int | None:
    """Cores this process may run on (None where the OS does not say)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return None


def all_cores() -> int:
    """Cores this process may run on (respects CPU affinity, e.g. in containers); off Linux, the machine's."""
    return cpu_affinity() or os.cpu_count() or 1


def select_backend(backend: str) -> None:
    """Make ``backend`` Keras' backend in this process, with GPUs hidden; before Keras is imported
    (after that only the backend it already runs on is accepted)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown Keras backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if "keras" in sys.modules:
        running = sys.modules["keras"].backend.backend()
        if running != backend:
            raise RuntimeError(f"Keras already runs on its {running} backend, cannot switch to {backend} in this "
                               "process")
    os.environ["KERAS_BACKEND"] = backend
    if "tensorflow" not in sys.modules and "jax" not in sys.modules:
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def import_tensorflow():
    """Import TensorFlow (once, after ``select_backend``) with GPUs hidden; returns the module."""
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # the runtime is already initialized: only check below
        pass
    if tf.config.get_visible_devices("GPU"):
        raise RuntimeError("a GPU is visible to TensorFlow; import keras_baseline and call configure_tensorflow() "
                           "before anything else starts TensorFlow")
    return tf


def import_jax():
    """Import JAX (once) on the CPU platform only; returns the module."""
    if "jax" not in sys.modules:
        os.environ["JAX_PLATFORMS"] = "cpu"
    import jax

    platforms = {device.platform for device in jax.devices()}
    if platforms != {"cpu"}:
        raise RuntimeError(f"JAX runs on {', '.join(sorted(platforms))}; import keras_baseline and call "
                           "configure_jax() before anything else starts JAX")
    return jax


def import_keras():
    """(backend module, keras): Keras imported on its backend (TensorFlow unless KERAS_BACKEND or
    ``select_backend`` says otherwise, or Keras already runs on another), the backend first, with GPUs hidden."""
    keras = sys.modules.get("keras")
    backend = keras.backend.backend() if keras else os.environ.get("KERAS_BACKEND") or "tensorflow"
    select_backend(backend)
    engine = {"tensorflow": import_tensorflow, "jax": import_jax, "torch": import_torch}[backend]()
    import keras

    if keras.backend.backend() != backend:
        raise RuntimeError(f"keras_baseline expected Keras' {backend} backend, got {keras.backend.backend()!r}")
    return engine, keras


def configure_backend(backend: str, threads: int, dtype: str = "float32") -> dict:
    """Start Keras on ``backend`` ('tensorflow', 'jax' or 'torch'), CPU only, held to ``threads`` threads, for
    models of ``dtype``; returns what is in effect, read back (see the two functions below)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown Keras backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "jax":
        return configure_jax(threads, dtype)
    if backend == "torch":
        select_backend("torch")
        return configure_torch(threads)
    return configure_tensorflow(threads)


def configure_tensorflow(threads: int) -> dict:
    """Make TensorFlow use the CPU only, with ``threads`` intra-op and inter-op threads, before it executes its
    first op (a different count later raises RuntimeError); returns what is in effect (``tensorflow_runtime_info``)."""
    threads = positive_int("threads", threads)  # ValueError before TensorFlow is imported
    select_backend("tensorflow")
    tf = import_tensorflow()
    threading = tf.config.threading
    try:
        threading.set_intra_op_parallelism_threads(threads)
        threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError as exc:
        raise RuntimeError(f"TensorFlow is already running with {threading.get_intra_op_parallelism_threads()} "
                           f"intra-op and {threading.get_inter_op_parallelism_threads()} inter-op threads, cannot "
                           f"switch to {threads}; call configure_tensorflow() first, in a fresh process") from exc
    return tensorflow_runtime_info()


def tensorflow_runtime_info() -> dict:
    """Thread counts, visible devices, oneDNN and versions, as TensorFlow reports them."""
    tf, keras = import_keras()
    try:  # what TensorFlow decided from TF_ENABLE_ONEDNN_OPTS (its default depends on the build)
        from tensorflow.python.util import _pywrap_util_port

        onednn_enabled = bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):  # private API: may move in other versions
        onednn_enabled = None
    return {
        "backend": keras.backend.backend(),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "cpu_affinity": cpu_affinity(),
        "visible_gpus": [d.name for d in tf.config.get_visible_devices("GPU")],
        "visible_devices": [d.name for d in tf.config.get_visible_devices()],
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "onednn_env": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),  # as set; None = TensorFlow's default
        "onednn_enabled": onednn_enabled,  # in effect, as TensorFlow reports it
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
    }


def _jax_started() -> bool:
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge

        return xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):  # private API: assume the worst
        return True


def configure_jax(threads: int, dtype: str = "float32") -> dict:
    """Make JAX (and Keras on it) use the CPU only, with XLA held to ``threads`` cores, before JAX starts its CPU
    client; returns what is in effect (``jax_runtime_info``). The process must already be held to at most ``threads``
    cores (see the module docstring); with one thread XLA's products run single-threaded too (its only thread
    flag). 64-bit arrays are on for float64 models only; the persistent compilation cache is off (every run
    compiles its own functions)."""
    threads = positive_int("threads", threads)
    if dtype not in CHOICES["dtype"]:
        raise ValueError(f"dtype must be one of {', '.join(CHOICES['dtype'])}, got {dtype!r}")
    cores = cpu_affinity()
    if cores is not None and cores > threads:
        raise RuntimeError(f"XLA would use all {cores} cores this process may run on; hold it to {threads} first "
                           "(os.sched_setaffinity, as harness.worker.pin_cores does)")
    flags = os.environ.get("XLA_FLAGS", "").split()
    single = SINGLE_THREAD_XLA_FLAG in flags
    if _jax_started():
        if single != (threads == 1):
            raise RuntimeError(f"JAX has already started {'with' if single else 'without'} {SINGLE_THREAD_XLA_FLAG}, "
                               f"cannot switch to {threads} thread(s); call configure_jax() first, in a fresh process")
    elif threads == 1 and not single:
        os.environ["XLA_FLAGS"] = " ".join([*flags, SINGLE_THREAD_XLA_FLAG])
    elif threads > 1 and single:
        os.environ["XLA_FLAGS"] = " ".join(f for f in flags if f != SINGLE_THREAD_XLA_FLAG)
    select_backend("jax")
    import jax

    jax.config.update("jax_enable_x64", dtype == "float64")
    jax.config.update("jax_enable_compilation_cache", False)
    import_jax()
    return jax_runtime_info()


def xla_threads() -> int | None:
    """Threads of XLA's intra-op pool in this process (started at its first computation); None where the OS does
    not list threads by name."""
    tasks = f"/proc/{os.getpid()}/task"
    if not os.path.isdir(tasks):
        return None
    count = 0
    for task in os.listdir(tasks):
        try:
            with open(f"{tasks}/{task}/comm") as f:
                count += f.read().strip() == XLA_POOL_THREAD_NAME
        except OSError:  # the thread ended meanwhile
            pass
    return count


def jax_runtime_info() -> dict:
    """Devices, 64-bit mode, XLA's flags and threads, the compilation cache and versions, as JAX reports them."""
    jax, keras = import_keras()
    import jaxlib

    return {
        "backend": keras.backend.backend(),
        "devices": [str(d) for d in jax.devices()],
        "platforms": sorted({d.platform for d in jax.devices()}),
        "cpu_affinity": cpu_affinity(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "xla_threads": xla_threads(),
        "x64": bool(jax.config.jax_enable_x64),
        "compilation_cache": bool(jax.config.jax_enable_compilation_cache),
        "compilation_cache_dir": jax.config.jax_compilation_cache_dir,
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.__version__,
        "keras_version": keras.__version__,
    }


# -- PyTorch ----------------------------------------------------------------------------------------

TORCH_INSTALL_HINT = "pip install -r requirements-torch.txt"


def torch_available() -> bool:
    """Whether PyTorch can be imported here (it is optional: requirements-torch.txt), without importing it."""
    return importlib.util.find_spec("torch") is not None


def import_torch():
    """Import PyTorch (once) with GPUs hidden and Inductor's caches and compile workers off (every run
    compiles its own code, in its own process and CPU time); returns the module."""
    if "torch" not in sys.modules:
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
        os.environ.setdefault("KERAS_TORCH_DEVICE", "cpu")
        os.environ["TORCHINDUCTOR_FORCE_DISABLE_CACHES"] = "1"
        os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = "1"
    import torch

    if torch.cuda.is_available():
        raise RuntimeError("a GPU is visible to PyTorch; import keras_baseline and call configure_torch() first")
    return torch


def keep_float64_on_torch() -> None:
    """Let Keras compute a float64 model in float64 on PyTorch: Keras 3.15's type promotion maps float64 to
    float32 on every backend but TensorFlow, and its PyTorch ``ops.matmul`` casts its inputs to the promoted
    type (a float64 Dense layer would multiply in float32). Keras' private table, in this process only; the
    float64 tests fail if it moves."""
    from keras.src.backend.common import dtypes

    dtypes.BIT64_TO_BIT32_DTYPE["float64"] = "float64"


def configure_torch(threads: int) -> dict:
    """Hold PyTorch to ``threads`` intra-op and inter-op threads, before its first parallel work (a different
    inter-op count later raises RuntimeError); returns what is in effect (``torch_runtime_info``)."""
    threads = positive_int("threads", threads)
    torch = import_torch()
    if torch.get_num_interop_threads() != threads:
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError as exc:
            raise RuntimeError(f"PyTorch is already running with {torch.get_num_interop_threads()} inter-op threads, "
                               f"cannot switch to {threads}; call configure_torch() first, in a fresh process") from exc
    torch.set_num_threads(threads)
    return torch_runtime_info()


def torch_runtime_info() -> dict:
    """Thread counts, devices, Inductor's cache setting and versions, as PyTorch (and Keras if imported) says."""
    torch = import_torch()
    keras = sys.modules.get("keras")
    return {
        "backend": keras.backend.backend() if keras else "torch",
        "intra_op_threads": torch.get_num_threads(),
        "inter_op_threads": torch.get_num_interop_threads(),
        "cpu_affinity": cpu_affinity(),
        "cuda_available": torch.cuda.is_available(),
        "inductor_caches_disabled": os.environ.get("TORCHINDUCTOR_FORCE_DISABLE_CACHES") == "1",
        "torch_version": torch.__version__,
        "keras_version": keras.__version__ if keras else None,
    }
