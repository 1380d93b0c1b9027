"""Datasets and batching: the IDX file format, Fashion-MNIST, and a DataLoader.

* :func:`read_idx` reads an IDX file (the format of MNIST and Fashion-MNIST), gzip-compressed
  or raw, from a path or a file object, and checks its magic number, dimensions and length
  before it allocates anything.
* :func:`load_fashion_mnist` finds the four Fashion-MNIST files on disk (or downloads them,
  HTTPS first, keeping only files with the pinned SHA-256 and MD5 digests) and returns
  float32 images in [0, 1] and int64 labels.
* :class:`DataLoader` yields mini-batches ``(x, y)`` of two arrays; shuffling draws one
  permutation per epoch from a seeded generator, and every batch is a fresh copy.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, Optional, Protocol, Union

import numpy as np

from . import _validation as V
from ._download import fetch, has_digests
from .random import Generator, as_generator
from .random import default_generator as default_generator  # importable from here before

PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "read_idx",
    "load_fashion_mnist",
    "find_fashion_mnist",
    "fashion_mnist_files",
    "fashion_mnist_dirs",
    "download_fashion_mnist",
    "DataLoader",
    "FASHION_MNIST_URL",
    "FASHION_MNIST_URLS",
    "FASHION_MNIST_FILES",
    "FASHION_MNIST_SHA256",
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
# deflate expands at most 1032:1 (a 258-byte match per 2-bit code), so a gzip file of n bytes
# holds at most about 1032 * n bytes: a header declaring more is a lie, refused unread.
_DEFLATE_MAX_RATIO = 1032
_IDX_MAX_DIMS = 32  # NumPy 1.x's limit; IDX files in use have 1 to 4
_READ_BLOCK = 1 << 24


def read_idx(source: PathLike | IO[bytes]) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) into a NumPy array.

    ``source`` is a path or a binary file object (seekable, e.g. ``io.BytesIO(data)``;
    read from its current position). The header is a magic number ``00 00 <type> <ndim>``
    and ``ndim`` big-endian uint32 sizes, followed by the elements in C order. The array
    has the file's shape and the native-endian version of its element type (uint8 for
    (Fashion-)MNIST).

    The header is checked before anything is allocated: the size it declares (the
    product of the dimensions, in exact integer arithmetic) must be what a raw file holds,
    and at most what a gzip file can expand to; the data is then read in blocks. Raises
    ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file for a
    wrong magic number, an unknown type, a declared size the file cannot hold, data
    shorter or longer than the header says, or a truncated or corrupted gzip stream.
    """
    return _read_idx_checked(source, None)


#: A check of an IDX header before its data is read: ``(name, shape, dtype)``, raising
#: ValueError for a file the caller cannot use.
_HeaderCheck = Optional[Callable[[str, tuple[int, ...], "np.dtype[Any]"], None]]


def _read_idx_checked(source: PathLike | IO[bytes], check: _HeaderCheck) -> np.ndarray:
    """:func:`read_idx`, calling ``check`` on the header before anything is allocated."""
    if isinstance(source, (str, bytes, os.PathLike)):
        path = os.fspath(source)
        with open(path, "rb") as f:
            return _read_idx(f, path if isinstance(path, str) else os.fsdecode(path), check)
    name = getattr(source, "name", None)
    return _read_idx(source, name if isinstance(name, str) else "<IDX file object>", check)


def _read_idx(f: IO[bytes], name: str, check: _HeaderCheck) -> np.ndarray:
    try:
        start = f.tell()
        size = f.seek(0, os.SEEK_END) - start
        f.seek(start)
        head = f.read(2)
        f.seek(start)
    except (OSError, ValueError, AttributeError) as exc:
        kind = TypeError if isinstance(exc, AttributeError) else ValueError  # not a file object at all
        raise kind(f"read_idx: source {name} is not a seekable binary file ({exc})") from None
    if not isinstance(head, bytes):
        raise TypeError(f"read_idx: {name} must be opened in binary mode (read gave {type(head).__name__})")
    if head != _GZIP_MAGIC:
        return _parse_idx(f, name, size, exact=True, check=check)
    try:
        with gzip.GzipFile(fileobj=f, mode="rb") as stream:
            return _parse_idx(stream, name, size, exact=False, check=check)
    except EOFError as exc:
        raise ValueError(
            f"{name}: truncated gzip stream ({exc}); the file is incomplete, delete it and fetch it again"
        ) from exc
    except (OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{name}: corrupted gzip data ({exc})") from exc


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _parse_idx(stream: _Readable, name: str, size: int, exact: bool, check: _HeaderCheck) -> np.ndarray:
    """The array of an IDX stream: the raw file itself (``exact``: ``size`` is its length)
    or the decompressed content of a ``size``-byte gzip file; ``check`` (if any) sees the
    header first."""
    magic = stream.read(4)
    if len(magic) < 4:
        raise ValueError(f"{name}: truncated IDX file: {len(magic)} bytes, the header alone needs 4")
    if magic[0] != 0 or magic[1] != 0:
        raise ValueError(
            f"{name}: not an IDX file: magic number starts with {magic[:2].hex()}, expected 0000"
        )
    dtype = _IDX_TYPES.get(magic[2])
    if dtype is None:
        raise ValueError(
            f"{name}: unknown IDX element type 0x{magic[2]:02x} "
            f"(expected one of {', '.join(f'0x{t:02x}' for t in _IDX_TYPES)})"
        )
    ndim = magic[3]
    if ndim == 0 or ndim > _IDX_MAX_DIMS:
        raise ValueError(f"{name}: IDX header declares {ndim} dimensions (1 to {_IDX_MAX_DIMS} are read)")
    header = 4 + 4 * ndim
    sizes = stream.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise ValueError(
            f"{name}: truncated IDX header: {4 + len(sizes)} bytes, {ndim} dimensions need {header}"
        )
    shape = struct.unpack(f">{ndim}I", sizes)
    if check is not None:
        check(name, shape, dtype)
    nbytes = math.prod(shape) * dtype.itemsize  # exact: Python ints do not overflow
    expected = header + nbytes
    declared = f"shape {shape} of {dtype.name}"
    if exact and size < expected:
        raise ValueError(
            f"{name}: truncated IDX file: {declared} needs {expected} bytes, the file has {size}"
        )
    if exact and size > expected:
        raise ValueError(
            f"{name}: corrupted IDX file: {size - expected} bytes after the {expected} that {declared} needs"
        )
    if not exact and expected > _DEFLATE_MAX_RATIO * size:
        raise ValueError(
            f"{name}: corrupted IDX file: {declared} needs {expected} bytes, "
            f"more than a {size}-byte gzip file can hold"
        )
    try:
        array = np.empty(shape, dtype=dtype)
    except (ValueError, MemoryError) as exc:
        raise ValueError(
            f"{name}: IDX header declares shape {shape}, which cannot be allocated ({exc})"
        ) from None
    flat = array.reshape(-1).view(np.uint8)
    pos = 0
    while pos < nbytes:
        block = stream.read(min(_READ_BLOCK, nbytes - pos))
        if not block:
            raise ValueError(
                f"{name}: truncated IDX file: {declared} needs {expected} bytes, the file has {header + pos}"
            )
        flat[pos : pos + len(block)] = np.frombuffer(block, dtype=np.uint8)
        pos += len(block)
    extra = 0
    while not exact and (block := stream.read(1 << 20)):
        extra += len(block)
    if extra:
        raise ValueError(
            f"{name}: corrupted IDX file: {extra} bytes after the {expected} that {declared} needs"
        )
    if not dtype.isnative:  # a writable, native-endian array
        array = array.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return array


# ---- Fashion-MNIST ----------------------------------------------------------------------

#: Where the files are downloaded from, in order: the dataset's repository over HTTPS
#: (github.com/zalandoresearch/fashion-mnist, which serves the same files), then the
#: dataset's original location (plain HTTP). ``$NORMREG_FASHION_MNIST_URL`` replaces the
#: list with one or more base URLs separated by spaces (a mirror, or a local server in tests).
FASHION_MNIST_URLS = (
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)
#: The first place downloads are tried (``FASHION_MNIST_URLS[0]``).
FASHION_MNIST_URL = FASHION_MNIST_URLS[0]

#: The four files and the MD5 checksums the dataset's authors publish for them.
FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}

#: The SHA-256 digests of the same four files, pinned: a download is kept only when both
#: its SHA-256 and its MD5 match (see docs/training.md for how they were established).
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
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
    ``root`` alone when it is given; else ``$NORMREG_DATA``, ``~/.cache/normreg/fashion-mnist``
    and Debian's ``/usr/share/datasets/fashion-mnist`` (package ``dataset-fashion-mnist``)."""
    if root is not None:
        return [("root", os.fspath(root))]
    dirs = []
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


def fashion_mnist_files(directory: PathLike) -> list[str]:
    """The paths of the four files in ``directory`` (each gzipped or not), in the order of
    :data:`FASHION_MNIST_FILES`; ``FileNotFoundError`` naming the directory and what it
    lacks otherwise."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        what = "is not a directory" if os.path.exists(directory) else "does not exist"
        raise FileNotFoundError(f"Fashion-MNIST data directory {directory} {what}")
    paths = _files_in(directory)
    if paths is None:
        missing = [name for name in FASHION_MNIST_FILES if _file_in(directory, name) is None]
        raise FileNotFoundError(
            f"Fashion-MNIST data directory {directory} lacks {', '.join(missing)} "
            "(gzipped or not; the four files are " + ", ".join(FASHION_MNIST_FILES) + ")"
        )
    return paths


def _mirrors(url: str | Sequence[str] | None) -> list[str]:
    if url is None:
        url = os.environ.get("NORMREG_FASHION_MNIST_URL", "").split() or FASHION_MNIST_URLS
    urls = [url] if isinstance(url, str) else list(url)
    return [u if u.endswith("/") else u + "/" for u in urls]


def _offline_message(searched: list[tuple[str, str]], urls: list[str], error: object) -> str:
    lines = [
        f"Fashion-MNIST not found, and the download from {' then '.join(urls)} failed ({error}).",
        "Searched (the four files " + ", ".join(FASHION_MNIST_FILES) + ", gzipped or not):",
    ]
    lines += [f"  - {where}: {path}" for where, path in searched]
    lines += [
        "Any one of these provides the dataset:",
        "  - pass load_fashion_mnist(root=DIR) (normreg-train --data-dir DIR) with DIR holding the files;",
        "  - set NORMREG_DATA=DIR;",
        f"  - put the files into {_cache_dir()};",
        f"  - on Debian/Ubuntu: apt-get install dataset-fashion-mnist (installs them into {_DEBIAN_DIR});",
        f"  - connect to the internet: they are downloaded from {urls[0]} into the cache.",
    ]
    return "\n".join(lines)


def download_fashion_mnist(
    directory: PathLike | None = None, url: str | Sequence[str] | None = None, progress: bool = True
) -> str:
    """Download the four files into ``directory`` (default: the cache), each from the first
    of the base URLs ``url`` (default: ``$NORMREG_FASHION_MNIST_URL``, else
    :data:`FASHION_MNIST_URLS`: HTTPS first) that serves it with its pinned SHA-256
    (:data:`FASHION_MNIST_SHA256`) and MD5 (:data:`FASHION_MNIST_FILES`).

    Files already there with the right digests are kept. A download with another digest is
    deleted before anything reads it, and the next URL is tried. Returns ``directory``.
    Raises ``ValueError`` when no URL served the right file (nothing is left behind) and
    ``OSError`` (e.g. ``urllib.error.URLError``) when none could be reached.
    """
    directory = _cache_dir() if directory is None else os.fspath(directory)
    urls = _mirrors(url)
    os.makedirs(directory, exist_ok=True)
    for name, md5 in FASHION_MNIST_FILES.items():
        dest = os.path.join(directory, name)
        sha256 = FASHION_MNIST_SHA256[name]
        if not has_digests(dest, sha256, md5):
            fetch([u + name for u in urls], dest, sha256, md5, progress)
    return directory


#: The size of a Fashion-MNIST image (rows, cols).
_IMAGE_SHAPE = (28, 28)


def _check_images(name: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
    """An images file's header: uint8 (N, 28, 28) with N >= 1, checked before its data is read."""
    if len(shape) != 3 or dtype != np.uint8:
        raise ValueError(f"{name}: expected uint8 images (N, 28, 28), the file holds {dtype.name} {shape}")
    if tuple(shape[1:]) != _IMAGE_SHAPE:
        raise ValueError(
            f"{name}: images of {shape[1]}x{shape[2]} pixels (shape {shape}); Fashion-MNIST's are 28x28"
        )
    if shape[0] == 0:
        raise ValueError(f"{name}: holds 0 images (shape {shape}); a split needs at least one")


def _check_labels(name: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
    if len(shape) != 1 or dtype != np.uint8:
        raise ValueError(f"{name}: expected uint8 labels (N,), the file holds {dtype.name} {shape}")


def _read_split(images_path: str, labels_path: str) -> tuple[np.ndarray, np.ndarray]:
    """One split's images (float32 in [0, 1], (N, 784)) and labels (int64). Each file's
    header is checked before its data is read: uint8 images of 28x28 pixels, at least one,
    and uint8 labels, as many as images, each < 10."""
    images = _read_idx_checked(images_path, _check_images)
    labels = _read_idx_checked(labels_path, _check_labels)
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{labels_path} has {labels.shape[0]} labels for the {images.shape[0]} images of {images_path}"
        )
    if labels.max() >= len(FASHION_MNIST_CLASSES):
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
    int64 in [0, 10) (names in :data:`FASHION_MNIST_CLASSES`). Each file's header is checked
    before its data is read or anything is allocated: images must be uint8 of 28x28 pixels
    (so both splits have the same shape), at least one per
    split, labels uint8 and as many as the images; otherwise ``ValueError`` naming the file
    and what it holds.

    With ``root``, the files (``train-images-idx3-ubyte.gz`` etc., gzipped or not) are read
    from that directory, and from nowhere else: a ``root`` without them is a
    ``FileNotFoundError`` naming what is missing. Without it, they are searched in
    ``$NORMREG_DATA``, ``~/.cache/normreg/fashion-mnist``, then
    ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``); the first
    directory holding all four is used. Where none does and ``download`` is true, they are
    downloaded into the cache (see :func:`download_fashion_mnist`: HTTPS first, each file
    checked against its pinned SHA-256 and MD5 before it is kept or read) with a progress
    bar. Where the files are missing and ``download`` is false, or no server can be reached,
    ``RuntimeError`` lists each way to provide the data; a download with the wrong digest
    raises ``ValueError``.
    """
    if root is not None:
        paths = fashion_mnist_files(root)
    else:
        searched = fashion_mnist_dirs()
        found = find_fashion_mnist()
        if found is not None:
            paths = fashion_mnist_files(found)
        else:
            urls = _mirrors(None)
            if not download:
                raise RuntimeError(_offline_message(searched, urls, "download=False"))
            try:
                paths = fashion_mnist_files(download_fashion_mnist(None, urls, progress))
            except OSError as exc:  # urllib.error.URLError is an OSError
                raise RuntimeError(_offline_message(searched, urls, exc)) from exc
    x_train, y_train = _read_split(paths[0], paths[1])
    x_test, y_test = _read_split(paths[2], paths[3])
    return x_train, y_train, x_test, y_test


# ---- DataLoader --------------------------------------------------------------------------


class DataLoader:
    """Mini-batches ``(x[idx], y[idx])`` over the first axis of two arrays of equal length.

    ``shuffle=True`` draws a new permutation at the start of every epoch (every ``iter()``):
    from ``Generator(seed)`` when a seed is given (the k-th epoch's order depends only on the
    seed and k), else from normreg's default generator as it is when the epoch starts (so
    ``normreg.manual_seed`` fixes it, also for a loader copied or unpickled).
    ``drop_last=True`` skips a final batch smaller than ``batch_size``. ``len()`` is the number
    of batches per epoch. Each batch holds fresh arrays (a copy of a slice of each array, or
    one fancy-indexing copy when shuffling, so no Python work is done per sample): writing into a
    batch, e.g. with an in-place module, leaves ``x`` and ``y`` as they were, as PyTorch's
    collated batches do. With ``y=None`` each batch is ``x[idx]`` alone.
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
        self.x, self.y = V.samples(x, y, "DataLoader")
        self.batch_size = V.integer(batch_size, "batch_size", "DataLoader", low=1)
        self.shuffle = V.boolean(shuffle, "shuffle", "DataLoader")
        self.drop_last = V.boolean(drop_last, "drop_last", "DataLoader")
        # None: the default generator, looked up at each epoch (a copy must not keep its own)
        self._generator = None if seed is None else Generator(seed)

    @property
    def generator(self) -> Generator:
        """The generator the next epoch's permutation is drawn from."""
        return as_generator(self._generator, "DataLoader")

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a loader pickled when its generator was the attribute "generator" keeps that one
        if "generator" in state:
            state = dict(state)
            state.setdefault("_generator", state.pop("generator"))
        self.__dict__.update(state)

    def __len__(self) -> int:
        n = self.x.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        n, bs = self.x.shape[0], self.batch_size
        stop = (n // bs) * bs if self.drop_last else n
        if self.shuffle:
            order = self.generator.numpy().permutation(n)
            for start in range(0, stop, bs):
                idx = order[start : start + bs]  # fancy indexing: each batch a copy
                yield self.x[idx] if self.y is None else (self.x[idx], self.y[idx])
        else:
            for start in range(0, stop, bs):
                sl = slice(start, start + bs)  # a slice is a view of the data: copied
                yield self.x[sl].copy() if self.y is None else (self.x[sl].copy(), self.y[sl].copy())
