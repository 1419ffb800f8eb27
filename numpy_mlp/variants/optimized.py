"""The fastest NumPy training step we could write for this network; beyond the article.

Batch-major arrays in Keras' layout (kernels (inputs, outputs), separate biases), all weights,
gradients and steps in flat vectors (the kernels and biases are views), and every buffer allocated
once (``Workspace``). A batch's rows go through the network in in-cache chunks of ``chunk_rows``;
from ``row_threads_from_rows`` rows each core trains its own contiguous share of them, and the
shares' gradients are added in a fixed order, so the result does not depend on the threads' timing.
A overwrites Z (backward propagation needs only A), the output delta is fused with the loss, L2 with
the update, the input layer gets no delta, and for big enough batches the input scaling is folded
into the first layer. Why each of these, with the measurements: docs/where-the-time-goes.md.
"""
from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np

from ..activations import ACTIVATIONS
from ..config import MLPConfig
from ..losses import loss_function, output_delta_function
from .base import PhaseClock, Threads, Variant, Weights


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


def row_shares(rows: int, shares: int) -> list[tuple[int, int]]:
    """(start, stop) of ``shares`` contiguous, near-equal shares of ``rows`` rows, in order."""
    bounds = [rows * i // shares for i in range(shares + 1)]
    return list(zip(bounds, bounds[1:]))


class BatchPlan(NamedTuple):
    """What every chunk of one batch shares: whether the scaling is folded, and layer 0 as applied to X."""

    folds_scaling: bool
    layers: list  # [(kernel (in, out), bias (out,)), ...]


class Workspace:
    """One thread's buffers: a chunk of up to ``rows`` rows through the network; the targets and the
    outputs of its whole share of up to ``share_rows`` rows; the share's gradient."""

    def __init__(self, variant: "Optimized", rows: int, share_rows: int):
        sizes, dtype = variant.config.layer_sizes, variant.dtype
        self.rows, self.share_rows = rows, share_rows
        # rows as given (e.g. uint8), when they are converted here
        self.raw = np.empty((rows, sizes[0]), variant.x_train.dtype) if variant.scaler is not None else None
        # X and layer 0's delta get one row more: with the scaling folded, -mu and colsum(delta) (below)
        self.x = np.empty((rows + 1, sizes[0]), dtype)
        self.y = np.empty((share_rows, sizes[-1]), dtype)
        self.labels = np.empty(share_rows, variant.labels.dtype)
        self.outputs = np.empty((share_rows, sizes[-1]), dtype)  # A_L of the share, chunk after chunk
        self.a = [np.empty((rows, n), dtype) for n in sizes[1:]]  # A of layers 1..L
        self.delta = [np.empty((rows + (n == 0), size), dtype) for n, size in enumerate(sizes[1:])]
        self.derivative = [np.empty((rows, n), dtype) for n in sizes[1:-1]]
        self.ones = np.ones(rows, dtype)  # column sums as GEMVs: faster than np.sum(axis=0) here
        self.grad = np.empty_like(variant.params)  # this share's gradient (threads other than the first)
        self.partial = np.empty_like(variant.params)  # one chunk's gradient, added to the share's
        self.grad_views = FlatGradients(_views(self.grad, variant.shapes), self.grad)
        self.partial_views = FlatGradients(_views(self.partial, variant.shapes), self.partial)


class Optimized(Variant):
    name = "optimized"
    description = "beyond the article: batch-major, Keras layout, in-cache row chunks on all cores, fused updates"

    # Rows a thread pushes through the whole network at once: gather, forward, backward and the
    # chunk's gradient stay in cache (512 x 784 float32 is 1.6 MB).
    chunk_rows = 512
    # Below this many rows per batch the GEMMs are too small to split: OpenBLAS' threads spend more
    # time synchronizing than computing.
    single_thread_below_rows = 256
    # From this many rows per batch, each core trains its own share of the rows (one BLAS thread
    # each), so that the element-wise work, the gather and the conversion run on all cores too; below
    # it, handing shares to threads costs more than it saves and the products use all cores instead.
    row_threads_from_rows = 1000
    min_share_rows = 128  # no share gets fewer rows: an epoch's last, smaller batch may get fewer shares

    def __init__(self, config: MLPConfig, weights: Weights):
        self.hidden = ACTIVATIONS[config.hidden_activation]
        self.output = ACTIVATIONS[config.output_activation]
        self.loss_value = loss_function(config.output_activation, config.loss, onehot_targets=True)  # y is one-hot
        self.output_delta = output_delta_function(config.output_activation, config.loss)
        self.hidden_derivative = self.hidden.derivative_from_output
        self.workspaces: list[Workspace] = []
        self.row_threads, self.pool = 1, None
        super().__init__(config, weights)

    def threads(self, batch_size: int, available: int) -> Threads:
        if batch_size < self.single_thread_below_rows:
            return Threads(rows=1, blas=1)
        if batch_size >= self.row_threads_from_rows:
            return Threads(rows=available, blas=1)
        return Threads(rows=1, blas=available)

    @contextmanager
    def running(self, row_threads: int):
        self.row_threads = row_threads
        self.pool = ThreadPoolExecutor(row_threads - 1, "numpy_mlp-rows") if row_threads > 1 else None
        try:
            yield
        finally:
            if self.pool is not None:
                self.pool.shutdown()
            self.row_threads, self.pool = 1, None

    def set_weights(self, weights: Weights) -> None:
        self.shapes = [k.shape for k, _ in weights] + [b.shape for _, b in weights]  # kernels, then biases
        self.n_kernel_weights = sum(k.size for k, _ in weights)
        self.params = np.concatenate([np.ravel(k) for k, _ in weights] + [np.ravel(b) for _, b in weights])
        self.params = self.params.astype(self.dtype)  # (n_weights,)
        views = _views(self.params, self.shapes)
        self.kernels, self.biases = views[: len(weights)], views[len(weights) :]  # (in, out), (out,)
        step, previous_step = np.zeros_like(self.params), np.zeros_like(self.params)
        self.step_grads = FlatGradients(_views(step, self.shapes), step)  # this batch's gradient, then its step
        self.previous_grads = FlatGradients(_views(previous_step, self.shapes), previous_step)
        self.layers = list(zip(self.kernels, self.biases))
        self.scratch = np.empty_like(self.params)
        sizes = self.config.layer_sizes
        self.folded_kernel = np.empty((sizes[0], sizes[1]), self.dtype)
        self.folded_bias = np.empty(sizes[1], self.dtype)
        self.workspaces = []

    def get_weights(self) -> Weights:
        return [(k.copy(), b.copy()) for k, b in zip(self.kernels, self.biases)]

    def bind(self, x, y_onehot, labels, scaler=None) -> None:
        self.scaler = scaler.astype(self.dtype) if scaler is not None else None
        if self.scaler is None:
            self.x_train = np.ascontiguousarray(x, dtype=self.dtype)  # no copy when x is already right
        else:
            self.x_train = np.ascontiguousarray(x)  # raw, e.g. uint8: scaled per chunk
            self.scale_column = self.scaler.scale[:, None]  # (inputs, 1)
            self.shifted_scale = self.scaler.shift * self.scaler.scale  # (inputs,) mu s
            self.negative_shift = -self.scaler.shift  # (inputs,) -mu
        self.y_train = np.ascontiguousarray(y_onehot, dtype=self.dtype)
        self.labels = labels
        self.workspaces = []

    def _workspace(self, n: int, rows: int, share_rows: int) -> Workspace:
        """Thread n's workspace, for chunks of at least ``rows`` rows in shares of ``share_rows``."""
        while len(self.workspaces) <= n:
            self.workspaces.append(Workspace(self, rows, share_rows))
        if self.workspaces[n].rows < rows or self.workspaces[n].share_rows < share_rows:
            self.workspaces[n] = Workspace(self, rows, share_rows)
        return self.workspaces[n]

    def _plan(self, m: int) -> BatchPlan:
        """Layer 0 as it applies to a batch of m rows: with the input scaling folded in or not."""
        if self.scaler is None or m < 3 * self.config.layer_sizes[1]:
            return BatchPlan(False, self.layers)
        kernel = np.multiply(self.kernels[0], self.scale_column, out=self.folded_kernel)  # (inputs, out_0) s W
        shift = np.matmul(self.shifted_scale, self.kernels[0], out=self.folded_bias)  # (out_0,) (mu s) W
        return BatchPlan(True, [(kernel, np.subtract(self.biases[0], shift, out=shift))] + self.layers[1:])

    # -- the article's phases, for one chunk of rows ------------------------------------------------

    def _targets(self, idx, ws: Workspace):
        """Y (m, outputs) and labels (m,) of the rows ``idx``."""
        m = len(idx)
        y = np.take(self.y_train, idx, axis=0, out=ws.y[:m], mode="clip")
        return y, np.take(self.labels, idx, out=ws.labels[:m], mode="clip")

    def _inputs(self, idx, ws: Workspace, plan: BatchPlan):
        """X (m, inputs) of the rows ``idx``, as layer 0 of ``plan`` takes it."""
        m = len(idx)
        x = ws.x[:m]  # (m, inputs)
        if self.scaler is None:
            np.take(self.x_train, idx, axis=0, out=x, mode="clip")
        else:
            raw = np.take(self.x_train, idx, axis=0, out=ws.raw[:m], mode="clip")  # (m, inputs), e.g. uint8
            if plan.folds_scaling:
                np.copyto(x, raw)  # unscaled, as float: layer 0 applies the scaling
                ws.x[m] = self.negative_shift  # the extra row for the kernel gradient's correction
            else:
                self.scaler.transform(raw, out=x)
        return x

    def _forward(self, x, ws: Workspace, plan: BatchPlan, outputs):
        """Returns the list [X, A_1, ..., A_L]: everything backward propagation needs; A_L goes to
        ``outputs`` (m, outputs)."""
        a, m = x, len(x)  # (m, inputs)
        activations = [a]
        last = len(plan.layers) - 1
        for n, (kernel, bias) in enumerate(plan.layers):
            out = outputs if n == last else ws.a[n][:m]
            z = np.matmul(a, kernel, out=out)  # (m, out_n)
            z += bias
            a = (self.hidden if n < last else self.output).forward(z, out=z)  # A overwrites Z in place
            activations.append(a)
        return activations

    def _data_cost(self, outputs, y, labels) -> tuple[float, int]:
        """Loss (regularization excluded) and correct count of outputs A_L (m, outputs)."""
        return self.loss_value(outputs, y), int(np.count_nonzero(outputs.argmax(axis=1) == labels))

    def _regularization_cost(self) -> float:
        cost = 0.0
        kernel_weights = self.params[: self.n_kernel_weights]  # every kernel, one contiguous vector
        if self.config.l2 > 0:
            cost += 0.5 * self.config.l2 * float(np.vdot(kernel_weights, kernel_weights))
        if self.config.l1 > 0:
            cost += self.config.l1 * float(np.abs(kernel_weights).sum())
        return cost

    def _backpropagate(self, batch, activations, ws: Workspace, grads: list, plan: BatchPlan) -> None:
        """X^T delta and column sums of delta per layer into ``grads``; with the scaling folded, layer 0's
        kernel gradient is X^T delta - mu colsum(delta), still to be multiplied by s (``_unfold_gradient``)."""
        y = batch[1]
        m = y.shape[0]
        n_layers = len(self.kernels)
        kernel_grads, bias_grads = grads[:n_layers], grads[n_layers:]
        delta = self.output_delta(activations[-1], y, out=ws.delta[-1][:m])  # (m, outputs)
        for n in reversed(range(n_layers)):
            a_in = activations[n]  # (m, in_n)
            np.matmul(ws.ones[:m], delta, out=bias_grads[n])  # (out_n,) column sums of delta
            if n == 0:
                break  # the input layer needs no delta
            np.matmul(a_in.T, delta, out=kernel_grads[n])  # (in_n, out_n)
            back = np.matmul(delta, self.kernels[n].T, out=ws.delta[n - 1][:m])  # (m, in_n)
            back *= self.hidden_derivative(a_in, out=ws.derivative[n - 1][:m])
            delta = back
        if plan.folds_scaling:
            # [X; -mu]^T [delta; colsum(delta)]: the fold's correction as one more row of the same
            # product, instead of an outer product and a subtraction over the whole kernel per batch
            ws.delta[0][m] = bias_grads[0]
            np.matmul(ws.x[: m + 1].T, ws.delta[0][: m + 1], out=kernel_grads[0])  # (inputs, out_0)
        else:
            np.matmul(activations[0].T, delta, out=kernel_grads[0])  # (inputs, out_0)

    def _unfold_gradient(self, grads: list, plan: BatchPlan) -> None:
        """With the scaling folded, X was unscaled: dK_0 = s (X^T delta - mu colsum(delta)); the part in
        brackets comes from ``_backpropagate``. Linear in the rows: applied once to a sum of chunks."""
        if plan.folds_scaling:
            grads[0] *= self.scale_column  # (inputs, out_0)

    def _update(self, grads: FlatGradients, lr):
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
            self.params -= np.multiply(self.previous_grads.flat, cfg.momentum, out=self.scratch)
        # this step becomes the previous one; its old buffer takes the next gradient
        self.previous_grads, self.step_grads = self.step_grads, self.previous_grads

    # -- one batch: row shares on threads, chunks within a share ----------------------------------

    def _train_rows(self, idx, ws: Workspace, grads: FlatGradients, plan: BatchPlan, phases=None):
        """Sum of the loss, correct count and (raw) gradient over the rows ``idx``, chunk by chunk; the
        loss and the accuracy once over the share's outputs (their dozen NumPy calls cost the same
        whatever the rows)."""
        clock = PhaseClock(phases)
        y, labels = self._targets(idx, ws)  # (share, outputs), (share,)
        outputs = ws.outputs[: len(idx)]  # (share, outputs)
        for start in range(0, len(idx), self.chunk_rows):
            rows = slice(start, start + self.chunk_rows)
            chunk = (self._inputs(idx[rows], ws, plan), y[rows], labels[rows])
            clock.lap("prepare")
            activations = self._forward(chunk[0], ws, plan, outputs[rows])
            clock.lap("forward")
            if start == 0:
                self._backpropagate(chunk, activations, ws, grads, plan)
            else:
                self._backpropagate(chunk, activations, ws, ws.partial_views, plan)
                grads.flat += ws.partial
            clock.lap("backward")
        loss, n_correct = self._data_cost(outputs, y, labels)
        clock.lap("cost")
        return loss, n_correct

    def train_batch(self, idx, lr, phases=None):
        """The batch's rows in ``row_threads`` contiguous shares, each summed by one thread in chunks;
        the shares are added in a fixed order, so the result does not depend on the threads' timing.
        With ``phases``, the shares run one after the other on this thread (the same arithmetic)."""
        m = len(idx)
        plan = self._plan(m)
        n_shares = max(1, min(self.row_threads, m // self.min_share_rows))
        work = []  # (rows, workspace, where the share's gradient goes)
        for n, (lo, hi) in enumerate(row_shares(m, n_shares)):
            ws = self._workspace(n, min(hi - lo, self.chunk_rows), hi - lo)
            work.append((idx[lo:hi], ws, self.step_grads if n == 0 else ws.grad_views))
        if phases is None and n_shares > 1:
            # workers run in a copy of this thread's context: NumPy's errstate is a context variable
            futures = [
                self.pool.submit(contextvars.copy_context().run, self._train_rows, *share, plan) for share in work[1:]
            ]
            results = [self._train_rows(*work[0], plan)] + [f.result() for f in futures]
        else:
            results = [self._train_rows(*share, plan, phases) for share in work]
        clock = PhaseClock(phases)
        loss = sum(r[0] for r in results) + self._regularization_cost()  # of the weights this batch saw
        clock.lap("cost")
        grads = work[0][2]
        for _, _, share_grads in work[1:]:
            grads.flat += share_grads.flat
        self._unfold_gradient(grads, plan)
        clock.lap("backward")
        self._update(grads, lr)
        clock.lap("update")
        return loss, sum(r[1] for r in results)
