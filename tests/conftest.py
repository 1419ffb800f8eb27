"""Shared fixtures: the real MNIST from ../shared/data/mnist (or MNIST_DIR), loaded once per session; the
machine lock of timing studies kept per test."""
import os
from pathlib import Path

import pytest

from harness.locks import MACHINE_LOCK_VARIABLE

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


def mnist_dir() -> Path:
    return Path(os.environ.get("MNIST_DIR") or SHARED_MNIST)


@pytest.fixture(scope="session")
def mnist():
    """(x_train (60000, 784) uint8, y_train, x_test (10000, 784) uint8, y_test)."""
    folder = mnist_dir()
    if not folder.is_dir():
        pytest.skip(f"real MNIST not found at {folder} (set MNIST_DIR)")
    from harness.mnist import load_mnist

    return load_mnist(folder)


@pytest.fixture(scope="session")
def mnist_small(mnist):
    """The first 2,000 training and 1,000 test samples of the real MNIST."""
    x_train, y_train, x_test, y_test = mnist
    return x_train[:2000], y_train[:2000], x_test[:1000], y_test[:1000]


@pytest.fixture
def small_chunks(monkeypatch):
    """optimized with chunks, row shares and row threads small enough for tiny data (a batch of a few
    dozen rows) to use them all."""
    from numpy_mlp.variants.optimized import Optimized

    monkeypatch.setattr(Optimized, "chunk_rows", 7)
    monkeypatch.setattr(Optimized, "min_share_rows", 4)
    monkeypatch.setattr(Optimized, "single_thread_below_rows", 1)
    monkeypatch.setattr(Optimized, "row_threads_from_rows", 10)


@pytest.fixture(scope="session", autouse=True)
def session_machine_lock(tmp_path_factory):
    """The machine lock (harness.locks) in a folder of this test session, for the processes started by
    session- and module-wide fixtures (e.g. a Dask cluster's workers): tests never wait for, or turn away,
    a real study on this machine or another test session."""
    folder = tmp_path_factory.mktemp("machine-lock")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(MACHINE_LOCK_VARIABLE, str(folder))
        yield folder


@pytest.fixture(autouse=True)
def machine_lock_dir(tmp_path_factory, monkeypatch):
    """Each test its own machine lock (and the studies it starts, which inherit the variable): tests never
    block each other. A test of the lock itself starts its studies within one test, so they share it."""
    folder = tmp_path_factory.mktemp("machine-lock")
    monkeypatch.setenv(MACHINE_LOCK_VARIABLE, str(folder))
    return folder
