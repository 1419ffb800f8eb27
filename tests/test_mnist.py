"""Tests of harness.mnist on the real MNIST (MNIST_DIR): sources, lookup order, errors naming the file."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from harness.mnist import MNIST_FILES, MnistError, load_mnist
from numpy_mlp import InputScaler

from conftest import mnist_dir

ROOT = Path(__file__).resolve().parents[1]
REAL_MNIST = mnist_dir()  # read before isolated_env removes MNIST_DIR
NAMES = list(MNIST_FILES)  # train-images, train-labels, t10k-images, t10k-labels
LABELS = "t10k-labels-idx1-ubyte"  # the smallest file, for the download tests


# ------------------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    missing = [n for n in NAMES if not (REAL_MNIST / f"{n}.gz").is_file()]
    if missing:
        pytest.skip(f"real MNIST not found: {REAL_MNIST} lacks {', '.join(m + '.gz' for m in missing)} (set MNIST_DIR)")
    return REAL_MNIST


@pytest.fixture(scope="session")
def raw(shared_dir) -> dict[str, bytes]:
    """The decompressed IDX bytes of each file."""
    return {n: gzip.decompress((shared_dir / f"{n}.gz").read_bytes()) for n in NAMES}


@pytest.fixture(scope="session")
def reference(raw) -> tuple[np.ndarray, ...]:
    """x_train, y_train, x_test, y_test parsed independently of harness.mnist."""
    return tuple(np.frombuffer(raw[n], np.uint8, offset=4 + 4 * len(MNIST_FILES[n].shape))
                 .reshape(MNIST_FILES[n].shape[0], -1).squeeze() for n in NAMES)


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """Never touch the user's caches or the network's proxies; no MNIST_DIR unless a test sets it."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("KERAS_HOME", str(home / ".keras"))
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return home


def make_folder(folder: Path, shared_dir: Path, files: dict[str, bytes] | None = None, skip=()) -> Path:
    """A folder of MNIST files: ``files`` (file name -> bytes) written, the rest symlinked .gz."""
    folder.mkdir(parents=True, exist_ok=True)
    files = files or {}
    for n in NAMES:
        if n not in skip and n not in files and f"{n}.gz" not in files:
            (folder / f"{n}.gz").symlink_to(shared_dir / f"{n}.gz")
    for fname, data in files.items():
        (folder / fname).write_bytes(data)
    return folder


def assert_same(loaded, reference) -> None:
    for got, want in zip(loaded, reference, strict=True):
        assert got.dtype == np.uint8 and got.flags.c_contiguous and got.flags.writeable
        np.testing.assert_array_equal(got, want)


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def save_npz(path: Path, reference, **replace) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_test, y_test = reference
    arrays = dict(x_train=x_train.reshape(-1, 28, 28), y_train=y_train,
                  x_test=x_test.reshape(-1, 28, 28), y_test=y_test)
    np.savez(path, **(arrays | replace))
    return path


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------------
# good sources


def test_load_real_mnist_from_env(monkeypatch, shared_dir, reference):
    monkeypatch.setenv("MNIST_DIR", str(shared_dir))
    x_train, y_train, x_test, y_test = data = load_mnist(download=False)
    assert x_train.shape == (60000, 784) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 784) and y_test.shape == (10000,)
    assert set(np.unique(y_train)) == set(range(10)) == set(np.unique(y_test))
    assert_same(data, reference)


def test_load_raw_idx_copy(tmp_path, shared_dir, raw, reference):
    folder = make_folder(tmp_path / "raw", shared_dir, files={n: raw[n] for n in NAMES})
    assert not list(folder.glob("*.gz"))
    assert_same(load_mnist(folder), reference)


def test_load_mnist_npz(tmp_path, reference):
    npz = save_npz(tmp_path / "npz" / "mnist.npz", reference)
    assert_same(load_mnist(npz.parent), reference)  # the folder holding it
    assert_same(load_mnist(npz), reference)  # or the file itself


def test_project_cache_then_keras_cache(tmp_path, isolated_env, shared_dir, reference):
    cache = make_folder(tmp_path / "cache", shared_dir, skip={LABELS})
    keras_npz = save_npz(isolated_env / ".keras" / "datasets" / "mnist.npz", reference)
    assert_same(load_mnist(cache_dir=cache, download=False), reference)  # incomplete cache: Keras' npz
    keras_npz.unlink()
    (cache / f"{LABELS}.gz").symlink_to(shared_dir / f"{LABELS}.gz")
    assert_same(load_mnist(cache_dir=cache, download=False), reference)  # complete cache


# ------------------------------------------------------------------------------------------------
# bad sources: one clear MnistError naming the file


def _flip_pixel(data: bytes) -> bytes:
    b = bytearray(data)
    b[16 + 28 * 14 + 14] ^= 0xFF
    return bytes(b)


def _set_dims(data: bytes, dims) -> bytes:
    return data[:4] + np.asarray(dims, ">u4").tobytes() + data[4 + 4 * len(dims):]


# (file whose copy is bad, how its bytes are made from the decompressed original, gzip it?, text)
BAD_FILES = {
    "garbage": (LABELS, lambda d: b"<html>not found</html>", False, "not an MNIST IDX file"),
    "wrong_magic": (LABELS, lambda d: b"\x00\x00\x08\x03" + d[4:], False,
                    "magic number 0x00000803, expected 0x00000801"),
    "truncated": (LABELS, lambda d: d[:-100], False, "truncated: expected 10000 bytes of data, found 9900"),
    "extra_bytes": (LABELS, lambda d: d + b"\x00\x00", False, "extra bytes: expected 10000 bytes of data, found 10002"),
    "wrong_shape": ("t10k-images-idx3-ubyte", lambda d: _set_dims(d, (10000, 14, 56)), False,
                    "wrong shape (10000, 14, 56) in the header, expected (10000, 28, 28)"),
    "wrong_checksum": ("t10k-images-idx3-ubyte", _flip_pixel, False,
                       "SHA-256 mismatch for t10k-images-idx3-ubyte: expected 0fa7898d509279e4"),
    "label_10_gz": ("train-labels-idx1-ubyte", lambda d: d[:-1] + b"\x0a", True,
                    "SHA-256 mismatch for train-labels-idx1-ubyte"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_file(case, tmp_path, shared_dir, raw):
    name, mutate, gz, text = BAD_FILES[case]
    data = mutate(raw[name])
    fname = f"{name}.gz" if gz else name
    folder = make_folder(tmp_path / "bad", shared_dir, files={fname: gzip.compress(data, 1) if gz else data})
    with pytest.raises(MnistError) as e:
        load_mnist(folder, download=False)
    msg = one_line(e)
    assert str(folder / fname) in msg and text in msg


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_gzip(damage, tmp_path, shared_dir):
    gz = bytearray((shared_dir / f"{LABELS}.gz").read_bytes())
    if damage == "truncated":
        gz = gz[: len(gz) // 2]
    else:
        gz[100:400] = bytes(300)
    folder = make_folder(tmp_path / "bad", shared_dir, files={f"{LABELS}.gz": bytes(gz)})
    with pytest.raises(MnistError) as e:
        load_mnist(folder)
    msg = one_line(e)
    assert str(folder / f"{LABELS}.gz") in msg and "corrupt gzip" in msg


def test_missing_file(tmp_path, shared_dir):
    folder = make_folder(tmp_path / "partial", shared_dir, skip={"train-labels-idx1-ubyte"})
    with pytest.raises(MnistError) as e:
        load_mnist(folder)
    assert str(folder / "train-labels-idx1-ubyte") in one_line(e)


def test_bad_npz(tmp_path, reference):
    bad = reference[2].copy()
    bad[0, 300] ^= 1
    path = save_npz(tmp_path / "mnist.npz", reference, x_test=bad)
    with pytest.raises(MnistError) as e:
        load_mnist(tmp_path)
    assert f"{path} [x_test]" in one_line(e) and "SHA-256 mismatch" in str(e.value)
    save_npz(path, reference, y_train=reference[1].astype(np.int64))
    with pytest.raises(MnistError) as e:
        load_mnist(path)
    assert f"{path} [y_train]: int64 array" in one_line(e)


def test_explicit_folder_missing_does_not_fall_back(monkeypatch, tmp_path, shared_dir):
    cache = make_folder(tmp_path / "cache", shared_dir)  # a perfectly good cache, must not be used
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("MNIST_DIR", str(missing))
    with pytest.raises(MnistError) as e:
        load_mnist(cache_dir=cache, mirrors=[])
    assert str(missing) in one_line(e) and "MNIST_DIR" in str(e.value) and "does not exist" in str(e.value)


def test_bad_cache_file_is_not_used_nor_replaced(tmp_path, shared_dir, raw):
    bad = gzip.compress(_flip_pixel(raw["t10k-images-idx3-ubyte"]))
    cache = make_folder(tmp_path / "cache", shared_dir, files={"t10k-images-idx3-ubyte.gz": bad})
    with pytest.raises(MnistError) as e:  # a download attempt would fail with "could not download"
        load_mnist(cache_dir=cache, mirrors=[f"http://127.0.0.1:{closed_port()}/"], timeout=5)
    assert str(cache / "t10k-images-idx3-ubyte.gz") in one_line(e) and "delete it" in str(e.value)
    assert (cache / "t10k-images-idx3-ubyte.gz").read_bytes() == bad


def test_bad_keras_cache_is_not_used_nor_replaced(tmp_path, isolated_env):
    keras_npz = isolated_env / ".keras" / "datasets" / "mnist.npz"
    keras_npz.parent.mkdir(parents=True)
    keras_npz.write_bytes(b"not a zip file")
    with pytest.raises(MnistError) as e:
        load_mnist(cache_dir=tmp_path / "cache", mirrors=[f"http://127.0.0.1:{closed_port()}/"], timeout=5)
    assert str(keras_npz) in one_line(e) and "delete it" in str(e.value)
    assert keras_npz.read_bytes() == b"not a zip file"


def test_nothing_found_and_download_disabled(tmp_path):
    with pytest.raises(MnistError) as e:
        load_mnist(cache_dir=tmp_path / "cache", download=False)
    assert "downloading is disabled" in one_line(e) and str(tmp_path / "cache") in str(e.value)


# ------------------------------------------------------------------------------------------------
# through the command line: one line, exit status 2, nothing written


@pytest.mark.parametrize("case", ["corrupt", "missing", "wrong_checksum"])
def test_bad_data_dir_through_the_cli(case, tmp_path, shared_dir, raw):
    if case == "corrupt":
        folder = make_folder(tmp_path / "data", shared_dir, files={f"{LABELS}.gz": b"\x1f\x8b garbage"})
    elif case == "missing":
        folder = make_folder(tmp_path / "data", shared_dir, skip={LABELS})
    else:
        folder = make_folder(tmp_path / "data", shared_dir,
                             files={f"{LABELS}.gz": gzip.compress(raw[LABELS][:-1]
                                                                  + bytes([(raw[LABELS][-1] + 1) % 10]))})
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "harness", "run", "--data-dir", str(folder), "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert str(folder / LABELS) in result.stderr
    assert {"corrupt": "corrupt gzip", "missing": "not found",
            "wrong_checksum": "SHA-256 mismatch"}[case] in result.stderr
    assert not out.exists()


# ------------------------------------------------------------------------------------------------
# downloads through pooch, from loopback mirrors


@pytest.fixture
def serve():
    """Start loopback HTTP mirrors: ``serve(folder) -> (base_url, list of requested paths)``."""
    running = []

    def start(folder: Path):
        hits: list[str] = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(folder), **kwargs)

            def do_GET(self):
                hits.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        running.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/", hits

    yield start
    for server in running:
        server.shutdown()
        server.server_close()


@pytest.fixture
def mirrors(tmp_path, shared_dir, raw, monkeypatch):
    """A good mirror and a bad one (right name, wrong bytes) serving the labels file only.

    The shared copy is compressed differently from the public mirrors' archive, so the archive
    checksum pooch checks is set to the shared copy's for these tests.
    """
    gz = (shared_dir / f"{LABELS}.gz").read_bytes()
    monkeypatch.setitem(MNIST_FILES, LABELS, MNIST_FILES[LABELS]._replace(gz_sha256=hashlib.sha256(gz).hexdigest()))
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    (good / f"{LABELS}.gz").write_bytes(gz)
    (bad / f"{LABELS}.gz").write_bytes(gzip.compress(raw[LABELS]))  # same content, not the known archive
    return good, bad


def test_download_tries_the_mirrors_in_order(tmp_path, shared_dir, serve, mirrors, reference):
    good, bad = mirrors
    cache = make_folder(tmp_path / "cache", shared_dir, skip={LABELS})
    bad_url, bad_hits = serve(bad)
    good_url, good_hits = serve(good)
    assert_same(load_mnist(cache_dir=cache, mirrors=[bad_url, good_url], timeout=5), reference)
    assert bad_hits == good_hits == [f"/{LABELS}.gz"]
    assert listing(cache) == sorted(f"{n}.gz" for n in NAMES)  # final name, no temporary file
    assert (cache / f"{LABELS}.gz").read_bytes() == (good / f"{LABELS}.gz").read_bytes()


def test_download_from_no_good_mirror_keeps_nothing(tmp_path, shared_dir, serve, mirrors):
    _, bad = mirrors
    cache = make_folder(tmp_path / "cache", shared_dir, skip={LABELS})
    bad_url, _ = serve(bad)
    (tmp_path / "empty").mkdir()
    empty_url, _ = serve(tmp_path / "empty")  # HTTP 404
    closed_url = f"http://127.0.0.1:{closed_port()}/"
    with pytest.raises(MnistError) as e:
        load_mnist(cache_dir=cache, mirrors=[bad_url, empty_url, closed_url], timeout=5)
    msg = one_line(e)
    assert f"could not download {LABELS}.gz into {cache}" in msg and "set MNIST_DIR" in msg
    assert f"{bad_url}{LABELS}.gz: SHA256 hash of downloaded file" in msg
    assert f"{empty_url}{LABELS}.gz: 404" in msg and f"{closed_url}{LABELS}.gz:" in msg
    assert msg.index(bad_url) < msg.index(empty_url) < msg.index(closed_url)
    assert listing(cache) == sorted(f"{n}.gz" for n in NAMES if n != LABELS)


# ------------------------------------------------------------------------------------------------
# scaling (numpy_mlp.InputScaler, the one scaler that both frameworks' inputs go through)


def test_standardize(reference):
    x_train, _, x_test, _ = reference
    scaler = InputScaler.fit(x_train)
    xs, xt = scaler.transform(x_train), scaler.transform(x_test)
    assert xs.dtype == xt.dtype == np.float32 and xs.flags.c_contiguous and xt.flags.c_contiguous
    assert xs.shape == x_train.shape and xt.shape == x_test.shape
    constant = x_train.min(axis=0) == x_train.max(axis=0)
    assert 0 < constant.sum() < 784  # MNIST has blank border pixels
    assert np.all(xs[:, constant] == 0)
    mean = xs[:, ~constant].mean(axis=0, dtype=np.float64)
    std = xs[:, ~constant].std(axis=0, dtype=np.float64)
    assert np.abs(mean).max() < 1e-5 and np.abs(std - 1).max() < 1e-4
    # the test set uses the training statistics
    m, s = x_train.mean(axis=0), x_train.std(axis=0)
    s[s == 0] = 1
    np.testing.assert_allclose(xt, (x_test - m) / s, rtol=1e-5, atol=1e-5)


def test_standardize_small_exact():
    x = np.array([[0, 5, 1], [0, 5, 3]], np.uint8)
    scaler = InputScaler.fit(x, dtype="float64")
    np.testing.assert_array_equal(scaler.transform(x), [[0, 0, -1], [0, 0, 1]])
    np.testing.assert_array_equal(scaler.transform(np.array([[2, 5, 2]], np.uint8)),
                                  [[2, 0, 0]])  # constant: only centered


def test_unit_scaling(reference):
    x_train, _, x_test, _ = reference
    scaler = InputScaler.fit(x_train, "unit")
    xs, xt = scaler.transform(x_train), scaler.transform(x_test)
    assert xs.dtype == np.float32 and xs.min() == 0 and xs.max() == 1 and 0 <= xt.min() <= xt.max() <= 1
    np.testing.assert_allclose(xt, x_test.astype(np.float32) / 255, rtol=1e-6)


def test_unknown_scaling_is_refused():
    with pytest.raises(ValueError, match="unknown input scaling"):
        InputScaler.fit(np.zeros((2, 3), np.uint8), "minmax")
