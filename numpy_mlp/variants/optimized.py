"""The fastest NumPy training step we could write for this network; beyond the article.

What makes it fast (each measured with the per-phase timing, cProfile and line_profiler):
- batch-major layout, kernels (inputs, outputs) and separate bias vectors: Keras' layout, so no
  bias rows or columns are ever inserted, and the big products are plain row-major GEMMs;
- every per-batch array lives in a buffer allocated once per batch size; activations, derivatives
  and the update run in place (``out=``), so a batch allocates almost nothing;
- Z is overwritten by A = act(Z): backward propagation needs only A (D = A (1 - A) for sigmoid);
- the output delta is fused with the loss (A - Y for LogLoss), regularization is fused into the
  weight update, and the input layer gets no delta;
- at small batches most of a batch's time is fixed cost per call, not arithmetic (line_profiler at
  batch 32: about 400 us per batch, of which the weight update over all 57,000 weights ~80 us and
  each tiny GEMM ~25 us). So all weights live in one flat vector (kernels and biases are views into
  it), and so do the gradients and the previous step: the update and the regularization cost are
  a handful of ufunc calls for the whole network instead of a handful per parameter array; the
  bias gradients (column sums of delta) are GEMVs with a vector of ones, 4 us against 19 us for
  ``np.sum(axis=0)``. Together: 11 % less time per epoch at batch 32 and 128, none lost at 500;
- below 256 rows per batch it trains on one BLAS thread, whatever it may use (``blas_threads``):
  splitting GEMMs that small costs more synchronization than it saves;
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
# Below this many rows per batch the GEMMs are too small to split: OpenBLAS' threads spend more time
# synchronizing than computing. Measured (sweep preset, 2 cores, 5 epochs): one thread against two
# took 3.3 s against 6.6 s at batch 32 and 2.1 s against 2.5 s at batch 128, but 1.6 s against
# 1.5 s at batch 500.
SINGLE_THREAD_BELOW_ROWS = 256


class FlatGradients(list):
    """The gradient arrays [dK_0, ..., dK_L-1, db_0, ..., db_L-1], views into one flat vector ``flat``."""

    def __init__(self, views, flat: np.ndarray):
        super().__init__(views)
        self.flat = flat


def _views(flat: np.ndarray, shapes) -> list[np.ndarray]:
    """Consecutive C-ordered views of ``flat`` with the given shapes."""
    views, offset = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        views.append(flat[offset : offset + size].reshape(shape))
        offset += size
    return views


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

    def blas_threads(self, batch_size: int, available: int) -> int:
        return 1 if batch_size < SINGLE_THREAD_BELOW_ROWS else available

    def set_weights(self, weights: Weights) -> None:
        self.shapes = [k.shape for k, _ in weights] + [b.shape for _, b in weights]  # kernels, then biases
        self.n_kernel_weights = n_kernel_weights = sum(k.size for k, _ in weights)
        self.params = np.concatenate([np.ravel(k) for k, _ in weights] + [np.ravel(b) for _, b in weights])
        self.params = self.params.astype(self.dtype)  # (n_weights,)
        views = _views(self.params, self.shapes)
        self.kernels, self.biases = views[: len(weights)], views[len(weights) :]  # (in, out), (out,)
        self.step = np.zeros_like(self.params)  # this batch's gradient, then its step
        self.previous_step = np.zeros_like(self.params)
        self.step_views, self.previous_views = _views(self.step, self.shapes), _views(self.previous_step, self.shapes)
        self.scratch = np.empty_like(self.params)

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
        self.ones = np.ones(batch_size, self.dtype)  # column sums as GEMVs: faster than np.sum(axis=0) here
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
        kernel_weights = self.params[: self.n_kernel_weights]  # every kernel, one contiguous vector
        if self.config.l2 > 0:
            cost += 0.5 * self.config.l2 * float(np.vdot(kernel_weights, kernel_weights))
        if self.config.l1 > 0:
            cost += self.config.l1 * float(np.abs(kernel_weights).sum())
        return cost

    def backward(self, batch, activations):
        """Gradients [dK_0, ..., dK_L-1, db_0, ..., db_L-1] of the summed loss, regularization excluded
        (it is fused into ``update``), as a FlatGradients."""
        y = batch[1]
        m = y.shape[0]
        n_layers = len(self.kernels)
        grads = self.step_views
        kernel_grads, bias_grads = grads[:n_layers], grads[n_layers:]
        delta = self.output_delta(activations[-1], y, out=self.delta_buf[-1][:m])  # (m, outputs)
        for n in reversed(range(n_layers)):
            a_in = activations[n]  # (m, in_n)
            np.matmul(a_in.T, delta, out=kernel_grads[n])  # (in_n, out_n)
            np.matmul(self.ones[:m], delta, out=bias_grads[n])  # (out_n,) column sums of delta
            if n == 0:
                if self._folds_scaling(m):  # X was not scaled: s (X^T delta - mu colsum(delta))
                    outer = self.scratch[: kernel_grads[0].size].reshape(kernel_grads[0].shape)
                    kernel_grads[0] -= np.multiply.outer(self.scaler.shift, bias_grads[0], out=outer)
                    kernel_grads[0] *= self.scale_column
                break  # the input layer needs no delta
            back = np.matmul(delta, self.kernels[n].T, out=self.delta_buf[n - 1][:m])  # (m, in_n)
            back *= self.hidden_derivative(a_in, out=self.derivative_buf[n - 1][:m])
            delta = back
        return FlatGradients(grads, self.step)

    def update(self, grads: FlatGradients, lr):
        """step = lr * (grad + l2 W + l1 sign W); W -= step + momentum * previous step, on the flat vectors."""
        cfg = self.config
        step = grads.flat  # (n_weights,)
        nk = self.n_kernel_weights  # the kernels come first; the bias weights are not regularized
        if cfg.l2 > 0:
            step[:nk] += np.multiply(self.params[:nk], cfg.l2, out=self.scratch[:nk])
        if cfg.l1 > 0:
            step[:nk] += np.multiply(np.sign(self.params[:nk], out=self.scratch[:nk]), cfg.l1, out=self.scratch[:nk])
        step *= lr
        self.params -= step
        if cfg.momentum > 0:
            self.params -= np.multiply(self.previous_step, cfg.momentum, out=self.scratch)
        # this step becomes the previous one; its old buffer takes the next gradient
        self.previous_step, self.step = step, self.previous_step
        self.previous_views, self.step_views = self.step_views, self.previous_views
