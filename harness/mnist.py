"""MNIST for the study: found, downloaded (with pooch) if need be, and verified.

``load_mnist`` uses the first of these sources:

1. ``data_dir`` if given, else ``$MNIST_DIR``: a folder with the four IDX files (raw or ``.gz``) or
   Keras' ``mnist.npz``, or the path of an ``mnist.npz``; the only source tried (no fallback).
2. The project's cache (``pooch.os_cache``, ``~/.cache/mlp-numpy-tf2/mnist`` on Linux), then Keras'
   ``$KERAS_HOME/datasets/mnist.npz`` (default ``~/.keras``); a cached file that fails verification is
   never used nor replaced: the error asks the user to delete it.
3. A download of each missing ``<name>.gz`` with ``pooch.retrieve``, mirror after mirror (pooch checks
   the archive's SHA-256 before it lands in the cache).

Every file is verified alike: IDX magic number, dimensions and length, then the SHA-256 of the IDX bytes
(``mnist.npz`` arrays re-serialized as IDX), so a copy compressed differently is accepted. Every problem
is a ``MnistError``: one line that names the file.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pooch


class MnistFile(NamedTuple):
    """What one MNIST IDX file must contain, and the SHA-256 of the mirrors' ``.gz`` of it."""

    magic: int
    shape: tuple[int, ...]
    sha256: str  # of the IDX bytes: the same for any copy, whatever its compression
    gz_sha256: str  # of the original archive the mirrors serve: pooch checks downloads against it


#: The four files, in the order ``load_mnist`` returns them.
MNIST_FILES: dict[str, MnistFile] = {
    "train-images-idx3-ubyte": MnistFile(
        0x803, (60000, 28, 28), "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    "train-labels-idx1-ubyte": MnistFile(
        0x801, (60000,), "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    "t10k-images-idx3-ubyte": MnistFile(
        0x803, (10000, 28, 28), "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    "t10k-labels-idx1-ubyte": MnistFile(
        0x801, (10000,), "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
}

#: The arrays of Keras' ``mnist.npz`` and the IDX file each one is.
NPZ_KEYS = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
            "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}

#: Public mirrors serving ``<name>.gz``, tried in order.
DEFAULT_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


class MnistError(ValueError):
    """A problem with the MNIST data; the message is one self-contained line naming the file."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


def _find_idx(folder: Path, name: str) -> Path | None:
    """The raw or ``.gz`` copy of IDX file ``name`` in ``folder``, raw first; None if neither."""
    return next((p for p in (folder / name, folder / f"{name}.gz") if p.is_file()), None)


def _parse_idx(data: bytes, name: str, source: str) -> np.ndarray:
    """The verified array (shape ``MNIST_FILES[name].shape``, read-only) in the IDX bytes ``data`` of ``source``."""
    spec = MNIST_FILES[name]
    header = 4 + 4 * len(spec.shape)
    magic = int.from_bytes(data[:4], "big")
    if len(data) < header or magic != spec.magic:
        raise MnistError(f"{source}: not an MNIST IDX file: magic number 0x{magic:08x}, expected "
                         f"0x{spec.magic:08x}, in {len(data)} bytes")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=len(spec.shape), offset=4))
    if dims != spec.shape:
        raise MnistError(f"{source}: wrong shape {dims} in the header, expected {spec.shape}")
    expected, found = int(np.prod(dims)), len(data) - header
    if found != expected:
        what = "truncated" if found < expected else "extra bytes"
        raise MnistError(f"{source}: {what}: expected {expected} bytes of data, found {found}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.sha256:
        raise MnistError(f"{source}: SHA-256 mismatch for {name}: expected {spec.sha256[:16]}..., "
                         f"got {digest[:16]}... (corrupt or not the original MNIST)")
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def _load_idx_file(path: Path, name: str) -> np.ndarray:
    try:
        data = path.read_bytes()
        return _parse_idx(gzip.decompress(data) if path.suffix == ".gz" else data, name, str(path))
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise MnistError(f"{path}: corrupt gzip data ({e})") from None
    except OSError as e:
        raise MnistError(f"{path}: cannot read: {e.strerror or e}") from None


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    """Load and verify Keras' ``mnist.npz`` (each array as the IDX file it stands for); returns arrays keyed by
    IDX file name."""
    if path.is_file() and not zipfile.is_zipfile(path):  # else NumPy suggests loading it with allow_pickle
        raise MnistError(f"{path}: not an .npz archive (not a zip file)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            raw = {key: npz[key] for key in NPZ_KEYS if key in npz.files}
    except (OSError, ValueError, EOFError, TypeError, zipfile.BadZipFile, zlib.error) as e:
        raise MnistError(f"{path}: cannot read as an .npz archive ({e})") from None
    missing = [key for key in NPZ_KEYS if key not in raw]
    if missing:
        raise MnistError(f"{path}: missing array(s) {', '.join(missing)} (expected {', '.join(NPZ_KEYS)})")
    arrays = {}
    for key, name in NPZ_KEYS.items():
        spec, arr, source = MNIST_FILES[name], raw[key], f"{path} [{key}]"
        if arr.dtype != np.uint8 or arr.size != np.prod(spec.shape) or arr.shape[:1] != spec.shape[:1]:
            raise MnistError(f"{source}: {arr.dtype} array of shape {arr.shape}, expected uint8 {spec.shape}")
        header = spec.magic.to_bytes(4, "big") + np.asarray(spec.shape, ">u4").tobytes()
        arrays[name] = _parse_idx(header + np.ascontiguousarray(arr).tobytes(), name, source)  # images may be flat
    return arrays


def _load_folder(folder: Path, origin: str) -> dict[str, np.ndarray]:
    """Load from a folder named by the user (``origin``: 'data_dir' or 'MNIST_DIR'); no fallback."""
    if folder.is_file() and folder.suffix == ".npz":
        return _load_npz(folder)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise MnistError(f"{folder}: the MNIST folder given by {origin} {what}")
    paths = {name: _find_idx(folder, name) for name in MNIST_FILES}
    if all(paths.values()):
        return {name: _load_idx_file(path, name) for name, path in paths.items()}
    if (folder / "mnist.npz").is_file():
        return _load_npz(folder / "mnist.npz")
    missing = next(name for name, path in paths.items() if path is None)
    raise MnistError(f"{folder / missing}: not found (nor {missing}.gz, nor mnist.npz) in the MNIST folder given "
                     f"by {origin}; it needs the four MNIST IDX files (raw or .gz) or Keras' mnist.npz")


def _load_cached(load, path: Path, *args):
    """Run ``load(path, *args)``; a failure says the cached file must be deleted (never replaced)."""
    try:
        return load(path, *args)
    except MnistError as e:
        raise MnistError(f"{e}; this cached file is never used or overwritten: delete it and run again") from None


def _download(name: str, cache: Path, mirrors: list[str], timeout: float) -> np.ndarray:
    """Download ``<name>.gz`` into ``cache`` with pooch from the first mirror that serves it intact."""
    reasons = []
    for mirror in mirrors:
        url = f"{mirror.rstrip('/')}/{name}.gz"
        try:
            path = pooch.retrieve(url, f"sha256:{MNIST_FILES[name].gz_sha256}", f"{name}.gz", cache,
                                  downloader=pooch.HTTPDownloader(timeout=timeout))
        except (OSError, ValueError) as e:  # requests' errors are OSErrors; a wrong checksum, a ValueError
            reasons.append(f"{url}: {e}")
            continue
        return _load_idx_file(Path(path), name)
    raise MnistError(f"could not download {name}.gz into {cache} from any mirror "
                     f"({'; '.join(reasons) or 'no mirrors'}); set MNIST_DIR to a folder with the MNIST files")


def _load_cache_or_download(cache: Path, download: bool, mirrors: list[str], timeout: float) -> dict[str, np.ndarray]:
    paths = {name: _find_idx(cache, name) for name in MNIST_FILES}
    arrays = {name: _load_cached(_load_idx_file, path, name) for name, path in paths.items() if path}
    if len(arrays) == len(MNIST_FILES):
        return arrays
    keras_npz = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "datasets" / "mnist.npz"
    if keras_npz.is_file():
        return _load_cached(_load_npz, keras_npz)
    missing = [name for name in MNIST_FILES if name not in arrays]
    if not download:
        raise MnistError(f"{cache / missing[0]}.gz: not found (nor {keras_npz}) and downloading is disabled; "
                         "set MNIST_DIR to a folder with the MNIST files")
    return arrays | {name: _download(name, cache, mirrors, timeout) for name in missing}


def load_mnist(data_dir: str | os.PathLike | None = None, *, download: bool = True,
               cache_dir: str | os.PathLike | None = None, mirrors: Iterable[str] = DEFAULT_MIRRORS,
               timeout: float = 30) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x_train (60000, 784), y_train (60000,), x_test (10000, 784), y_test (10000,): verified uint8 arrays
    (pixels 0..255, labels 0..9), C-contiguous and writeable, from the first source of the module's list;
    missing files are downloaded (``download``) into ``cache_dir`` (default: the project's cache) from
    ``mirrors``, ``timeout`` seconds per network operation. MnistError (one line naming the file) when
    the data cannot be found, read, downloaded or verified."""
    if data_dir is not None:
        arrays = _load_folder(Path(data_dir), "data_dir")
    elif os.environ.get("MNIST_DIR"):
        arrays = _load_folder(Path(os.environ["MNIST_DIR"]), "MNIST_DIR")
    else:
        cache = Path(cache_dir) if cache_dir is not None else pooch.os_cache("mlp-numpy-tf2") / "mnist"
        arrays = _load_cache_or_download(cache, download, list(mirrors), timeout)
    return tuple(np.require(arr.reshape(len(arr), -1) if arr.ndim > 1 else arr, np.uint8, ["C_CONTIGUOUS", "WRITEABLE"])
                 for arr in (arrays[name] for name in MNIST_FILES))
