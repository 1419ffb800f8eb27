"""The fastest NumPy training step we could write for this network; beyond the article.

What makes it fast (each measured with the per-phase timing and py-spy, see the README):
- batch-major layout, kernels (inputs, outputs) and separate bias vectors: Keras' layout, so no
  bias rows or columns are ever inserted, and the big products are plain row-major GEMMs;
- every per-batch array lives in a buffer allocated once per batch size; activations, derivatives
  and the update run in place (``out=``), so a batch allocates almost nothing;
- Z is overwritten by A = act(Z): backward propagation needs only A (D = A (1 - A) for sigmoid);
- the output delta is fused with the loss (A - Y for LogLoss), regularization is fused into the
  weight update, and the input layer gets no delta;
- batches are gathered with ``np.take(..., out=)`` from the training set as given: no per-epoch
  copy of the whole training set; given raw uint8 pixels and a scaler, it gathers uint8 rows in
  blocks that stay in cache and converts them there (gathering pre-scaled float32 rows moves four
  times the bytes and is about twice as slow);
- from batch size ``3 * hidden units`` up, the input scaling is folded into the first layer instead
  of being applied to every pixel: with x' = (x - mu) s, x' W + b = x (s W) + (b - (mu s) W) and the
  kernel gradient is s (x^T delta - mu colsum(delta)). Each pass over a (batch, 784) float32 array
  costs about as much as the whole uint8 -> float32 conversion (profiled: scaling a batch took twice
  the time of converting it, 0.057 against 0.027 s per epoch at batch 500), while the fold costs a
  few passes over the (784, hidden) kernel per batch, which only pays for large enough batches.
"""
from __future__ import annotations

import numpy as np

from ..activations import get_activation
from ..config import MLPConfig
from ..losses import loss_function, output_delta_function
from .base import Variant, Weights


SCALE_BLOCK_ROWS = 256  # 256 x 784 uint8 + float32: about 1 MB, within L2


class Optimized(Variant):
    name = "optimized"
    description = "beyond the article: batch-major, Keras layout, preallocated buffers, in-place ufuncs, fused updates"

    def __init__(self, config: MLPConfig, weights: Weights):
        self.hidden = get_activation(config.hidden_activation)
        self.output = get_activation(config.output_activation)
        self.loss_value = loss_function(config.output_activation, config.loss)
        self.output_delta = output_delta_function(config.output_activation, config.loss)
        self.hidden_derivative = self.hidden.derivative_from_output
        self.capacity = 0
        super().__init__(config, weights)

    def set_weights(self, weights: Weights) -> None:
        self.kernels = [np.array(k, dtype=self.dtype, order="C") for k, _ in weights]  # (in, out)
        self.biases = [np.array(b, dtype=self.dtype) for _, b in weights]  # (out,)
        params = self.kernels + self.biases
        self.previous_step = [np.zeros_like(p) for p in params]
        self.step_buffers = [np.empty_like(p) for p in params]
        self.scratch = [np.empty_like(p) for p in params]

    def get_weights(self) -> Weights:
        return [(k.copy(), b.copy()) for k, b in zip(self.kernels, self.biases)]

    def bind(self, x, y_onehot, labels, scaler=None) -> None:
        self.scaler = scaler.astype(self.dtype) if scaler is not None else None
        if self.scaler is None:
            self.x_train = np.ascontiguousarray(x, dtype=self.dtype)  # no copy when x is already right
        else:
            self.x_train = np.ascontiguousarray(x)  # raw, e.g. uint8: scaled per batch
            self.scale_column = self.scaler.scale[:, None]  # (inputs, 1)
            self.shifted_scale = self.scaler.shift * self.scaler.scale  # (inputs,) mu s
        self.y_train = np.ascontiguousarray(y_onehot, dtype=self.dtype)
        self.labels = labels

    def _ensure_buffers(self, batch_size: int) -> None:
        if batch_size <= self.capacity:
            return
        sizes = self.config.layer_sizes
        self.x_buf = np.empty((batch_size, sizes[0]), self.dtype)
        self.raw_buf = np.empty((min(batch_size, SCALE_BLOCK_ROWS), sizes[0]), self.x_train.dtype)
        self.y_buf = np.empty((batch_size, sizes[-1]), self.dtype)
        self.a_buf = [np.empty((batch_size, n), self.dtype) for n in sizes[1:]]  # A of layers 1..L
        self.delta_buf = [np.empty((batch_size, n), self.dtype) for n in sizes[1:]]
        self.derivative_buf = [np.empty((batch_size, n), self.dtype) for n in sizes[1:-1]]
        self.folded_kernel = np.empty((sizes[0], sizes[1]), self.dtype)
        self.folded_bias = np.empty(sizes[1], self.dtype)
        self.capacity = batch_size

    def _folds_scaling(self, m: int) -> bool:
        return self.scaler is not None and m >= 3 * self.config.layer_sizes[1]

    def prepare(self, idx):
        m = len(idx)
        self._ensure_buffers(m)
        x = self.x_buf[:m]  # (m, inputs)
        if self.scaler is None:
            np.take(self.x_train, idx, axis=0, out=x)
        else:
            fold = self._folds_scaling(m)
            # in blocks of rows that stay in cache between the gather and the conversion
            for start in range(0, m, SCALE_BLOCK_ROWS):
                rows = idx[start : start + SCALE_BLOCK_ROWS]
                raw = np.take(self.x_train, rows, axis=0, out=self.raw_buf[: len(rows)])  # e.g. uint8
                block = x[start : start + len(rows)]
                if fold:
                    np.copyto(block, raw)  # unscaled, as float: layer 0 applies the scaling
                else:
                    self.scaler.transform(raw, out=block)
        y = np.take(self.y_train, idx, axis=0, out=self.y_buf[:m])  # (m, outputs)
        return x, y, self.labels[idx]

    def _first_layer(self, m: int):
        """Layer 0's kernel and bias as they apply to this batch's X: with the scaling folded in or not."""
        if not self._folds_scaling(m):
            return self.kernels[0], self.biases[0]
        kernel = np.multiply(self.kernels[0], self.scale_column, out=self.folded_kernel)  # (inputs, out_0) s W
        shift = np.matmul(self.shifted_scale, self.kernels[0], out=self.folded_bias)  # (out_0,) (mu s) W
        return kernel, np.subtract(self.biases[0], shift, out=shift)

    def forward(self, batch):
        """Returns the list [X, A_1, ..., A_L]: everything backward propagation needs."""
        a = batch[0]
        m = a.shape[0]
        activations = [a]
        last = len(self.kernels) - 1
        layers = [self._first_layer(m)] + list(zip(self.kernels[1:], self.biases[1:]))
        for n, (kernel, bias) in enumerate(layers):
            z = np.matmul(a, kernel, out=self.a_buf[n][:m])  # (m, out_n)
            z += bias
            if n < last:
                a = self.hidden.forward(z, out=z)  # A overwrites Z in place
            else:
                a = self.output.forward(z, out=z)
            activations.append(a)
        return activations

    def cost(self, batch, activations):
        _, y, labels = batch
        a_out = activations[-1]  # (m, outputs)
        loss = self.loss_value(a_out, y) + self._regularization_cost()
        n_correct = int(np.count_nonzero(a_out.argmax(axis=1) == labels))
        return loss, n_correct

    def _regularization_cost(self) -> float:
        cost = 0.0
        if self.config.l2 > 0:
            cost += 0.5 * self.config.l2 * sum(float(np.vdot(k, k)) for k in self.kernels)
        if self.config.l1 > 0:
            cost += self.config.l1 * sum(float(np.abs(k).sum()) for k in self.kernels)
        return cost

    def backward(self, batch, activations):
        """Gradients [dK_0, ..., dK_L-1, db_0, ..., db_L-1] of the summed loss, regularization excluded
        (it is fused into ``update``)."""
        y = batch[1]
        m = y.shape[0]
        n_layers = len(self.kernels)
        kernel_grads, bias_grads = [None] * n_layers, [None] * n_layers
        delta = self.output_delta(activations[-1], y, out=self.delta_buf[-1][:m])  # (m, outputs)
        for n in reversed(range(n_layers)):
            a_in = activations[n]  # (m, in_n)
            kernel_grads[n] = np.matmul(a_in.T, delta, out=self.step_buffers[n])  # (in_n, out_n)
            bias_grads[n] = np.sum(delta, axis=0, out=self.step_buffers[n_layers + n])  # (out_n,)
            if n == 0:
                if self._folds_scaling(m):  # X was not scaled: s (X^T delta - mu colsum(delta))
                    kernel_grads[0] -= np.multiply.outer(self.scaler.shift, bias_grads[0], out=self.scratch[0])
                    kernel_grads[0] *= self.scale_column
                break  # the input layer needs no delta
            back = np.matmul(delta, self.kernels[n].T, out=self.delta_buf[n - 1][:m])  # (m, in_n)
            back *= self.hidden_derivative(a_in, out=self.derivative_buf[n - 1][:m])
            delta = back
        return kernel_grads + bias_grads

    def update(self, grads, lr):
        """step = lr * (grad + l2 W + l1 sign W); W -= step + momentum * previous step, all in place."""
        cfg = self.config
        n_layers = len(self.kernels)
        params = self.kernels + self.biases
        for i, (param, grad) in enumerate(zip(params, grads)):
            scratch = self.scratch[i]
            if i < n_layers:  # kernels only: the bias weights are not regularized
                if cfg.l2 > 0:
                    grad += np.multiply(param, cfg.l2, out=scratch)
                if cfg.l1 > 0:
                    grad += np.multiply(np.sign(param, out=scratch), cfg.l1, out=scratch)
            grad *= lr  # grad is now this batch's step
            param -= grad
            if cfg.momentum > 0:
                param -= np.multiply(self.previous_step[i], cfg.momentum, out=scratch)
            # this step becomes the previous one; its old buffer takes the next gradient
            self.previous_step[i], self.step_buffers[i] = grad, self.previous_step[i]
