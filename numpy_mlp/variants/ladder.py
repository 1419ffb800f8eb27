"""The article's code and its three optimization steps, in the article's layout.

Samples are columns (features x batch) and each weight matrix is (outputs, 1 + inputs) with the bias
weight in column 0, so every layer's input gets a leading row of ones. The four rungs differ only
in the flags below, which is what makes the ladder's measurements comparable:

- ``original``: float64; a bias row inserted into each layer's input during forward propagation,
  including the transposed (F-contiguous) input batch; in backward propagation the bias row is added
  to Z again and the derivative recomputed as act'(Z) by calling the activation once more; deltas
  propagated down to the input layer although no gradient needs them.
- ``step1``: the configured dtype (float32 by default) and no delta for the input layer.
- ``step2``: the bias column is added to the whole training set once, so slicing and transposing a
  batch already yields the bias row: no row inserted into an F-contiguous array per batch.
- ``step3``: the derivative from the stored outputs (for sigmoid D = A (1 - A)) and the weight matrix
  sliced instead of a bias row added in backward propagation: the article's final code.
"""
from __future__ import annotations

import numpy as np

from ..activations import ACTIVATIONS
from ..config import MLPConfig
from ..losses import loss_function, loss_gradient_wrt_output, output_delta_function, regularization_cost
from .base import PhaseClock, Variant, Weights


def add_bias_row(a: np.ndarray) -> np.ndarray:
    """(n, batch) -> (1 + n, batch) with a leading row of ones (a new C-contiguous array)."""
    return np.vstack((np.ones((1, a.shape[1]), dtype=a.dtype), a))


class LadderVariant(Variant):
    delta_to_input_layer = False
    bias_column_in_data = False
    derivative_from_output = False

    def __init__(self, config: MLPConfig, weights: Weights):
        self.hidden = ACTIVATIONS[config.hidden_activation]
        self.output = ACTIVATIONS[config.output_activation]
        self.loss_value = loss_function(config.output_activation, config.loss)
        self.fused_output_delta = output_delta_function(config.output_activation, config.loss)
        super().__init__(config, weights)

    def set_weights(self, weights: Weights) -> None:
        # W_N = [bias | kernel^T]: (outputs, 1 + inputs)
        self.w = [np.hstack((b.reshape(-1, 1), k.T)).astype(self.dtype) for k, b in weights]
        self.previous_step = [np.zeros_like(w) for w in self.w]

    def get_weights(self) -> Weights:
        return [(w[:, 1:].T.copy(), w[:, 0].copy()) for w in self.w]

    def bind(self, x, y_onehot, labels, scaler=None) -> None:
        x = scaler.astype(self.dtype).transform(x) if scaler is not None else np.asarray(x, dtype=self.dtype)
        if self.bias_column_in_data:
            x = np.hstack((np.ones((x.shape[0], 1), dtype=self.dtype), x))  # (n, 1 + inputs), once
        self.x_train = x
        self.y_onehot_t = np.ascontiguousarray(np.asarray(y_onehot, dtype=self.dtype).T)  # (outputs, n)
        self.labels = labels

    def train_batch(self, idx, lr, phases=None):
        """The article's five phases in order, each a method; ``forward`` returns what ``cost`` and
        ``backward`` need."""
        clock = PhaseClock(phases)
        batch = self.prepare(idx)
        clock.lap("prepare")
        cache = self.forward(batch)
        clock.lap("forward")
        loss, n_correct = self.cost(batch, cache)
        clock.lap("cost")
        grads = self.backward(batch, cache)
        clock.lap("backward")
        self.update(grads, lr)
        clock.lap("update")
        return loss, n_correct

    def prepare(self, idx):
        """The batch for the sample indices ``idx``: (X^T (inputs [+1], batch), Y^T, labels)."""
        a0 = self.x_train[idx].T  # (inputs [+1], batch), F-contiguous view of the gathered rows
        return a0, self.y_onehot_t[:, idx], self.labels[idx]

    def forward(self, batch):
        """Forward propagation: (Z per layer, A per layer with its bias row), what backward needs."""
        a0 = batch[0]
        a_list, z_list = [], [None]
        a = a0 if self.bias_column_in_data else add_bias_row(a0)  # (1 + inputs, batch)
        last = len(self.w) - 1
        for n, w in enumerate(self.w):
            a_list.append(a)  # layer n's output with its bias row
            z = w @ a  # (outputs_n, batch)
            z_list.append(z)
            act = self.output if n == last else self.hidden
            a_next = act.forward(z, axis=0) if act.name == "softmax" else act.forward(z)
            a = add_bias_row(a_next) if n < last else a_next
        a_list.append(a)  # network output, (outputs, batch), no bias row
        return z_list, a_list

    def cost(self, batch, cache):
        """(loss of the batch including regularization, number of correctly classified samples)."""
        _, y_t, labels = batch
        a_out = cache[1][-1]  # (outputs, batch)
        kernels = [w[:, 1:] for w in self.w]  # (outputs, inputs) views: the bias weights are not regularized
        loss = self.loss_value(a_out.T, y_t.T) + regularization_cost(kernels, self.config.l2, self.config.l1)
        n_correct = int(np.count_nonzero(a_out.argmax(axis=0) == labels))
        return loss, n_correct

    def _output_delta(self, z_out, a_out, y_t):
        """delta at the output layer, (outputs, batch)."""
        if self.output.name == "softmax":
            return self.fused_output_delta(a_out.T, y_t.T).T
        # The article's way: dLoss/dA times the output function's derivative D_E.
        if self.derivative_from_output:
            d_out = self.output.derivative_from_output(a_out)
        else:
            d_out = self.output.derivative_from_input(z_out)
        return loss_gradient_wrt_output(a_out, y_t, self.config.loss) * d_out

    def backward(self, batch, cache):
        """Gradients of the summed loss + regularization, per layer (outputs_n, 1 + inputs_n)."""
        z_list, a_list = cache
        y_t = batch[1]
        n_layers = len(self.w)
        delta = self._output_delta(z_list[-1], a_list[-1], y_t)  # (outputs, batch)
        grads = [None] * n_layers
        lowest = 0 if self.delta_to_input_layer else 1
        for n in reversed(range(n_layers)):
            grads[n] = self._regularized(delta @ a_list[n].T, n)  # (outputs_n, 1 + inputs_n)
            if n < lowest:
                break
            if self.derivative_from_output:
                a = a_list[n][1:]  # drop the bias row: a slice, no copy
                delta = (self.w[n].T @ delta)[1:] * self.hidden.derivative_from_output(a)
            else:
                z = a_list[0] if n == 0 else add_bias_row(z_list[n])  # Z with its bias row again
                d = self.hidden.derivative_from_input(z)
                delta = ((self.w[n].T @ delta) * d)[1:]
        return grads

    def _regularized(self, grad, n):
        if self.config.l2 > 0:
            grad[:, 1:] += self.config.l2 * self.w[n][:, 1:]
        if self.config.l1 > 0:
            grad[:, 1:] += self.config.l1 * np.sign(self.w[n][:, 1:])
        return grad

    def update(self, grads, lr):
        """The article's rule: step = lr * grad; W -= step + momentum * previous step."""
        for n, grad in enumerate(grads):
            step = lr * grad
            self.w[n] -= step + self.config.momentum * self.previous_step[n]
            self.previous_step[n] = step


class Original(LadderVariant):
    name = "original"
    description = ("the article's starting point: float64, bias rows inserted per batch, act'(Z) recomputed, "
                   "deltas down to the input")
    always_float64 = True
    delta_to_input_layer = True


class Step1(LadderVariant):
    name = "step1"
    description = "original + configured dtype (float32) + no delta for the input layer"


class Step2(Step1):
    name = "step2"
    description = "step1 + bias column added to the training set once (no row inserted into transposed batches)"
    bias_column_in_data = True


class Step3(Step2):
    name = "step3"
    description = "step2 + derivative from stored outputs, weight matrix sliced in backprop: the article's final code"
    derivative_from_output = True
