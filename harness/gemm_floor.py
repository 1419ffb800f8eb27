"""The GEMM floor: how long BLAS alone needs for the matrix products of a training run.

One batch of the network needs, per layer n with inputs i_n and outputs o_n: the forward product
(b x i_n) @ (i_n x o_n), the kernel gradient (i_n x b) @ (b x o_n) and, above the input layer, the
backward delta (b x o_n) @ (o_n x i_n). The floor times exactly these, with the operand layouts of
``numpy_mlp``'s optimized variant, in the same process, dtype and BLAS as the run it belongs to.
"""
from __future__ import annotations

import time

import numpy as np

from numpy_mlp import MLPConfig


def _batch_products(sizes, batch_size, dtype, rng):
    """Closures computing one batch's products into preallocated outputs."""
    products = []
    for n, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        a = rng.random((batch_size, n_in), dtype=dtype)
        kernel = rng.random((n_in, n_out), dtype=dtype)
        delta = rng.random((batch_size, n_out), dtype=dtype)
        z, grad, back = np.empty((batch_size, n_out), dtype), np.empty((n_in, n_out), dtype), np.empty_like(a)
        products.append(lambda a=a, k=kernel, z=z: np.matmul(a, k, out=z))
        products.append(lambda a=a, d=delta, g=grad: np.matmul(a.T, d, out=g))
        if n > 0:
            products.append(lambda d=delta, k=kernel, b=back: np.matmul(d, k.T, out=b))
    return products


def gemm_floor_seconds(config: MLPConfig, batch_size: int, n_samples: int, epochs: int, repeats: int = 3) -> float:
    """Median over ``repeats`` of one epoch's products, times ``epochs``."""
    dtype = np.dtype(config.dtype)
    rng = np.random.default_rng(0)
    n_full, last = divmod(n_samples, batch_size)
    plan = [(_batch_products(config.layer_sizes, batch_size, dtype, rng), n_full)]
    if last:
        plan.append((_batch_products(config.layer_sizes, last, dtype, rng), 1))
    for products, _ in plan:  # warm-up: BLAS threads started, operands in cache as in training
        for product in products:
            product()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        for products, count in plan:
            for _ in range(count):
                for product in products:
                    product()
        timings.append(time.perf_counter() - start)
    return float(np.median(timings)) * epochs
