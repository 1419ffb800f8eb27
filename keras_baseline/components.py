"""The Keras pieces of the study's network: model, summed loss, the article's optimizer, accuracy.

Everything here is written in ``keras.ops`` and serves every backend. This module
imports Keras (and so its backend) at import time; ``keras_baseline.model`` imports it only once the
backend has been configured (see ``keras_baseline.runtime``).

The model outputs the logits Z of the output layer and the loss and the accuracy apply the output
function themselves (Keras' ``from_logits=True`` idiom). That is what makes the gradient the very
one of numpy_mlp: for LogLoss with its matching output function numpy_mlp's output error is
dLoss/dZ = A - Y, computed as such; the loss here returns the clipped cross-entropy of A (the same
value numpy_mlp reports) with the gradient A - Y with respect to Z. Differentiating the clipped value
of A instead (what a loss on probabilities does) would give 0 wherever an output saturates beyond
the clipping, and rounding noise (A - Y) / (A (1 - A)) * A (1 - A) elsewhere.
"""
from __future__ import annotations

import time

import keras
from keras import ops

from numpy_mlp.config import MLPConfig
from numpy_mlp.losses import LOG_EPSILON

from .runtime import cpu_seconds


def activate(logits, output_activation: str):
    """The output function applied to the logits: the network's outputs A."""
    if output_activation == "softmax":
        return ops.softmax(logits, axis=-1)
    return ops.sigmoid(logits)


def _logloss_from_logits(output_activation: str):
    """Per-sample cross-entropy of the clipped outputs A = f(Z) (binary per sigmoid node, summed over the nodes;
    categorical with softmax), with the gradient d/dZ = A - Y (for softmax: rows of Y sum to 1)."""

    @ops.custom_gradient
    def logloss(logits, y):
        a = activate(logits, output_activation)
        clipped = ops.clip(a, LOG_EPSILON, 1.0 - LOG_EPSILON)
        if output_activation == "softmax":
            value = -ops.sum(y * ops.log(clipped), axis=-1)
        else:
            value = -ops.sum(y * ops.log(clipped) + (1.0 - y) * ops.log(1.0 - clipped), axis=-1)

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            return ops.expand_dims(upstream, -1) * (a - y), ops.zeros_like(y)  # upstream per node

        return value, grad

    return logloss


class SummedLoss(keras.losses.Loss):
    """The article's cost of a mini-batch, from the logits: summed over output nodes AND samples.

    'logloss': binary cross-entropy per sigmoid node (categorical cross-entropy with softmax), outputs
    clipped to [1e-7, 1 - 1e-7] like numpy_mlp; 'mse': 0.5 * squared error of the outputs, by
    automatic differentiation. ``call`` returns the per-sample losses and ``reduction='sum'`` sums
    them (Keras' default would average over the batch). Regularization is not part of it: Keras adds
    the kernels' L1L2 penalties (``model.losses``) to it.
    """

    def __init__(self, output_activation: str, loss: str, dtype: str):
        super().__init__(name=f"summed_{loss}", reduction="sum", dtype=dtype)
        self.output_activation, self.loss = output_activation, loss
        self._logloss = _logloss_from_logits(output_activation)

    def call(self, y_true, y_pred):
        """y_true (batch, classes) one-hot, y_pred the logits (batch, classes) -> (batch,)."""
        if self.loss == "mse":
            diff = activate(y_pred, self.output_activation) - y_true
            return 0.5 * ops.sum(ops.square(diff), axis=-1)
        return self._logloss(y_pred, y_true)


class OutputAccuracy(keras.metrics.CategoricalAccuracy):
    """Categorical accuracy (argmax of the outputs == argmax of the one-hot targets) of a model that
    outputs logits: the output function is applied first, so that ties between saturated outputs are
    broken exactly as numpy_mlp breaks them (first maximum). Keras' plain 'accuracy' would become
    binary accuracy per output node with a sigmoid output."""

    def __init__(self, output_activation: str):
        super().__init__(name="categorical_accuracy")
        self.output_activation = output_activation

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(y_true, activate(y_pred, self.output_activation), sample_weight)


class ArticleSGD(keras.optimizers.Optimizer):
    """The article's update for every variable (biases included), with its one-step momentum:

        step = lr * grad;  W -= step;  W -= momentum * previous_step;  previous_step = step

    (Keras' SGD keeps the classical velocity v = m v - lr g instead.) The learning rate lives in
    Keras' learning-rate variable, of the Keras float type in effect when the optimizer is made
    (keras_baseline makes it in the model's dtype), and is set per epoch from the article's schedule.
    """

    def __init__(self, learning_rate: float, momentum: float):
        super().__init__(learning_rate=learning_rate, name="article_sgd")
        self.momentum = float(momentum)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.previous_steps = []
        if self.momentum != 0:
            self.previous_steps = self.add_optimizer_variables(variables, "previous_step")

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        step = ops.multiply(ops.cast(gradient, variable.dtype), learning_rate)
        self.assign_sub(variable, step)
        if self.momentum != 0:
            previous = self.previous_steps[self._get_variable_index(variable)]
            # convert_to_tensor, not cast: ops.cast(5e-5, 'float64') goes through float32
            momentum = ops.convert_to_tensor(self.momentum, dtype=variable.dtype)
            self.assign_sub(variable, ops.multiply(previous, momentum))
            self.assign(previous, step)

    def reset_momentum(self) -> None:
        """Forget the previous steps (when the weights are replaced)."""
        for previous in self.previous_steps:
            previous.assign(ops.zeros(previous.shape, dtype=previous.dtype))


class KernelL1L2(keras.regularizers.L1L2):
    """Keras' L1L2 penalty, l1 sum|W| + l2 sum W^2, with the factors taken in the weights' dtype.

    Keras 3.15's L1L2 casts its Python-float factors through a float32 tensor
    (``ops.cast(0.1, 'float64')`` gives 0.10000000149...), which in float64 shifts the penalty and
    its gradient by 1.5e-8 relative; here the factors are converted straight to the weights' dtype.
    In float32 both are the same.
    """

    def __call__(self, x):
        penalty = ops.convert_to_tensor(0.0, dtype=x.dtype)
        if self.l1:
            penalty += ops.convert_to_tensor(self.l1, dtype=x.dtype) * ops.sum(ops.absolute(x))
        if self.l2:
            penalty += ops.convert_to_tensor(self.l2, dtype=x.dtype) * ops.sum(ops.square(x))
        return penalty


class EpochTimer(keras.callbacks.Callback):
    """Times each epoch of ``fit`` from on_epoch_begin to on_epoch_end (the batches, Keras' data pipeline and
    callbacks; no validation runs inside fit; CPU time includes a compiler's, ``runtime.cpu_seconds``) and hands
    (wall_s, cpu_s, logs) to ``finish``, which runs after the clock stopped (evaluation, records)."""

    def __init__(self, finish):
        super().__init__()
        self.finish = finish

    def on_epoch_begin(self, epoch, logs=None):
        self._cpu0 = cpu_seconds()
        self._wall0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        wall, cpu = time.perf_counter() - self._wall0, cpu_seconds() - self._cpu0
        self.finish(wall, cpu, logs)


def tanh_in_dtype(x):
    """tanh(x) = sign(x) (-t / (t + 2)) with t = expm1(-2 |x|), in the dtype of x (no overflow)."""
    t = ops.expm1(-2.0 * ops.absolute(x))
    return ops.sign(x) * (-t / (t + 2.0))


def hidden_activation(config: MLPConfig):
    """The hidden layers' activation, Keras' own by name, except tanh in float64 on JAX: Keras 3.15
    computes ``ops.tanh`` there in float32 (its type promotion maps float64 to float32 on JAX, an
    error of 1e-7 relative), so there tanh is built from expm1, which keeps the dtype."""
    if config.hidden_activation == "tanh" and config.dtype == "float64" and keras.backend.backend() == "jax":
        return tanh_in_dtype
    return config.hidden_activation


def build_model(config: MLPConfig) -> keras.Sequential:
    """Dense layers of ``config.layer_sizes`` in ``config.dtype``; the last one outputs the logits.

    Kernels carry the article's regularization, cost += l2/2 sum W^2 + l1 sum |W|, i.e. Keras'
    L1L2(l1=l1, l2=l2/2) (see KernelL1L2), whose gradient l2 W + l1 sign(W) is numpy_mlp's; biases are
    not regularized.
    """
    sizes = config.layer_sizes
    regularizer = KernelL1L2(l1=config.l1, l2=config.l2 / 2) if config.l1 or config.l2 else None
    layers = [keras.Input(shape=(sizes[0],), dtype=config.dtype, name="pixels")]
    for n, width in enumerate(sizes[1:], start=1):
        last = n == len(sizes) - 1
        layers.append(keras.layers.Dense(width, activation=None if last else hidden_activation(config),
                                         kernel_regularizer=regularizer, dtype=config.dtype,
                                         name="logits" if last else f"hidden_{n}"))
    return keras.Sequential(layers, name="mlp")
