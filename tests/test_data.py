"""Tests of harness.data: loading and verifying MNIST from folders, caches and (loopback) mirrors."""

from __future__ import annotations

import gzip
import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from harness.data import MNIST_FILES, MnistError, load_mnist
from numpy_mlp import InputScaler

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
NAMES = list(MNIST_FILES)  # train-images, train-labels, t10k-images, t10k-labels
TIMEOUT = 10  # seconds, for every loopback download


# ------------------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    missing = [n for n in NAMES if not (SHARED_MNIST / f"{n}.gz").is_file()]
    if missing:
        pytest.skip(f"real MNIST not found: {SHARED_MNIST} lacks {', '.join(m + '.gz' for m in missing)}")
    return SHARED_MNIST


@pytest.fixture(scope="session")
def raw(shared_dir) -> dict[str, bytes]:
    """The decompressed IDX bytes of each file."""
    return {n: gzip.decompress((shared_dir / f"{n}.gz").read_bytes()) for n in NAMES}


@pytest.fixture(scope="session")
def reference(raw) -> tuple[np.ndarray, ...]:
    """x_train, y_train, x_test, y_test parsed independently of harness.data."""
    out = []
    for n in NAMES:
        shape = MNIST_FILES[n].shape
        header = 4 + 4 * len(shape)
        out.append(np.frombuffer(raw[n], np.uint8, offset=header).reshape(shape[0], -1).squeeze())
    return tuple(out)


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
        if n in skip or n in files or f"{n}.gz" in files:
            continue
        (folder / f"{n}.gz").symlink_to(shared_dir / f"{n}.gz")
    for fname, data in files.items():
        (folder / fname).write_bytes(data)
    return folder


def assert_same(loaded, reference) -> None:
    for got, want in zip(loaded, reference, strict=True):
        assert got.dtype == np.uint8 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def save_npz(path: Path, reference) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_test, y_test = reference
    np.savez(path, x_train=x_train.reshape(-1, 28, 28), y_train=y_train,
             x_test=x_test.reshape(-1, 28, 28), y_test=y_test)
    return path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        running.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}/", hits

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def good_mirror(tmp_path_factory, shared_dir) -> Path:
    return make_folder(tmp_path_factory.mktemp("good_mirror"), shared_dir)


@pytest.fixture(scope="session")
def broken_mirror(tmp_path_factory, shared_dir, raw) -> Path:
    """train-images.gz truncated; the others valid gzip whose content fails the SHA-256 check."""
    folder = tmp_path_factory.mktemp("broken_mirror")
    gz = (shared_dir / f"{NAMES[0]}.gz").read_bytes()
    (folder / f"{NAMES[0]}.gz").write_bytes(gz[: len(gz) // 2])
    for n in NAMES[1:]:
        data = bytearray(raw[n])
        data[-1] = (data[-1] + 1) % 10  # still a valid label / pixel, wrong checksum
        (folder / f"{n}.gz").write_bytes(gzip.compress(bytes(data), compresslevel=1))
    return folder


def cache_listing(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


# ------------------------------------------------------------------------------------------------
# good sources


def test_load_real_mnist_from_env(monkeypatch, shared_dir, reference):
    monkeypatch.setenv("MNIST_DIR", str(shared_dir))
    x_train, y_train, x_test, y_test = data = load_mnist(download=False)
    assert x_train.shape == (60000, 784) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 784) and y_test.shape == (10000,)
    for a in data:
        assert a.dtype == np.uint8 and a.flags.c_contiguous and a.flags.writeable
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


def test_keras_cache_is_used(tmp_path, isolated_env, reference):
    save_npz(isolated_env / ".keras" / "datasets" / "mnist.npz", reference)
    cache = tmp_path / "cache"
    assert_same(load_mnist(cache_dir=cache, download=False, mirrors=[]), reference)
    assert not cache.exists()


# ------------------------------------------------------------------------------------------------
# bad sources: one clear MnistError naming the file


def _flip_pixel(data: bytes) -> bytes:
    b = bytearray(data)
    b[16 + 28 * 14 + 14] ^= 0xFF
    return bytes(b)


def _set_dims(data: bytes, dims) -> bytes:
    return data[:4] + np.asarray(dims, ">u4").tobytes() + data[4 + 4 * len(dims):]


def _label_10(data: bytes) -> bytes:
    return data[:-1] + b"\x0a"


# (file whose copy is bad, how its bytes are made from the decompressed original, gzip it?, text)
BAD_FILES = {
    "wrong_magic": ("t10k-labels-idx1-ubyte", lambda d: b"\x00\x00\x08\x03" + d[4:], False,
                    "bad magic number 0x00000803, expected 0x00000801"),
    "truncated": ("t10k-labels-idx1-ubyte", lambda d: d[:-100], False,
                  "truncated: expected 10000 bytes of data, found 9900"),
    "extra_bytes": ("t10k-labels-idx1-ubyte", lambda d: d + b"\x00\x00", False, "2 extra bytes"),
    "wrong_checksum": ("t10k-images-idx3-ubyte", _flip_pixel, False,
                       "SHA-256 mismatch for t10k-images-idx3-ubyte: expected 0fa7898d509279e4"),
    "wrong_shape": ("t10k-images-idx3-ubyte", lambda d: _set_dims(d, (10000, 14, 56)), False,
                    "wrong shape (10000, 14, 56) in the header, expected (10000, 28, 28)"),
    "label_out_of_range": ("t10k-labels-idx1-ubyte", _label_10, True, "label value 10 out of range"),
    "wrong_checksum_gz": ("train-labels-idx1-ubyte", lambda d: d[:-1] + bytes([(d[-1] + 1) % 10]), True,
                          "SHA-256 mismatch"),
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
    name = "t10k-labels-idx1-ubyte"
    gz = bytearray((shared_dir / f"{name}.gz").read_bytes())
    if damage == "truncated":
        gz = gz[: len(gz) // 2]
    else:
        gz[100:400] = bytes(300)
    folder = make_folder(tmp_path / "bad", shared_dir, files={f"{name}.gz": bytes(gz)})
    with pytest.raises(MnistError) as e:
        load_mnist(folder)
    msg = one_line(e)
    assert str(folder / f"{name}.gz") in msg and "corrupt gzip" in msg


def test_missing_file(tmp_path, shared_dir):
    folder = make_folder(tmp_path / "partial", shared_dir, skip={"train-labels-idx1-ubyte"})
    with pytest.raises(MnistError) as e:
        load_mnist(folder)
    assert str(folder / "train-labels-idx1-ubyte") in one_line(e)


def test_bad_npz(tmp_path, reference):
    x_train, y_train, x_test, y_test = reference
    bad = x_test.copy()
    bad[0, 300] ^= 1
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=bad, y_test=y_test)
    with pytest.raises(MnistError) as e:
        load_mnist(tmp_path)
    assert f"{path} [x_test]" in one_line(e) and "SHA-256 mismatch" in str(e.value)


def test_explicit_folder_missing_does_not_fall_back(monkeypatch, tmp_path, shared_dir):
    cache = make_folder(tmp_path / "cache", shared_dir)  # a perfectly good cache, must not be used
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("MNIST_DIR", str(missing))
    with pytest.raises(MnistError) as e:
        load_mnist(cache_dir=cache, mirrors=[])
    assert str(missing) in one_line(e) and "MNIST_DIR" in str(e.value) and "does not exist" in str(e.value)


def test_bad_cache_file_is_not_used_nor_overwritten(tmp_path, shared_dir, raw, serve, good_mirror):
    name = "train-labels-idx1-ubyte"
    cache = make_folder(tmp_path / "cache", shared_dir, files={f"{name}.gz": gzip.compress(_label_10(raw[name]))})
    before = (cache / f"{name}.gz").read_bytes()
    url, hits = serve(good_mirror)
    with pytest.raises(MnistError) as e:
        load_mnist(cache_dir=cache, mirrors=[url], timeout=TIMEOUT)
    msg = one_line(e)
    assert str(cache / f"{name}.gz") in msg and "delete it" in msg
    assert (cache / f"{name}.gz").read_bytes() == before
    assert hits == []  # nothing downloaded to replace it


def test_bad_keras_cache_is_not_used_nor_overwritten(tmp_path, isolated_env, serve, good_mirror):
    keras_npz = isolated_env / ".keras" / "datasets" / "mnist.npz"
    keras_npz.parent.mkdir(parents=True)
    keras_npz.write_bytes(b"not a zip file")
    url, hits = serve(good_mirror)
    with pytest.raises(MnistError) as e:
        load_mnist(cache_dir=tmp_path / "cache", mirrors=[url], timeout=TIMEOUT)
    assert str(keras_npz) in one_line(e) and "delete it" in str(e.value)
    assert keras_npz.read_bytes() == b"not a zip file" and hits == []


def test_no_network(tmp_path):
    cache = tmp_path / "cache"
    port = closed_port()
    with pytest.raises(MnistError) as e:
        load_mnist(cache_dir=cache, mirrors=[f"http://127.0.0.1:{port}/"], timeout=TIMEOUT)
    msg = one_line(e)
    assert "could not download train-images-idx3-ubyte.gz" in msg and "MNIST_DIR" in msg
    assert f"127.0.0.1:{port}/train-images-idx3-ubyte.gz" in msg
    assert cache_listing(cache) == []


def test_nothing_found_and_download_disabled(tmp_path):
    with pytest.raises(MnistError) as e:
        load_mnist(cache_dir=tmp_path / "cache", download=False)
    assert "downloading is disabled" in one_line(e) and str(tmp_path / "cache") in str(e.value)


# ------------------------------------------------------------------------------------------------
# downloads from loopback mirrors


def test_download_then_cache(tmp_path, serve, good_mirror, reference):
    cache = tmp_path / "cache"
    url, hits = serve(good_mirror)
    assert_same(load_mnist(cache_dir=cache, mirrors=[url], timeout=TIMEOUT), reference)
    assert sorted(hits) == sorted(f"/{n}.gz" for n in NAMES)
    assert cache_listing(cache) == sorted(f"{n}.gz" for n in NAMES)  # final names, no temp files
    for n in NAMES:
        assert (cache / f"{n}.gz").read_bytes() == (good_mirror / f"{n}.gz").read_bytes()
    assert_same(load_mnist(cache_dir=cache, mirrors=[url], timeout=TIMEOUT), reference)
    assert len(hits) == len(NAMES)  # the second load used the cache


def test_default_cache_dir_is_under_xdg_cache_home(isolated_env, serve, good_mirror):
    url, _ = serve(good_mirror)
    load_mnist(mirrors=[url], timeout=TIMEOUT)
    cache = isolated_env / ".cache" / "mlp-numpy-tf2" / "mnist"
    assert cache_listing(cache) == sorted(f"{n}.gz" for n in NAMES)


def test_download_falls_back_to_second_mirror(tmp_path, serve, good_mirror, broken_mirror, reference):
    cache = tmp_path / "cache"
    bad_url, bad_hits = serve(broken_mirror)
    good_url, good_hits = serve(good_mirror)
    assert_same(load_mnist(cache_dir=cache, mirrors=[bad_url, good_url], timeout=TIMEOUT), reference)
    assert len(bad_hits) == len(good_hits) == len(NAMES)
    assert cache_listing(cache) == sorted(f"{n}.gz" for n in NAMES)


def test_download_all_mirrors_broken(tmp_path, serve, broken_mirror):
    cache = tmp_path / "cache"
    empty = tmp_path / "empty_mirror"
    empty.mkdir()
    bad_url, _ = serve(broken_mirror)
    url_404, _ = serve(empty)
    with pytest.raises(MnistError) as e:
        load_mnist(cache_dir=cache, mirrors=[bad_url, url_404], timeout=TIMEOUT)
    msg = one_line(e)
    assert "could not download train-images-idx3-ubyte.gz" in msg and "MNIST_DIR" in msg
    assert f"{bad_url}train-images-idx3-ubyte.gz: corrupt gzip" in msg
    assert f"{url_404}train-images-idx3-ubyte.gz: HTTP 404" in msg
    assert cache_listing(cache) == []  # no final name, no leftover temp file


def test_download_with_bad_checksum_keeps_nothing(tmp_path, serve, shared_dir, broken_mirror):
    """Valid gzip, wrong content: rejected after download, never renamed into the cache."""
    mirror = make_folder(tmp_path / "mirror", shared_dir, skip={"t10k-labels-idx1-ubyte"})
    (mirror / "t10k-labels-idx1-ubyte.gz").symlink_to(broken_mirror / "t10k-labels-idx1-ubyte.gz")
    cache = tmp_path / "cache"
    url, _ = serve(mirror)
    with pytest.raises(MnistError) as e:
        load_mnist(cache_dir=cache, mirrors=[url], timeout=TIMEOUT)
    assert "t10k-labels-idx1-ubyte.gz: SHA-256 mismatch" in one_line(e)
    assert cache_listing(cache) == sorted(f"{n}.gz" for n in NAMES[:3])


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
    np.testing.assert_array_equal(scaler.transform(np.array([[2, 5, 2]], np.uint8)), [[2, 0, 0]])  # constant: only centered


def test_unit_scaling(reference):
    x_train, _, x_test, _ = reference
    scaler = InputScaler.fit(x_train, "unit")
    xs, xt = scaler.transform(x_train), scaler.transform(x_test)
    assert xs.dtype == np.float32 and xs.min() == 0 and xs.max() == 1 and 0 <= xt.min() <= xt.max() <= 1
    np.testing.assert_allclose(xt, x_test.astype(np.float32) / 255, rtol=1e-6)


def test_unknown_scaling_is_refused():
    with pytest.raises(ValueError, match="unknown input scaling"):
        InputScaler.fit(np.zeros((2, 3), np.uint8), "minmax")
