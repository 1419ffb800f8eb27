"""The public model: weights, the training loop of the article, prediction and evaluation."""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from .activations import ACTIVATIONS
from .checks import ModelInputs
from .config import MLPConfig
from .losses import loss_function, regularization_cost
from .scaling import InputScaler
from .variants import PHASES, Threads, Weights, get_variant


def blas_threads() -> int:
    """Threads of NumPy's BLAS as currently limited (1 if none is found)."""
    return max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=1)


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; the weights are no longer meaningful."""


def finish_epoch(record, evaluate, validation_data, callback, what: str):
    """After an epoch's clock stopped (every model): divergence check, evaluation timed apart, callback."""
    if not math.isfinite(record.loss):
        raise TrainingDiverged(f"loss became {record.loss} in epoch {record.epoch} ({what})")
    if validation_data is not None:
        start = time.perf_counter()
        record.test_loss, record.test_acc = evaluate(*validation_data)
        record.eval_s = time.perf_counter() - start
    if callback is not None:
        callback(record)
    return record


@dataclass
class EpochRecord:
    """What one epoch of training gives. Times cover training only; evaluation is timed apart."""

    epoch: int  # 1-based
    wall_s: float
    cpu_s: float
    loss: float  # mean over the epoch's batches of the batch loss (summed over samples, + regularization)
    train_acc: float  # running accuracy over the batches of the epoch, as the model saw them
    lr: float
    test_acc: float | None = None
    test_loss: float | None = None
    eval_s: float | None = None
    phases: dict[str, float] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def shuffle_rng(seed: int) -> np.random.Generator:
    """The generator of the per-epoch shuffles of a model made with ``seed`` (exposed so that other
    frameworks can be fed the very same batch order)."""
    return np.random.default_rng([seed, 1])


def init_weights(config: MLPConfig, seed: int) -> Weights:
    """Uniform in +-init_scale/sqrt(n_in) for kernels (in, out) and biases (out,), drawn in float64."""
    rng = np.random.default_rng([seed, 0])
    weights = []
    for n_in, n_out in zip(config.layer_sizes[:-1], config.layer_sizes[1:]):
        limit = config.init_scale / math.sqrt(n_in)
        kernel = rng.uniform(-limit, limit, size=(n_in, n_out))
        bias = rng.uniform(-limit, limit, size=n_out)
        weights.append((kernel.astype(config.dtype), bias.astype(config.dtype)))
    return weights


def batch_slices(order: np.ndarray, batch_size: int):
    """Consecutive batches of the index array ``order``; the last one may be smaller."""
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


class MLP(ModelInputs):
    """A multilayer perceptron trained by one of the variants of ``numpy_mlp.variants``.

    Parameters
    ----------
    config : the network and its training.
    variant : name of the training-step implementation ('optimized' by default).
    seed : seeds the initial weights and the per-epoch shuffling (two independent streams).
    scaler : an InputScaler; when given, every x passed to the model is raw (e.g. uint8 pixels) and the
        model scales it (see ``numpy_mlp.scaling``).
    """

    def __init__(self, config: MLPConfig | None = None, variant: str = "optimized", seed: int = 0,
                 scaler: InputScaler | None = None):
        self.config = config or MLPConfig()
        self.impl = get_variant(variant)(self.config, init_weights(self.config, seed))
        self.variant, self.seed, self.dtype = self.impl.name, seed, self.impl.dtype
        self.shuffle_rng = shuffle_rng(seed)
        self.scaler = scaler.astype(self.dtype) if scaler is not None else None
        self.epochs_done = 0
        self._hidden = ACTIVATIONS[self.config.hidden_activation]
        self._output = ACTIVATIONS[self.config.output_activation]
        self._loss_value = loss_function(self.config.output_activation, self.config.loss)

    def get_weights(self) -> Weights:
        return self.impl.get_weights()

    def set_weights(self, weights: Weights) -> None:
        """Weights as [(kernel (in, out), bias (out,)), ...], e.g. from a Keras model; resets momentum."""
        self.impl.set_weights(self._check_weights(weights))

    # -- training ---------------------------------------------------------------------------------

    def fit(self, x: np.ndarray, labels: np.ndarray, epochs: int, batch_size: int, *,
            validation_data: tuple[np.ndarray, np.ndarray] | None = None,
            callback: Callable[[EpochRecord], None] | None = None, phase_timing: bool = False) -> list[EpochRecord]:
        """Train with the article's rules: shuffle every epoch, summed gradients, decaying rate.

        Parameters
        ----------
        x : (n, inputs) float array, already scaled.
        labels : (n,) integer class labels.
        epochs, batch_size : the last batch of an epoch is smaller when n % batch_size != 0.
        validation_data : (x_test, labels_test), evaluated after every epoch outside the timing.
        callback : called with each epoch's record.
        phase_timing : time the article's phases per batch (adds a few perf_counter calls; a variant
            that trains on several row threads runs them one after the other, same arithmetic).

        Returns the list of epoch records. Raises TrainingDiverged when the loss stops being finite.
        """
        x, labels, epochs, batch_size, validation_data = self._check_fit(x, labels, epochs, batch_size, validation_data)
        self.impl.bind(x, self._one_hot(labels), labels, self.scaler)
        if self.epochs_done == 0:
            self._lr = self.config.lr_for(batch_size)  # a later fit() continues the decay
        records = []
        available = blas_threads()
        threads = self.impl.threads(batch_size, available)
        # exp(-z) overflows to inf for very negative z in sigmoid; 1 / inf = 0 is the right answer.
        with np.errstate(over="ignore", invalid="ignore"):  # invalid: NaN is caught per epoch below
            limit = threadpool_limits(threads.blas, user_api="blas") if threads.blas < available else nullcontext()
            with limit, self.impl.running(threads.rows):
                for _ in range(epochs):
                    records.append(self._fit_epoch(x, batch_size, validation_data, callback, phase_timing))
        return records

    def threads_for(self, batch_size: int) -> Threads:
        """How ``fit`` trains at this batch size: the variant's choice within the current BLAS limit."""
        return self.impl.threads(batch_size, blas_threads())

    def _fit_epoch(self, x, batch_size, validation_data, callback, phase_timing) -> EpochRecord:
        epoch = self.epochs_done
        self._lr = lr = self._lr / (1.0 + self.config.lr_decay * epoch)
        order = self.shuffle_rng.permutation(len(x))
        phases = dict.fromkeys(PHASES, 0.0) if phase_timing else None
        train_batch = self.impl.train_batch
        loss_sum, n_correct, n_batches = 0.0, 0, 0
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for idx in batch_slices(order, batch_size):
            loss, correct = train_batch(idx, lr, phases)
            loss_sum += loss
            n_correct += correct
            n_batches += 1
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        self.epochs_done += 1
        record = EpochRecord(epoch + 1, wall, cpu, loss_sum / n_batches, n_correct / len(order), lr, phases=phases)
        return finish_epoch(record, self.evaluate, validation_data, callback, f"variant {self.variant}")

    # -- inference --------------------------------------------------------------------------------

    def predict(self, x: np.ndarray, chunk_size: int = 10000) -> np.ndarray:
        """Network outputs (n, outputs) in the model's dtype."""
        x = self._check_x(x, "x")
        weights = self.get_weights()
        outputs = []
        for start in range(0, len(x), chunk_size):
            a = x[start : start + chunk_size]
            if self.scaler is not None:
                a = self.scaler.transform(a)
            for n, (kernel, bias) in enumerate(weights):
                z = a @ kernel
                z += bias
                act = self._output if n == len(weights) - 1 else self._hidden
                a = act.forward(z, out=z)
            outputs.append(a)
        return np.concatenate(outputs) if outputs else np.empty((0, self.config.layer_sizes[-1]), self.dtype)

    def evaluate(self, x: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        """(loss, accuracy) on a data set; the loss is summed over its samples plus regularization."""
        x, labels = self._check_data(x, labels, "x")
        out = self.predict(x)
        kernels = [k for k, _ in self.get_weights()]
        loss = self._loss_value(out, self._one_hot(labels))
        loss += regularization_cost(kernels, self.config.l2, self.config.l1)
        return loss, float(np.mean(out.argmax(axis=1) == labels))

    def _check_x(self, x, name) -> np.ndarray:
        x = np.asarray(x)
        n_in = self.config.layer_sizes[0]
        if x.ndim != 2 or x.shape[1] != n_in:
            raise ValueError(f"{name} must have shape (n, {n_in}), got {x.shape}")
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise ValueError(f"{name} must hold numbers, got dtype {x.dtype}")
        if self.scaler is None or np.issubdtype(x.dtype, np.floating):
            x = np.ascontiguousarray(x, dtype=self.dtype)
        if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        return x
