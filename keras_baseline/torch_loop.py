"""TorchMLP: the study's network as a PyTorch user writes it, no Keras: the torch framework's 'loop'
and 'loop-compiled' variants.

``torch.nn.Linear`` layers, the summed loss plus the kernels' penalty differentiated by autograd, and
the article's update written out under ``torch.no_grad()``; batches gathered from the shuffled index
every framework uses (``numpy_mlp.shuffle_rng``). 'loop-compiled' is the same step passed to
``torch.compile`` (Inductor): the step, not the epoch, since Dynamo would unroll an epoch's Python
loop over its batches and breaks its graph at ``backward()`` anyway. PyTorch is imported when the
first TorchMLP is made (``keras_baseline.runtime.import_torch``), after the harness set its threads;
an epoch's CPU time includes the g++ that Inductor runs (``runtime.cpu_seconds``).
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from numpy_mlp.config import MLPConfig
from numpy_mlp.losses import LOG_EPSILON
from numpy_mlp.model import EpochRecord, init_weights
from numpy_mlp.variants import Weights

from .peer import PeerModel
from .runtime import cpu_seconds, import_torch

LOOP_VARIANTS = ("loop", "loop-compiled")


def _summed_logloss_function(torch):
    """An autograd Function: the clipped cross-entropy of the outputs A = f(Z), summed over nodes and
    samples (the value numpy_mlp reports), with the gradient A - Y with respect to the logits Z (the
    one numpy_mlp computes; see keras_baseline.components for why not the clipped value's gradient)."""

    class SummedLogLoss(torch.autograd.Function):
        @staticmethod
        def forward(ctx, logits, y, softmax: bool):
            a = torch.softmax(logits, dim=1) if softmax else torch.sigmoid(logits)
            ctx.save_for_backward(a, y)
            clipped = a.clamp(LOG_EPSILON, 1.0 - LOG_EPSILON)
            if softmax:
                return -(y * clipped.log()).sum()
            return -(y * clipped.log() + (1.0 - y) * (1.0 - clipped).log()).sum()

        @staticmethod
        def backward(ctx, upstream):
            a, y = ctx.saved_tensors
            return upstream * (a - y), None, None

    return SummedLogLoss


class TorchMLP(PeerModel):
    """The study's MLP in plain PyTorch, mathematically the same as ``numpy_mlp.MLP`` with the same config.

    Parameters
    ----------
    config : the shared ``numpy_mlp.MLPConfig``.
    variant : 'loop' (eager) or 'loop-compiled' (the training step through ``torch.compile``).
    seed : initial weights ``numpy_mlp.init_weights(config, seed)`` and the batch order
        (``numpy_mlp.shuffle_rng(seed)``), as for every framework.
    """

    what = "torch"

    def __init__(self, config: MLPConfig | None = None, variant: str = "loop", seed: int = 0):
        super().__init__(config, seed)
        if variant not in LOOP_VARIANTS:
            raise ValueError(f"unknown TorchMLP variant {variant!r}; choose one of {', '.join(LOOP_VARIANTS)}")
        torch = self._torch = import_torch()
        self.variant, self.backend = variant, "torch"
        self._tdtype = getattr(torch, self.config.dtype)
        self._logloss = _summed_logloss_function(torch)
        self.network = self._build_network()
        self.kernels = [layer.weight for layer in self.network if isinstance(layer, torch.nn.Linear)]
        self.parameters = list(self.network.parameters())
        self.previous_steps = [torch.zeros_like(p) for p in self.parameters]
        compiled = variant == "loop-compiled"  # compiled once per batch shape (a smaller last batch: twice)
        self._step = torch.compile(self._train_batch, dynamic=False) if compiled else self._train_batch
        self.set_weights(init_weights(self.config, self.seed))

    def _build_network(self):
        nn, sizes = self._torch.nn, self.config.layer_sizes
        activation = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}[self.config.hidden_activation]
        layers = []
        for n in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[n], sizes[n + 1], dtype=self._tdtype))
            if n < len(sizes) - 2:
                layers.append(activation())
        return nn.Sequential(*layers)

    # -- weights ------------------------------------------------------------------------------------

    def set_weights(self, weights: Weights) -> None:
        """Weights as [(kernel (in, out), bias (out,)), ...] (numpy_mlp's format); resets the momentum."""
        arrays = [array for kernel, bias in self._check_weights(weights) for array in (kernel.T, bias)]  # (out, in)
        with self._torch.no_grad():
            for parameter, array, previous in zip(self.parameters, arrays, self.previous_steps):
                parameter.copy_(self._torch.from_numpy(np.ascontiguousarray(array)))
                previous.zero_()

    def get_weights(self) -> Weights:
        arrays = [p.detach().numpy().copy() for p in self.parameters]
        return [(arrays[i].T.copy(), arrays[i + 1]) for i in range(0, len(arrays), 2)]

    # -- the training step --------------------------------------------------------------------------

    def _total_loss(self, logits, y):
        """The summed loss of a batch plus l2/2 sum W^2 + l1 sum |W| over the kernels (not the biases)."""
        config = self.config
        if config.loss == "mse":
            loss = 0.5 * (self._outputs(logits) - y).square().sum()
        else:
            loss = self._logloss.apply(logits, y, config.output_activation == "softmax")
        for kernel in self.kernels:
            if config.l2:
                loss = loss + (config.l2 / 2) * kernel.square().sum()
            if config.l1:
                loss = loss + config.l1 * kernel.abs().sum()
        return loss

    def _outputs(self, logits):
        return self._torch.softmax(logits, dim=1) if self.config.output_activation == "softmax" else logits.sigmoid()

    def _train_batch(self, x, y, labels, lr):
        """Forward, loss, gradients, the article's update; returns (loss, correct predictions) as tensors.

        step = lr * grad;  W -= step + momentum * previous step;  previous step = step
        """
        for parameter in self.parameters:
            parameter.grad = None
        logits = self.network(x)
        loss = self._total_loss(logits, y)
        loss.backward()
        momentum = self.config.momentum
        with self._torch.no_grad():
            for parameter, previous in zip(self.parameters, self.previous_steps):
                step = parameter.grad * lr
                parameter -= step + momentum * previous
                previous.copy_(step)
            correct = (self._outputs(logits).argmax(dim=1) == labels).sum()
        return loss.detach(), correct

    # -- training -----------------------------------------------------------------------------------

    def fit(self, x: np.ndarray, labels: np.ndarray, epochs: int, batch_size: int, *,
            validation_data: tuple[np.ndarray, np.ndarray] | None = None,
            callback: Callable[[EpochRecord], None] | None = None,
            batch_order_rng: np.random.Generator | None = None) -> list[EpochRecord]:
        """Train with the article's rules, as KerasMLP.fit (same arguments, same EpochRecords; the
        epoch loss is the batch losses' mean weighted by batch size). Epoch 1 of 'loop-compiled'
        includes the compilation. Raises TrainingDiverged when the loss stops being finite."""
        x, labels, epochs, batch_size, validation_data = self._check_fit(x, labels, epochs, batch_size,
                                                                         validation_data, batch_order_rng)
        torch = self._torch
        rng = self._loop_rng if batch_order_rng is None else batch_order_rng
        x_t, y_t, labels_t = torch.from_numpy(x), torch.from_numpy(self._one_hot(labels)), torch.from_numpy(labels)
        records = []
        for lr in self._rates(epochs, batch_size):
            wall0, cpu0 = time.perf_counter(), cpu_seconds()
            order = torch.from_numpy(rng.permutation(len(x)))
            lr_t = torch.tensor(lr, dtype=self._tdtype)  # a tensor: the compiled step is not rebuilt per rate
            loss_sum, correct = torch.zeros((), dtype=self._tdtype), torch.zeros((), dtype=torch.int64)
            for start in range(0, len(x), batch_size):
                idx = order[start : start + batch_size]
                loss, right = self._step(x_t.index_select(0, idx), y_t.index_select(0, idx),
                                         labels_t.index_select(0, idx), lr_t)
                loss_sum += loss * len(idx)
                correct += right
            loss, acc = float(loss_sum) / len(x), int(correct) / len(x)
            wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
            records.append(self._finish_epoch(EpochRecord(self.epochs_done + 1, wall, cpu, loss, acc, lr),
                                              validation_data, callback))
        return records

    # -- evaluation ---------------------------------------------------------------------------------

    def evaluate(self, x: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        """(loss summed over the samples plus regularization, accuracy), like numpy_mlp.MLP.evaluate."""
        return self._evaluate(*self._check_data(x, labels, "x"))

    def _evaluate(self, x, labels):
        torch = self._torch
        with torch.no_grad():
            logits = self.network(torch.from_numpy(x))
            loss = self._total_loss(logits, torch.from_numpy(self._one_hot(labels)))
            outputs = self._outputs(logits).numpy()
        return float(loss), float(np.mean(outputs.argmax(axis=1) == labels))

