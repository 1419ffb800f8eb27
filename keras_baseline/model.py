"""KerasMLP: the study's network in Keras 3, on its TensorFlow, JAX or PyTorch backend, trained like numpy_mlp.MLP.

Keras (and its backend) is imported lazily, on the first KerasMLP: ``import keras_baseline`` stays
cheap and the harness can call ``keras_baseline.configure_backend(backend, threads)`` first. One model,
loss, optimizer and set of metrics serve every backend, and so does ``fit``; what differs (compiled
inference, the custom loop) is in ``tensorflow_functions``, ``jax_functions`` and ``torch_functions``.
"""
from __future__ import annotations

import contextlib
import importlib
import math
import numbers
import random
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from numpy_mlp.config import MLPConfig
from numpy_mlp.model import EpochRecord, init_weights
from numpy_mlp.variants import Weights

from .peer import PeerModel

VARIANTS: dict[str, str] = {
    "fit": "what a Keras user writes, on TensorFlow: compile() and fit(shuffle=True) with Keras' defaults",
    "fit-tuned": "compile() and fit(shuffle=True) on TensorFlow, fastest settings measured: an epoch per call, "
                 "XLA from batch 20000",
    "loop": "custom TensorFlow loop: GradientTape in one tf.function running an epoch's batches, XLA from batch 20000",
}
# the same variants on Keras' JAX backend (every function there is XLA-compiled by jax.jit)
JAX_VARIANTS: dict[str, str] = {
    "fit": "what a Keras user writes, on JAX: compile() and fit(shuffle=True) with Keras' defaults "
           "(one jitted call per batch)",
    "fit-tuned": "compile() and fit(shuffle=True) on JAX, fastest settings measured: an epoch per call, jitted",
    "loop": "custom JAX loop: stateless_call, jax.value_and_grad and the update in one jax.jit per epoch, "
            "lax.scan over its batches",
}
# the torch framework: Keras on its PyTorch backend (fit variants) and PyTorch's own loop (keras_baseline.torch_loop)
TORCH_VARIANTS: dict[str, str] = {
    "fit": "what a Keras user writes, on PyTorch: compile() and fit(shuffle=True) with Keras' defaults (eager)",
    "fit-tuned": "compile() and fit(shuffle=True) on PyTorch, fastest setting measured: torch.compile'd train step "
                 "below batch 128, eager from there",
    "loop": "plain PyTorch loop: nn.Linear layers, autograd, the article's update under torch.no_grad(), eager",
    "loop-compiled": "the plain PyTorch loop with its training step compiled by torch.compile (Inductor)",
}
BACKEND_VARIANTS = {"tensorflow": VARIANTS, "jax": JAX_VARIANTS, "torch": TORCH_VARIANTS}
KERAS_FIT_VARIANTS = ("fit", "fit-tuned")  # what Keras runs on PyTorch: the torch framework's loops are TorchMLP's


@dataclass(frozen=True)
class RunSettings:
    """How Keras executes the training (never what it computes).

    steps_per_execution : batches per call of the compiled train function (``fit``), or 'epoch' for
        all the batches of an epoch in one call.
    jit_compile : compilation of the train function; 'auto' is Keras' default (on a CPU: off with
        TensorFlow, jax.jit with JAX, eager on PyTorch; the JAX loop is always jitted).
    max_threads : at most this many intra-op threads (None: as many as the run may use). TensorFlow
        takes its thread counts once per process, so the harness applies this before it starts.
    """

    steps_per_execution: int | str = 1
    jit_compile: bool | str = "auto"
    max_threads: int | None = None

    def __post_init__(self):
        for name, other in (("steps_per_execution", "epoch"), ("max_threads", None)):
            value = getattr(self, name)
            if value != other and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0):
                raise ValueError(f"{name} must be a positive integer or {other!r}, got {value!r}")
        if self.jit_compile not in (True, False, "auto"):
            raise ValueError(f"jit_compile must be True, False or 'auto', got {self.jit_compile!r}")

    def steps_for(self, n_batches: int) -> int:
        return n_batches if self.steps_per_execution == "epoch" else min(int(self.steps_per_execution), n_batches)


XLA_FROM_BATCH = 20000  # TensorFlow: XLA pays from here on
SINGLE_THREAD_BELOW = 256  # TensorFlow's 'loop' runs on one thread below this batch size
TORCH_COMPILE_BELOW_BATCH = 128  # Keras' torch.compile'd train step pays below this batch size


def settings_for(variant: str, batch_size: int, backend: str = "tensorflow") -> RunSettings:
    """The execution settings a variant uses at a batch size on a Keras backend.

    'fit' is Keras' defaults everywhere; the others are the winners of the searches in docs/tuning.md and
    docs/pytorch.md. TensorFlow: all the batches of an epoch in one call, since Keras' per-call overhead
    dominates this small network; XLA from batch ``XLA_FROM_BATCH`` up, where fusing the element-wise work
    over the big (batch, 70) arrays beats its compilation; 'loop' on one thread below ``SINGLE_THREAD_BELOW``
    rows, as numpy_mlp's ``optimized`` does. JAX: an epoch per call, jitted (without it every op runs on its
    own). Keras on PyTorch takes one batch per call and runs eagerly by default: 'fit-tuned' compiles its
    train step (torch.compile) below ``TORCH_COMPILE_BELOW_BATCH``.
    """
    if backend not in BACKEND_VARIANTS:
        raise ValueError(f"unknown Keras backend {backend!r}; choose one of {', '.join(BACKEND_VARIANTS)}")
    if _check_variant(variant, BACKEND_VARIANTS[backend]) == "fit":
        return RunSettings()
    if backend == "jax":
        return RunSettings(steps_per_execution="epoch", jit_compile=True)
    if backend == "torch":  # PyTorch's own loops take no Keras settings
        return RunSettings(jit_compile=batch_size < TORCH_COMPILE_BELOW_BATCH if variant == "fit-tuned" else "auto")
    return RunSettings(steps_per_execution="epoch", jit_compile=batch_size >= XLA_FROM_BATCH,
                       max_threads=1 if variant == "loop" and batch_size < SINGLE_THREAD_BELOW else None)


def _check_variant(variant: str, variants) -> str:
    if variant not in variants:
        raise ValueError(f"unknown keras_baseline variant {variant!r}; choose one of {', '.join(variants)}")
    return variant


class KerasMLP(PeerModel):
    """The study's MLP in Keras, mathematically the same as ``numpy_mlp.MLP`` with the same config, on the
    backend Keras runs on in this process (``backend``, chosen with ``configure_backend`` before the first
    KerasMLP; TensorFlow by default). ``variant``: how Keras runs the training, see ``VARIANTS``; ``seed``:
    also seeds Keras' random state (fit's shuffling, ``_seed_random_state``); ``settings``: overrides the
    variant's execution settings (for the Keras settings search, docs/tuning.md).
    """

    what = "keras"

    def __init__(self, config: MLPConfig | None = None, variant: str = "fit-tuned", seed: int = 0, *,
                 settings: RunSettings | None = None):
        super().__init__(config, seed)
        self.variant = _check_variant(variant, VARIANTS)
        if settings is not None and not isinstance(settings, RunSettings):
            raise ValueError(f"settings must be a RunSettings, got {type(settings).__name__}")
        self._settings_override = settings
        self._compiled_with = None

        from .runtime import import_keras, keep_float64_on_torch

        engine, self._keras = import_keras()
        self.backend = self._keras.backend.backend()
        if self.backend == "jax" and self.dtype == np.float64 and not engine.config.jax_enable_x64:
            raise ValueError("a float64 model on JAX needs its 64-bit mode: call configure_jax(threads, 'float64') "
                             "first")
        if self.backend == "torch" and self.variant not in KERAS_FIT_VARIANTS:
            raise ValueError(f"on PyTorch, Keras runs the variants {', '.join(KERAS_FIT_VARIANTS)}; the loops are "
                             "keras_baseline.TorchMLP's")
        if self.backend == "torch" and self.dtype == np.float64:
            keep_float64_on_torch()
        from . import components

        self.components = components
        config = self.config
        with self._floatx():
            self._seed_random_state()
            self.model = components.build_model(config)
            self.loss_fn = components.SummedLoss(config.output_activation, config.loss, dtype=config.dtype)
            # the learning-rate variable takes Keras' floatx, i.e. the model's dtype here
            self.optimizer = components.ArticleSGD(learning_rate=1e-3, momentum=config.momentum)
            self.optimizer.build(self.model.trainable_variables)
            self.loss_mean = self._keras.metrics.Mean(name="loss", dtype=config.dtype)
            self.accuracy = components.OutputAccuracy(config.output_activation)
        # what differs per backend: tensorflow_functions, jax_functions or torch_functions
        self._functions = importlib.import_module(f".{self.backend}_functions", __package__).Functions(self)
        self.set_weights(init_weights(config, self.seed))

    # -- weights ------------------------------------------------------------------------------------

    def set_weights(self, weights: Weights) -> None:
        """Weights as [(kernel (in, out), bias (out,)), ...] (numpy_mlp's format); resets the momentum."""
        self.model.set_weights([array for pair in self._check_weights(weights) for array in pair])
        self.optimizer.reset_momentum()

    def get_weights(self) -> Weights:
        flat = self.model.get_weights()
        return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]

    # -- training -----------------------------------------------------------------------------------

    def fit(self, x: np.ndarray, labels: np.ndarray, epochs: int, batch_size: int, *,
            validation_data: tuple[np.ndarray, np.ndarray] | None = None,
            callback: Callable[[EpochRecord], None] | None = None,
            batch_order_rng: np.random.Generator | None = None) -> list[EpochRecord]:
        """Train with the article's rules as numpy_mlp.MLP.fit does, on x already scaled (e.g.
        ``InputScaler.transform(x_raw)``); one EpochRecord per epoch (epoch 1 includes tracing and compilation).

        batch_order_rng : a NumPy Generator; if given, each epoch's batches are its ``permutation(n)`` cut like
            numpy_mlp's (last batch smaller), instead of Keras' shuffling (fit variants) or the model's own (loop).

        EpochRecord.loss is Keras' epoch loss: the mean of the batch losses weighted by batch size, numpy_mlp's
        plain mean whenever all batches have the same size (n % batch_size == 0).
        """
        x, labels, epochs, batch_size, validation_data = self._check_fit(x, labels, epochs, batch_size,
                                                                         validation_data, batch_order_rng)
        y = self._one_hot(labels)
        rates = self._rates(epochs, batch_size)
        settings = self._settings_override or settings_for(self.variant, batch_size, self.backend)
        fit = self._fit_loop if self.variant == "loop" else self._fit_keras
        with self._floatx():
            return fit(x, y, rates, batch_size, settings, validation_data, callback, batch_order_rng)

    def _fit_keras(self, x, y, rates, batch_size, settings, validation_data, callback, batch_order_rng):
        self._compile(settings, math.ceil(len(x) / batch_size))
        records = []

        def finish(wall, cpu, logs):
            epoch = len(records)
            record = EpochRecord(self.epochs_done + 1, wall, cpu, float(logs["loss"]),
                                 float(logs["categorical_accuracy"]), rates[epoch])
            records.append(self._finish_epoch(record, validation_data, callback))

        recorder = self.components.EpochTimer(finish)
        # the epoch's rate, assigned to the optimizer's variable by Keras' own scheduler callback
        schedule = self._keras.callbacks.LearningRateScheduler(lambda epoch, lr: rates[len(records)])
        callbacks = [schedule, recorder]  # the rate is set before the epoch's clock starts
        if batch_order_rng is not None:
            # the harness's order: one fit() per epoch on the permuted arrays, Keras cuts the batches
            for _ in rates:
                perm = batch_order_rng.permutation(len(x))
                self.model.fit(x[perm], y[perm], batch_size=batch_size, epochs=1, shuffle=False, verbose=0,
                               callbacks=callbacks)
        else:
            self.model.fit(x, y, batch_size=batch_size, epochs=len(rates), shuffle=True, verbose=0,
                           callbacks=callbacks)
        return records

    def _compile(self, settings: RunSettings, n_batches: int) -> None:
        kwargs = {}
        if self.variant != "fit" or self._settings_override is not None:
            kwargs = {"steps_per_execution": settings.steps_for(n_batches), "jit_compile": settings.jit_compile}
        key = tuple(sorted(kwargs.items()))
        if self._compiled_with != key:
            self.model.compile(optimizer=self.optimizer, loss=self.loss_fn,
                               metrics=[self.components.OutputAccuracy(self.config.output_activation)], **kwargs)
            self._compiled_with = key

    def _fit_loop(self, x, y, rates, batch_size, settings, validation_data, callback, batch_order_rng):
        rng = self._loop_rng if batch_order_rng is None else batch_order_rng
        jit = settings.jit_compile is True
        per_call = settings.steps_for(math.ceil(len(x) / batch_size))
        data = self._functions.loop_data(x, y)
        records = []
        for lr in rates:
            self.optimizer.learning_rate = lr
            wall0, cpu0 = time.perf_counter(), time.process_time()
            order = rng.permutation(len(x))
            loss, acc = self._functions.loop_epoch(data, order, batch_size, per_call, jit)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            records.append(self._finish_epoch(EpochRecord(self.epochs_done + 1, wall, cpu, loss, acc, lr),
                                              validation_data, callback))
        return records

    def total_loss(self, y, logits, penalties):
        """The summed loss plus the kernels' regularization penalties (the model's losses of the
        call that gave ``logits``), as Keras' compute_loss adds them."""
        ops = self._keras.ops
        losses = [self.loss_fn(y, logits), *penalties]
        return ops.sum(ops.stack(losses)) if len(losses) > 1 else losses[0]

    # -- inference ----------------------------------------------------------------------------------

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Network outputs A (n, outputs) in the model's dtype."""
        x = self._check_x(x, "x")
        with self._floatx():
            return self._functions.forward(x)

    def evaluate(self, x: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        """(loss, accuracy) on a data set; the loss is summed over its samples plus regularization,
        like numpy_mlp.MLP.evaluate."""
        x, labels = self._check_data(x, labels, "x")
        with self._floatx():
            return self._evaluate(x, labels)

    def _evaluate(self, x, labels):
        loss, outputs = self._functions.evaluate(x, self._one_hot(labels))
        return loss, float(np.mean(outputs.argmax(axis=1) == labels))

    # -- helpers ------------------------------------------------------------------------------------

    def _seed_random_state(self) -> None:
        """Seed what fit's shuffling draws from: ``keras.utils.set_random_seed`` on TensorFlow; on JAX
        (where Keras shuffles with NumPy's global generator) and PyTorch, Python's and NumPy's generators
        (and PyTorch's), as set_random_seed does, without the TensorFlow it imports to seed too."""
        if self.backend in ("jax", "torch"):
            random.seed(self.seed)
            np.random.seed(self.seed)
            if self.backend == "torch":
                sys.modules["torch"].manual_seed(self.seed)
        else:
            self._keras.utils.set_random_seed(self.seed)

    @contextlib.contextmanager
    def _floatx(self):
        """Keras' float type = the model's dtype while Keras works for us (Keras casts float inputs,
        metrics and loss totals to floatx); restored afterwards."""
        config = self._keras.config
        previous = config.floatx()
        config.set_floatx(self.dtype.name)
        try:
            yield
        finally:
            config.set_floatx(previous)
