"""The GEMM floor: how long BLAS alone needs for the matrix products of a training run.

Per batch of b rows and layer n (inputs i_n, outputs o_n): the forward product (b x i_n) @ (i_n x o_n),
the kernel gradient (i_n x b) @ (b x o_n) and, above the input layer, the backward delta
(b x o_n) @ (o_n x i_n), with the operand layouts of numpy_mlp's optimized variant, in the run's own
process, dtype and BLAS. The floor is the fastest of the ways ``optimized`` can choose from (so that a
loop cannot look efficient by picking a slow one): whole batches with BLAS on all the run's threads or
on one, or row shares, one per thread, in chunks of ``Optimized.chunk_rows`` rows with one BLAS thread.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from numpy_mlp import MLPConfig
from numpy_mlp.variants.optimized import Optimized, row_shares


def _products(sizes, rows, dtype, rng):
    """Closures computing the products of ``rows`` rows into preallocated outputs."""
    products = []
    for n, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        a = rng.random((rows, n_in), dtype=dtype)
        kernel = rng.random((n_in, n_out), dtype=dtype)
        delta = rng.random((rows, n_out), dtype=dtype)
        z, grad, back = np.empty((rows, n_out), dtype), np.empty((n_in, n_out), dtype), np.empty_like(a)
        products.append(lambda a=a, k=kernel, z=z: np.matmul(a, k, out=z))
        products.append(lambda a=a, d=delta, g=grad: np.matmul(a.T, d, out=g))
        if n > 0:
            products.append(lambda d=delta, k=kernel, b=back: np.matmul(d, k.T, out=b))
    return products


def _blocks(rows: int, block_rows: int) -> list[tuple[int, int]]:
    """(size, count) of the blocks that cut ``rows`` rows into pieces of at most ``block_rows``."""
    full, last = divmod(rows, block_rows)
    return [(block_rows, full)] * (full > 0) + [(last, 1)] * (last > 0)


def _share_plans(sizes, batch_rows, dtype, rng, shares, chunk_rows):
    """Per thread, [(products of one chunk, number of such chunks)] for one batch."""
    return [
        [(_products(sizes, rows, dtype, rng), count) for rows, count in _blocks(hi - lo, chunk_rows)]
        for lo, hi in row_shares(batch_rows, shares)
    ]


def _run(plan) -> None:
    for products, count in plan:
        for _ in range(count):
            for product in products:
                product()


def _epoch_seconds(batches, pool, repeats: int) -> float:
    """Median over ``repeats`` of one epoch: ``batches`` is [(per-thread plans of one batch, count)]."""
    for shares, _ in batches:  # warm-up: BLAS threads started, operands in cache as in training
        _run(shares[0])
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        for shares, count in batches:
            for _ in range(count):
                futures = [pool.submit(_run, share) for share in shares[1:]]
                _run(shares[0])
                for future in futures:
                    future.result()
        timings.append(time.perf_counter() - start)
    return float(np.median(timings))


def gemm_floor_seconds(config: MLPConfig, batch_size: int, n_samples: int, epochs: int, threads: int = 1,
                       repeats: int = 3) -> float:
    """The fastest way found to run one epoch's products on ``threads`` cores (median over
    ``repeats``), times ``epochs``."""
    dtype = np.dtype(config.dtype)
    sizes = config.layer_sizes
    rng = np.random.default_rng(0)
    batches = _blocks(n_samples, batch_size)
    whole = [([[(_products(sizes, rows, dtype, rng), 1)]], count) for rows, count in batches]
    chunked = [(_share_plans(sizes, rows, dtype, rng, threads, Optimized.chunk_rows), count) for rows, count in batches]
    best = np.inf
    with ThreadPoolExecutor(max(threads - 1, 1)) as pool:
        ways = [(threads, whole), (1, chunked)] + [(1, whole)] * (threads > 1)  # (BLAS threads, products)
        for blas, plan in ways:
            with threadpool_limits(blas, user_api="blas"):
                best = min(best, _epoch_seconds(plan, pool, repeats))
    return best * epochs
