"""Datasets and batching: the IDX file format, Fashion-MNIST, and a DataLoader.

* :func:`read_idx` reads an IDX file (the format of MNIST and Fashion-MNIST), gzip-compressed
  or raw, and checks its magic number, dimensions and length.
* :func:`load_fashion_mnist` finds the four Fashion-MNIST files on disk (or downloads them,
  checking their MD5 checksums) and returns float32 images in [0, 1] and int64 labels.
* :class:`DataLoader` yields mini-batches ``(x, y)`` of two arrays; shuffling draws one
  permutation per epoch from a seeded generator, and every batch is one fancy-indexing copy.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from typing import Any, Union

import numpy as np

from . import _validation as V
from .random import Generator, default_generator

PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "read_idx",
    "load_fashion_mnist",
    "find_fashion_mnist",
    "fashion_mnist_dirs",
    "download_fashion_mnist",
    "DataLoader",
    "FASHION_MNIST_URL",
    "FASHION_MNIST_FILES",
    "FASHION_MNIST_CLASSES",
]

# ---- IDX ------------------------------------------------------------------------------

# The third byte of the magic number: the element type (big-endian in the file).
_IDX_TYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        head = f.read(2)
    if head == _GZIP_MAGIC:
        try:
            with gzip.open(path, "rb") as f:
                return f.read()
        except EOFError as exc:
            raise ValueError(
                f"{path}: truncated gzip stream ({exc}); the file is incomplete, delete it and fetch it again"
            ) from exc
        except (OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            raise ValueError(f"{path}: corrupted gzip data ({exc})") from exc
    with open(path, "rb") as f:
        return f.read()


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) into a NumPy array.

    The header is a magic number ``00 00 <type> <ndim>`` and ``ndim`` big-endian uint32
    sizes, followed by the elements in C order. The array has the file's shape and the
    native-endian version of its element type (uint8 for (Fashion-)MNIST).

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file for a
    wrong magic number, an unknown type, or data shorter or longer than the header says.
    """
    path = os.fspath(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(f"{path}: truncated IDX file: {len(data)} bytes, the header alone needs 4")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file: magic number starts with {data[:2].hex()}, expected 0000")
    dtype = _IDX_TYPES.get(data[2])
    if dtype is None:
        raise ValueError(
            f"{path}: unknown IDX element type 0x{data[2]:02x} "
            f"(expected one of {', '.join(f'0x{t:02x}' for t in _IDX_TYPES)})"
        )
    ndim = data[3]
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header: {len(data)} bytes, {ndim} dimensions need {header}")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) < expected:
        raise ValueError(
            f"{path}: truncated IDX file: shape {shape} of {dtype.name} needs "
            f"{expected} bytes, the file has {len(data)}"
        )
    if len(data) > expected:
        raise ValueError(
            f"{path}: corrupted IDX file: {len(data) - expected} bytes after the "
            f"{expected} that shape {shape} of {dtype.name} needs"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # a writable, native-endian copy


# ---- Fashion-MNIST ----------------------------------------------------------------------

#: The dataset's canonical public location (see github.com/zalandoresearch/fashion-mnist).
#: ``$NORMREG_FASHION_MNIST_URL`` overrides it (a mirror, or a local server in tests).
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

#: The four files and the MD5 checksums the dataset's authors publish for them.
FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

_DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"


def _cache_dir() -> str:
    return os.path.join(os.path.expanduser("~"), ".cache", "normreg", "fashion-mnist")


def fashion_mnist_dirs(root: PathLike | None = None) -> list[tuple[str, str]]:
    """The directories :func:`load_fashion_mnist` searches, in order, as (where, path) pairs:
    ``root``, ``$NORMREG_DATA``, ``~/.cache/normreg/fashion-mnist``, and Debian's
    ``/usr/share/datasets/fashion-mnist`` (package ``dataset-fashion-mnist``)."""
    dirs = []
    if root is not None:
        dirs.append(("root", os.fspath(root)))
    env = os.environ.get("NORMREG_DATA")
    if env:
        dirs.append(("$NORMREG_DATA", env))
    dirs.append(("cache", _cache_dir()))
    dirs.append(("Debian package dataset-fashion-mnist", _DEBIAN_DIR))
    return dirs


def _file_in(directory: str, gz_name: str) -> str | None:
    """The path of ``gz_name`` or of its uncompressed twin in ``directory``, or None."""
    for name in (gz_name, gz_name[:-3]):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def _files_in(directory: str) -> list[str] | None:
    paths = [_file_in(directory, name) for name in FASHION_MNIST_FILES]
    found = [p for p in paths if p is not None]
    return found if len(found) == len(paths) else None


def _md5(path: str) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(url: str, dest: str, md5: str, progress: bool) -> None:
    """Fetch ``url`` into ``dest`` through a temporary file; check its MD5 before the rename."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            bar = None
            if progress:
                from tqdm.auto import tqdm  # optional dependency: imported on first use

                bar = tqdm(
                    total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=os.path.basename(dest)
                )
            try:
                while True:
                    block = response.read(1 << 16)
                    if not block:
                        break
                    out.write(block)
                    if bar is not None:
                        bar.update(len(block))
            finally:
                if bar is not None:
                    bar.close()
        got = _md5(tmp)
        if got != md5:
            raise ValueError(
                f"checksum mismatch for {url}: MD5 {got}, expected {md5}; "
                "the download is corrupted or the mirror serves other files"
            )
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _offline_message(searched: list[tuple[str, str]], url: str, error: object) -> str:
    lines = [
        f"Fashion-MNIST not found, and the download from {url} failed ({error}).",
        "Searched (the four files " + ", ".join(FASHION_MNIST_FILES) + ", gzipped or not):",
    ]
    lines += [f"  - {where}: {path}" for where, path in searched]
    lines += [
        "Any one of these provides the dataset:",
        "  - pass load_fashion_mnist(root=DIR) (normreg-train --data-dir DIR) with DIR holding the files;",
        "  - set NORMREG_DATA=DIR;",
        f"  - put the files into {_cache_dir()};",
        f"  - on Debian/Ubuntu: apt-get install dataset-fashion-mnist (installs them into {_DEBIAN_DIR});",
        f"  - connect to the internet: they are downloaded from {url} into the cache.",
    ]
    return "\n".join(lines)


def download_fashion_mnist(
    directory: PathLike | None = None, url: str | None = None, progress: bool = True
) -> str:
    """Download the four files into ``directory`` (default: the cache) from ``url`` (default:
    ``$NORMREG_FASHION_MNIST_URL`` or :data:`FASHION_MNIST_URL`), checking each MD5.

    Files already there with the right checksum are kept. Returns ``directory``. Raises
    ``ValueError`` on a checksum mismatch (nothing is left behind) and ``OSError`` (e.g.
    ``urllib.error.URLError``) when the server cannot be reached.
    """
    directory = _cache_dir() if directory is None else os.fspath(directory)
    url = url or os.environ.get("NORMREG_FASHION_MNIST_URL") or FASHION_MNIST_URL
    if not url.endswith("/"):
        url += "/"
    os.makedirs(directory, exist_ok=True)
    for name, md5 in FASHION_MNIST_FILES.items():
        dest = os.path.join(directory, name)
        if os.path.isfile(dest) and _md5(dest) == md5:
            continue
        _download(url + name, dest, md5, progress)
    return directory


def _read_split(images_path: str, labels_path: str) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"{images_path}: expected uint8 images (N, rows, cols), got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(f"{labels_path}: expected uint8 labels (N,), got {labels.dtype} {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{labels_path} has {labels.shape[0]} labels for the {images.shape[0]} images of {images_path}"
        )
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise ValueError(f"{labels_path}: label {labels.max()} outside [0, {len(FASHION_MNIST_CLASSES)})")
    x = images.reshape(images.shape[0], -1).astype(np.float32)
    x *= np.float32(1.0 / 255.0)
    return x, labels.astype(np.int64)


def find_fashion_mnist(root: PathLike | None = None) -> str | None:
    """The first directory of the search order (see :func:`fashion_mnist_dirs`) that holds
    the four Fashion-MNIST files, or None."""
    for _, directory in fashion_mnist_dirs(root):
        if _files_in(directory):
            return directory
    return None


def load_fashion_mnist(
    root: PathLike | None = None, download: bool = True, progress: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fashion-MNIST as ``(x_train, y_train, x_test, y_test)``.

    Images are float32 in [0, 1] shaped (N, 784) (60000 for training, 10000 for test), labels
    int64 in [0, 10) (names in :data:`FASHION_MNIST_CLASSES`).

    The files (``train-images-idx3-ubyte.gz`` etc., gzipped or not) are searched in
    ``root``, ``$NORMREG_DATA``, ``~/.cache/normreg/fashion-mnist``, then
    ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``); the first
    directory holding all four is used. Where none does and ``download`` is true, they are
    downloaded into the cache from :data:`FASHION_MNIST_URL` (or
    ``$NORMREG_FASHION_MNIST_URL``) with a progress bar and their MD5 checked. Where the
    files are missing and ``download`` is false, or the server cannot be reached,
    ``RuntimeError`` lists each way to provide the data; a checksum mismatch raises
    ``ValueError``.
    """
    searched = fashion_mnist_dirs(root)
    for _, directory in searched:
        paths = _files_in(directory)
        if paths:
            break
    else:
        url = os.environ.get("NORMREG_FASHION_MNIST_URL") or FASHION_MNIST_URL
        if not download:
            raise RuntimeError(_offline_message(searched, url, "download=False"))
        try:
            paths = _files_in(download_fashion_mnist(None, url, progress))
        except (OSError, urllib.error.URLError) as exc:
            raise RuntimeError(_offline_message(searched, url, exc)) from exc
    assert paths is not None
    x_train, y_train = _read_split(paths[0], paths[1])
    x_test, y_test = _read_split(paths[2], paths[3])
    return x_train, y_train, x_test, y_test


# ---- DataLoader --------------------------------------------------------------------------


class DataLoader:
    """Mini-batches ``(x[idx], y[idx])`` over the first axis of two arrays of equal length.

    ``shuffle=True`` draws a new permutation at the start of every epoch (every ``iter()``):
    from ``Generator(seed)`` when a seed is given (the k-th epoch's order depends only on the
    seed and k), else from normreg's default generator (so ``normreg.manual_seed`` fixes it).
    ``drop_last=True`` skips a final batch smaller than ``batch_size``. ``len()`` is the number
    of batches per epoch. Batches are made by slicing or one fancy-indexing copy per array, so
    no Python work is done per sample; with ``y=None`` each batch is ``x[idx]`` alone.
    """

    def __init__(
        self,
        x: Any,
        y: Any = None,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
    ) -> None:
        self.x = np.asarray(x)
        self.y = None if y is None else np.asarray(y)
        if self.x.ndim == 0:
            raise ValueError("DataLoader: x must have at least one dimension (the samples)")
        if self.y is not None and (self.y.ndim == 0 or self.y.shape[0] != self.x.shape[0]):
            raise ValueError(
                f"DataLoader: x and y must have the same number of samples, got "
                f"{self.x.shape[0]} and {self.y.shape[0] if self.y.ndim else 'a scalar'}"
            )
        self.batch_size = V.integer(batch_size, "batch_size", "DataLoader", low=1)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.generator = default_generator if seed is None else Generator(seed)

    def __len__(self) -> int:
        n = self.x.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        n, bs = self.x.shape[0], self.batch_size
        stop = (n // bs) * bs if self.drop_last else n
        if self.shuffle:
            order = self.generator.numpy().permutation(n)
            for start in range(0, stop, bs):
                idx = order[start : start + bs]
                yield self.x[idx] if self.y is None else (self.x[idx], self.y[idx])
        else:
            for start in range(0, stop, bs):
                sl = slice(start, start + bs)
                yield self.x[sl] if self.y is None else (self.x[sl], self.y[sl])
