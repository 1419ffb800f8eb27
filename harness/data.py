"""MNIST loading, verification and input scaling for the study.

``load_mnist`` looks for MNIST in this order and uses the first source found:

1. ``data_dir`` if given, else the environment variable ``MNIST_DIR``: a folder with the four IDX
   files (each raw or ``.gz``), or Keras' ``mnist.npz`` (the folder may hold it, or the path may
   name it). A folder named explicitly is the only source tried: if it is missing or its files are
   bad, ``MnistError`` is raised rather than falling back to the caches or the network.
2. The project's cache, ``$XDG_CACHE_HOME/mlp-numpy-tf2/mnist`` (default ``~/.cache/...``; the
   ``cache_dir`` argument overrides it), then Keras' cache ``$KERAS_HOME/datasets/mnist.npz``
   (default ``~/.keras/datasets/mnist.npz``). A cached file that fails verification is never used
   and never overwritten: ``MnistError`` names it and asks the user to delete it.
3. A download (unless ``download=False``) of each missing ``<name>.gz`` from the mirrors in order,
   streamed into a temporary file in the cache folder, verified, and only then renamed to its final
   name, so an interrupted or failed download never leaves a file under the final name.

Every source is verified the same way: IDX magic number, header dimensions, exact payload length,
labels in 0..9, and the SHA-256 of the decompressed IDX bytes (for ``mnist.npz`` the arrays are
re-serialized as IDX bytes, header and data, so the same checksums apply). Every data problem
raises ``MnistError`` with a one-line message naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = [
    "DEFAULT_MIRRORS",
    "MNIST_FILES",
    "MnistError",
    "default_cache_dir",
    "keras_cache_file",
    "load_mnist",
]

log = logging.getLogger(__name__)


class MnistFile(NamedTuple):
    """What one MNIST IDX file must contain."""

    magic: int
    shape: tuple[int, ...]
    sha256: str  # of the decompressed IDX bytes


#: The four files, in the order ``load_mnist`` returns them, with SHA-256 of the decompressed bytes.
MNIST_FILES: dict[str, MnistFile] = {
    "train-images-idx3-ubyte": MnistFile(
        0x00000803, (60000, 28, 28), "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
    ),
    "train-labels-idx1-ubyte": MnistFile(
        0x00000801, (60000,), "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
    ),
    "t10k-images-idx3-ubyte": MnistFile(
        0x00000803, (10000, 28, 28), "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
    ),
    "t10k-labels-idx1-ubyte": MnistFile(
        0x00000801, (10000,), "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
    ),
}

#: Keys of Keras' ``mnist.npz`` for each IDX file.
NPZ_KEYS = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

#: Public mirrors serving ``<name>.gz``, tried in order.
DEFAULT_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

_USER_AGENT = "mlp-numpy-tf2-study (MNIST loader; Python urllib)"


class MnistError(ValueError):
    """A problem with the MNIST data; the message is one self-contained line naming the file."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


# --------------------------------------------------------------------------------------------
# locations


def default_cache_dir() -> Path:
    """The project's MNIST cache: ``$XDG_CACHE_HOME/mlp-numpy-tf2/mnist``, default ``~/.cache``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "mlp-numpy-tf2" / "mnist"


def keras_cache_file() -> Path:
    """Keras' MNIST cache: ``$KERAS_HOME/datasets/mnist.npz``, default ``~/.keras``."""
    home = os.environ.get("KERAS_HOME") or Path.home() / ".keras"
    return Path(home) / "datasets" / "mnist.npz"


def _find_idx(folder: Path, name: str) -> Path | None:
    """The raw or ``.gz`` copy of IDX file ``name`` in ``folder``, raw first; None if neither."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


# --------------------------------------------------------------------------------------------
# parsing and verification


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise MnistError(f"{path}: cannot read: {e.strerror or e}") from None


def _gunzip(data: bytes, source: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise MnistError(f"{source}: corrupt gzip data ({e})") from None


def _verify(arr: np.ndarray, name: str, source: str, digest: str) -> None:
    """Check labels are 0..9 and ``digest`` (SHA-256 of the IDX bytes) is the expected one."""
    if len(MNIST_FILES[name].shape) == 1 and arr.size and arr.max() > 9:
        raise MnistError(f"{source}: label value {int(arr.max())} out of range 0..9")
    expected = MNIST_FILES[name].sha256
    if digest != expected:
        raise MnistError(
            f"{source}: SHA-256 mismatch for {name}: expected {expected[:16]}..., "
            f"got {digest[:16]}... (corrupt or not the original MNIST)"
        )


def parse_idx(data: bytes, name: str, source: str) -> np.ndarray:
    """Parse and verify the decompressed bytes of MNIST IDX file ``name``.

    Parameters
    ----------
    data : the whole decompressed file, header included.
    name : which file it should be, a key of ``MNIST_FILES``.
    source : how to name the file in error messages (its path or URL).

    Returns
    -------
    A read-only uint8 view of ``data``, shape ``MNIST_FILES[name].shape``, e.g. (60000, 28, 28).
    """
    spec = MNIST_FILES[name]
    ndim = len(spec.shape)
    header = 4 + 4 * ndim
    if len(data) < 4:
        raise MnistError(f"{source}: only {len(data)} bytes, too short for an IDX file")
    magic = int.from_bytes(data[:4], "big")
    if magic != spec.magic:
        raise MnistError(
            f"{source}: bad magic number 0x{magic:08x}, expected 0x{spec.magic:08x} "
            f"(uint8 IDX with {ndim} dimension{'s' if ndim > 1 else ''})"
        )
    if len(data) < header:
        raise MnistError(f"{source}: truncated header: expected {header} bytes, found {len(data)}")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    if dims != spec.shape:
        raise MnistError(f"{source}: wrong shape {dims} in the header, expected {spec.shape}")
    expected, found = int(np.prod(dims)), len(data) - header
    if found < expected:
        raise MnistError(f"{source}: truncated: expected {expected} bytes of data, found {found}")
    if found > expected:
        raise MnistError(f"{source}: {found - expected} extra bytes after the {expected} bytes of data")
    arr = np.frombuffer(data, np.uint8, offset=header).reshape(dims)
    _verify(arr, name, source, hashlib.sha256(data).hexdigest())
    return arr


def _load_idx_file(path: Path, name: str) -> np.ndarray:
    data = _read_bytes(path)
    if path.suffix == ".gz":
        data = _gunzip(data, str(path))
    return parse_idx(data, name, str(path))


def _idx_digest(arr: np.ndarray, magic: int) -> str:
    """SHA-256 of ``arr`` serialized as an IDX file (big-endian header, then the uint8 data)."""
    h = hashlib.sha256(magic.to_bytes(4, "big"))
    h.update(np.asarray(arr.shape, ">u4").tobytes())
    h.update(np.ascontiguousarray(arr))
    return h.hexdigest()


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    """Load and verify Keras' ``mnist.npz``; returns arrays keyed by IDX file name."""
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise MnistError(f"{path}: cannot read as .npz ({e})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise MnistError(f"{path}: not an .npz archive (a single .npy array?)")
    with npz:
        missing = [key for key in NPZ_KEYS if key not in npz.files]
        if missing:
            raise MnistError(f"{path}: missing array(s) {', '.join(missing)} (expected {', '.join(NPZ_KEYS)})")
        try:
            raw = {key: npz[key] for key in NPZ_KEYS}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            raise MnistError(f"{path}: corrupt .npz ({e})") from None
    return {name: _check_npz_array(raw[key], name, f"{path} [{key}]") for key, name in NPZ_KEYS.items()}


def _check_npz_array(arr: np.ndarray, name: str, source: str) -> np.ndarray:
    spec = MNIST_FILES[name]
    if arr.dtype != np.uint8:
        raise MnistError(f"{source}: dtype {arr.dtype}, expected uint8")
    if arr.size == int(np.prod(spec.shape)) and arr.shape[:1] == spec.shape[:1]:
        arr = arr.reshape(spec.shape)  # accept flattened images, (60000, 784)
    if arr.shape != spec.shape:
        raise MnistError(f"{source}: wrong shape {arr.shape}, expected {spec.shape}")
    _verify(arr, name, source, _idx_digest(arr, spec.magic))
    return arr


# --------------------------------------------------------------------------------------------
# sources


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
    raise MnistError(
        f"{folder / missing}: not found (nor {missing}.gz, nor mnist.npz) in the MNIST folder given "
        f"by {origin}; it needs the four MNIST IDX files (raw or .gz) or Keras' mnist.npz"
    )


def _load_cached(load, path: Path, *args):
    """Run ``load(path, *args)``; a failure says the cached file must be deleted (never overwritten)."""
    try:
        return load(path, *args)
    except MnistError as e:
        raise MnistError(f"{e}; this cached file is never used or overwritten: delete it and run again") from None


def _describe(exc: BaseException) -> str:
    """A short reason for a failed download."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _fetch(url: str, name: str, final: Path, timeout: float) -> np.ndarray:
    """Download ``url`` (a gzip IDX file) into a temp file beside ``final``, verify it, rename it."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    except OSError as e:
        raise MnistError(f"{final.parent}: cannot write to the MNIST cache folder ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    shutil.copyfileobj(response, out, 1 << 20)
            except (OSError, http.client.HTTPException, ValueError) as e:
                raise MnistError(f"{url}: {_describe(e)}") from None
        arr = parse_idx(_gunzip(_read_bytes(Path(tmp)), url), name, url)
        os.replace(tmp, final)
        return arr
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _download(name: str, cache: Path, mirrors: Iterable[str], timeout: float) -> np.ndarray:
    """Download IDX file ``name`` (as ``<name>.gz``) into ``cache``, trying ``mirrors`` in order."""
    final = cache / f"{name}.gz"
    reasons = []
    for mirror in mirrors:
        url = f"{mirror.rstrip('/')}/{final.name}"
        log.info("downloading %s", url)
        try:
            return _fetch(url, name, final, timeout)
        except MnistError as e:
            log.info("%s", e)
            reasons.append(str(e))
    raise MnistError(
        f"could not download {final.name} into {cache} from any mirror ({'; '.join(reasons) or 'no mirrors'}); "
        "set MNIST_DIR to a folder with the MNIST files"
    )


def _load_cache_or_download(
    cache: Path, download: bool, mirrors: Iterable[str], timeout: float
) -> dict[str, np.ndarray]:
    paths = {name: _find_idx(cache, name) for name in MNIST_FILES}
    arrays = {name: _load_cached(_load_idx_file, path, name) for name, path in paths.items() if path}
    if len(arrays) == len(MNIST_FILES):
        return arrays
    keras_npz = keras_cache_file()
    if keras_npz.is_file():
        return _load_cached(_load_npz, keras_npz)
    missing = [name for name in MNIST_FILES if name not in arrays]
    if not download:
        raise MnistError(
            f"{cache / missing[0]}.gz: not found (nor {keras_npz}) and downloading is disabled; "
            "set MNIST_DIR to a folder with the MNIST files"
        )
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MnistError(f"{cache}: cannot create the MNIST cache folder ({e.strerror or e})") from None
    mirrors = list(mirrors)
    for name in missing:
        arrays[name] = _download(name, cache, mirrors, timeout)
    return arrays


def load_mnist(
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    cache_dir: str | os.PathLike | None = None,
    mirrors: Iterable[str] | None = None,
    timeout: float = 30,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load the verified MNIST data set (see the module docstring for where it is looked for).

    Parameters
    ----------
    data_dir : a folder with the four IDX files (raw or .gz) or ``mnist.npz``, or the path of an
        ``mnist.npz``; default ``$MNIST_DIR``. When given (either way), it is the only source tried.
    download : whether to download missing files into the cache.
    cache_dir : the project's cache folder, default ``default_cache_dir()``.
    mirrors : base URLs serving ``<name>.gz``, tried in order; default ``DEFAULT_MIRRORS``.
    timeout : seconds for each network operation (connect, each read).

    Returns
    -------
    x_train : (60000, 784) uint8, pixel values 0..255.
    y_train : (60000,) uint8, labels 0..9.
    x_test : (10000, 784) uint8.
    y_test : (10000,) uint8.
    All C-contiguous and writeable.

    Raises
    ------
    MnistError
        If the data cannot be found, read, downloaded or verified; the message is one line that
        names the file.
    """
    if data_dir is not None:
        arrays = _load_folder(Path(data_dir), "data_dir")
    elif os.environ.get("MNIST_DIR"):
        arrays = _load_folder(Path(os.environ["MNIST_DIR"]), "MNIST_DIR")
    else:
        if isinstance(mirrors, str):
            mirrors = [mirrors]
        arrays = _load_cache_or_download(
            Path(cache_dir) if cache_dir is not None else default_cache_dir(),
            download,
            DEFAULT_MIRRORS if mirrors is None else mirrors,
            timeout,
        )
    out = []
    for name, spec in MNIST_FILES.items():
        arr = arrays[name].reshape(spec.shape[0], -1) if len(spec.shape) > 1 else arrays[name]
        out.append(np.require(arr, np.uint8, ["C_CONTIGUOUS", "WRITEABLE"]))
    return tuple(out)
