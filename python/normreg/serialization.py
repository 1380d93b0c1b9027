"""Checkpoints: ``normreg.save(obj, path)`` and ``normreg.load(path)``.

``obj`` is a tree of dicts (str or int keys), lists and tuples whose leaves are ndarrays
(numeric or bool, any shape, including 0-d), NumPy scalars, and Python ``None``, bools,
ints, floats and strings: a module's ``state_dict()``, an optimizer's, a scheduler's, an
epoch number... The file is a NumPy ``.npz`` archive: one uncompressed ``.npy`` entry per
array (``a0.npy``, ``a1.npy``, ...) and the structure as JSON in the entry ``__normreg__``.

Writes are atomic: the archive goes to a temporary file in the destination's directory,
is flushed and fsync'ed, then renamed over ``path`` with :func:`os.replace` (and the
directory fsync'ed), so a crash or an error mid-save leaves the previous checkpoint
intact.

Loading treats the file as hostile: it never unpickles, and it checks before it reads or
allocates anything large. The magic bytes come first (a file that is not a zip archive
costs 4 bytes of reading, even ``/dev/zero``); then the zip directory: only the members
:func:`save` writes, each once, stored uncompressed, inside the file and adding up to no
more than the file; then each member's ``.npy`` header: a plain numeric, bool or string
dtype (no object arrays, no records) and a shape whose size times the item size is
exactly the member's size in the directory; then the structure's nesting depth (at most
``MAX_DEPTH`` containers). So the arrays allocated add up to at most the file's size.
Anything else raises :class:`CheckpointError` (a ``ValueError``) saying what is wrong.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import math
import numbers
import os
import re
import tempfile
import zipfile
from typing import IO, Any, Union

import numpy as np

__all__ = ["save", "load", "CheckpointError", "MAX_DEPTH"]

PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

_FORMAT = "normreg-checkpoint"
_VERSION = 1
_STRUCTURE = "__normreg__"

#: The deepest nesting of containers (dicts, lists, tuples) a checkpoint may hold:
#: :func:`save` refuses deeper objects and :func:`load` deeper structures.
MAX_DEPTH = 64


class CheckpointError(ValueError):
    """A file that normreg.load cannot read as a checkpoint (corrupted, truncated, foreign,
    or holding pickled data)."""


def _encode(obj: Any, arrays: dict[str, np.ndarray], where: str, depth: int = 0) -> Any:
    """A JSON-able description of ``obj`` (``depth`` containers deep); arrays are appended
    to ``arrays``."""
    if isinstance(obj, (np.ndarray, np.generic)):
        if isinstance(obj, np.ma.MaskedArray):
            raise TypeError(
                f"normreg.save: {where} is a masked array, whose mask would be lost: save "
                "its .filled(value) or .data (and .mask as an array of its own)"
            )
        arr = np.asarray(obj)
        if arr.dtype.kind not in "biufcUS" or arr.dtype.fields is not None:
            raise TypeError(
                f"normreg.save: {where} has dtype {arr.dtype}, which cannot be stored "
                "without pickle (numeric, bool and string dtypes only)"
            )
        name = f"a{len(arrays)}"
        arrays[name] = arr if arr.flags.c_contiguous else arr.copy(order="C")
        return {"scalar" if isinstance(obj, np.generic) else "array": name}
    if obj is None or isinstance(obj, (bool, str, float)):
        return obj
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, (dict, list, tuple)) and depth >= MAX_DEPTH:
        raise ValueError(
            f"normreg.save: {where[:200]} is nested more than {MAX_DEPTH} containers deep "
            "(a cycle?); a checkpoint holds at most that"
        )
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if isinstance(k, bool) or not isinstance(k, (str, int, np.integer)):
                raise TypeError(
                    f"normreg.save: {where} has a key {k!r} of type {type(k).__name__}; "
                    "dict keys must be str or int"
                )
            key = k if isinstance(k, str) else int(k)
            items.append([key, _encode(v, arrays, f"{where}[{k!r}]", depth + 1)])
        return {"dict": items}
    if isinstance(obj, (list, tuple)):
        values = [_encode(v, arrays, f"{where}[{i}]", depth + 1) for i, v in enumerate(obj)]
        return {"tuple" if isinstance(obj, tuple) else "list": values}
    raise TypeError(
        f"normreg.save: {where} is a {type(obj).__name__}; a checkpoint holds dicts, "
        "lists, tuples, ndarrays, NumPy scalars, None, bool, int, float and str"
    )


def _decode(node: Any, arrays: dict[str, np.ndarray], used: set[str], where: str, depth: int = 0) -> Any:
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, dict) and len(node) == 1:
        ((tag, value),) = node.items()
        if tag in ("array", "scalar") and isinstance(value, str):
            if value not in arrays:
                raise CheckpointError(f"{where} refers to a missing array entry '{value}'")
            if value in used:
                raise CheckpointError(f"{where} refers to array entry '{value}' a second time")
            used.add(value)
            return arrays[value][()] if tag == "scalar" else arrays[value]
        if tag in ("dict", "list", "tuple") and depth >= MAX_DEPTH:
            raise CheckpointError(f"{where[:200]}: nested more than {MAX_DEPTH} containers deep")
        if tag == "dict" and isinstance(value, list):
            out = {}
            for item in value:
                if not (
                    isinstance(item, list)
                    and len(item) == 2
                    and isinstance(item[0], (str, int))
                    and not isinstance(item[0], bool)
                ):
                    raise CheckpointError(f"{where}: malformed dict entry")
                out[item[0]] = _decode(item[1], arrays, used, f"{where}[{item[0]!r}]", depth + 1)
            return out
        if tag in ("list", "tuple") and isinstance(value, list):
            values = [_decode(v, arrays, used, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
            return tuple(values) if tag == "tuple" else values
    raise CheckpointError(f"{where}: malformed structure node {str(node)[:80]}")


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. platforms that cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_archive(f: IO[bytes], arrays: dict[str, np.ndarray], structure: str) -> None:
    np.savez(f, **{_STRUCTURE: np.array(structure), **arrays})  # type: ignore[arg-type]


def save(obj: Any, path: PathLike) -> None:
    """Save ``obj`` (nested dicts/lists/tuples of arrays and scalars) to ``path`` atomically.

    ``path`` is a file name (str, bytes or ``os.PathLike``), used as given (no ``.npz`` is
    appended); anything else, a file object included (the write goes to a temporary file
    renamed over ``path``), raises TypeError naming ``path``. Raises TypeError naming the
    first value that cannot be stored without pickle; the previous file at ``path``, if
    any, is left untouched on any error. A symlink is written through (its target replaced,
    as ``torch.save`` writes); a path that names no file (empty, a directory) is a
    ValueError, one in a missing directory a FileNotFoundError naming it.
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        hint = (
            " (file objects are not supported: save writes a temporary file next to path "
            "and renames it over path, so that a failed save leaves the previous file intact)"
            if hasattr(path, "write")
            else ""
        )
        raise TypeError(
            f"normreg.save: path must be a str, bytes or os.PathLike, got {type(path).__name__}{hint}"
        )
    path = os.fsdecode(os.fspath(path))
    if not path or path.endswith(os.sep) or os.path.isdir(path):
        raise ValueError(f"normreg.save: path must name a file, got {path!r}")
    path = os.path.realpath(path)  # a symlink is written through, as torch.save does
    if not os.path.isdir(os.path.dirname(path)):
        raise FileNotFoundError(f"normreg.save: no directory {os.path.dirname(path)!r} to write {path!r} in")
    arrays: dict[str, np.ndarray] = {}
    root = _encode(obj, arrays, "obj")
    structure = json.dumps({"format": _FORMAT, "version": _VERSION, "root": root})
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_archive(f, arrays, structure)
            f.flush()
            os.fsync(f.fileno())
        try:  # keep the permissions of the file being replaced (mkstemp makes it 0600)
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        except FileNotFoundError:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


# ---- loading --------------------------------------------------------------------------------

_ARRAY_MEMBER = re.compile(r"a(?:0|[1-9][0-9]{0,9})\.npy")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_READ_BLOCK = 1 << 24


def load(f: PathLike | IO[bytes]) -> Any:
    """Load a checkpoint written by :func:`save` from a path or a binary file object
    (readable and seekable, e.g. ``io.BytesIO(data)``; read from its current position).

    Raises TypeError for an ``f`` that is neither a path (str, bytes or ``os.PathLike``)
    nor a file object with ``read``, and for a file object opened in text mode;
    FileNotFoundError for a missing file and :class:`CheckpointError` (a
    ValueError) for a file that is truncated, corrupted, not a normreg checkpoint, holds
    pickled data (refused: loading never unpickles), or whose archive directory, ``.npy``
    headers or structure are not what :func:`save` writes (see the module's docstring:
    every check comes before any large read or allocation).
    """
    if isinstance(f, (str, bytes, os.PathLike)):
        path = os.fspath(f)
        with open(path, "rb") as fh:
            return _load(fh, f"'{path!s}'")
    if not callable(getattr(f, "read", None)):
        raise TypeError(
            "normreg.load: f must be a path (str, bytes or os.PathLike) or a binary file "
            f"object opened for reading, got {type(f).__name__}"
        )
    # a text-mode file would decode the archive's bytes (UnicodeDecodeError) on the first read
    if isinstance(f, io.TextIOBase) or isinstance(f.read(0), str):
        raise TypeError(
            f"normreg.load: the file object f must be opened in binary mode ('rb'), got a text-mode "
            f"{type(f).__name__}"
        )
    name = getattr(f, "name", None)
    return _load(f, f"'{name}'" if isinstance(name, str) else "the file object")


def _load(f: IO[bytes], where: str) -> Any:
    head = f.read(4)
    if not isinstance(head, bytes):
        raise TypeError(
            f"normreg.load: the file object must be opened in binary mode, got {type(head).__name__}"
        )
    if not head.startswith(b"PK"):
        if head.startswith(b"\x80") or head[:1] in (b"(", b"]", b"}"):
            raise CheckpointError(
                f"normreg.load: refused to load {where}: it holds pickled data, which normreg never unpickles"
            )
        raise CheckpointError(
            f"normreg.load: {where} is not a normreg checkpoint "
            "(not an .npz archive: corrupted or truncated?)"
        )
    try:
        f.seek(-len(head), os.SEEK_CUR)
        start = f.tell()
        end = f.seek(0, os.SEEK_END)
        f.seek(start)
    except (OSError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"normreg.load: {where} is not a seekable file ({exc})") from None
    try:
        with zipfile.ZipFile(f) as archive:
            infos = _check_directory(archive, start, end, where)
            header = _read_structure(archive, infos.pop(f"{_STRUCTURE}.npy"), where)
            arrays = {name[:-4]: _read_npy(archive, info, where) for name, info in infos.items()}
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, KeyError, ValueError) as exc:
        raise CheckpointError(
            f"normreg.load: {where} is corrupted or truncated ({type(exc).__name__}: {exc})"
        ) from None
    except (NotImplementedError, RuntimeError, OverflowError, UnicodeError) as exc:
        raise CheckpointError(f"normreg.load: {where} is corrupted ({type(exc).__name__}: {exc})") from None
    used: set[str] = set()
    obj = _decode(header["root"], arrays, used, "obj")
    extra = sorted(set(arrays) - used)
    if extra:
        raise CheckpointError(
            f"normreg.load: {where} has array entries {extra[:10]} that its structure does not use"
        )
    return obj


def _check_directory(
    archive: zipfile.ZipFile, start: int, end: int, where: str
) -> dict[str, zipfile.ZipInfo]:
    """The members by name, once each checked to be one of :func:`save`'s, stored and
    inside the file (between ``start`` and ``end``; their sizes adding up to no more than
    the file's)."""
    size = end - start
    infos = archive.infolist()
    counts = collections.Counter(info.filename for info in infos)
    duplicated = sorted(name for name, n in counts.items() if n > 1)
    if duplicated:
        raise CheckpointError(
            f"normreg.load: {where} holds the archive members {duplicated[:5]} more than once "
            "(which copy is meant is ambiguous): refused"
        )
    if f"{_STRUCTURE}.npy" not in counts:
        raise CheckpointError(
            f"normreg.load: {where} is an .npz archive but not a normreg checkpoint (no '{_STRUCTURE}' entry)"
        )
    total = 0
    for info in infos:
        name = info.filename
        if name != f"{_STRUCTURE}.npy" and not _ARRAY_MEMBER.fullmatch(name):
            raise CheckpointError(
                f"normreg.load: {where} holds an unexpected archive member {name[:100]!r} "
                f"(a checkpoint holds '{_STRUCTURE}.npy' and arrays 'a0.npy', 'a1.npy', ...)"
            )
        if info.flag_bits & 0x1:
            raise CheckpointError(f"normreg.load: {where}: member {name!r} is encrypted")
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            raise CheckpointError(
                f"normreg.load: {where}: member {name!r} is compressed (method {info.compress_type}); "
                "normreg checkpoints store their arrays uncompressed"
            )
        total += info.file_size
        if info.header_offset + info.file_size > end or total > size:
            raise CheckpointError(
                f"normreg.load: {where} is truncated or corrupted: member {name!r} declares "
                f"{info.file_size} bytes, more than the {size}-byte file holds"
            )
    return {info.filename: info for info in infos}


def _read_npy(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> np.ndarray:
    """The array of one ``.npy`` member, its header checked against the member's size in
    the zip directory before the array is allocated."""
    name = info.filename
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(member)
            elif version == (2, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(member)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError) as exc:
            raise CheckpointError(
                f"normreg.load: {where}: member {name!r} has an unreadable .npy header ({exc})"
            ) from None
        if dtype.hasobject:
            raise CheckpointError(
                f"normreg.load: refused to load {where}: member {name!r} holds pickled "
                "(object) data, which normreg never unpickles"
            )
        if dtype.kind not in "biufcUS" or dtype.fields is not None or dtype.itemsize == 0:
            raise CheckpointError(
                f"normreg.load: {where}: member {name!r} has dtype {dtype}, which normreg.save never writes"
            )
        if any(d < 0 for d in shape):
            raise CheckpointError(f"normreg.load: {where}: member {name!r} declares a negative shape {shape}")
        nbytes = math.prod(shape) * dtype.itemsize
        held = info.file_size - member.tell()
        if nbytes != held:
            raise CheckpointError(
                f"normreg.load: {where}: member {name!r} declares shape {shape} of {dtype} "
                f"({nbytes} bytes) but holds {held} bytes: corrupted or forged"
            )
        array = np.empty(shape[::-1] if fortran_order else shape, dtype=dtype)
        flat = array.reshape(-1).view(np.uint8)
        pos = 0
        while pos < nbytes:
            block = member.read(min(_READ_BLOCK, nbytes - pos))
            if not block:
                raise EOFError(f"member {name!r} ends after {pos} of its {nbytes} bytes")
            flat[pos : pos + len(block)] = np.frombuffer(block, dtype=np.uint8)
            pos += len(block)
    return array.T if fortran_order else array


def _json_depth(text: str) -> int:
    """The deepest nesting of brackets and braces of a JSON text, outside its strings."""
    codes = np.frombuffer(_JSON_STRING.sub('""', text).encode("utf-8", "replace"), dtype=np.uint8)
    step = np.isin(codes, (ord("["), ord("{"))).astype(np.int64) - np.isin(codes, (ord("]"), ord("}")))
    return int(np.cumsum(step).max(initial=0))


def _read_structure(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> dict[str, Any]:
    """The structure entry, parsed (its nesting checked first) and its header checked."""
    entry = _read_npy(archive, info, where)
    if entry.dtype.kind != "U" or entry.shape != ():
        raise CheckpointError(f"normreg.load: {where}: the '{_STRUCTURE}' entry is not a string")
    text = str(entry[()])
    # each container of the object is at most 3 JSON levels: {"dict": [[key, value], ...]}
    if _json_depth(text) > 3 * MAX_DEPTH + 2:
        raise CheckpointError(
            f"normreg.load: {where}: the structure is nested deeper than a checkpoint can be "
            f"({MAX_DEPTH} containers)"
        )
    try:
        header = json.loads(text)
    except (ValueError, TypeError, RecursionError) as exc:
        raise CheckpointError(f"normreg.load: {where} has an unreadable structure: {exc}") from None
    if not isinstance(header, dict) or header.get("format") != _FORMAT or "root" not in header:
        raise CheckpointError(f"normreg.load: {where} is not a normreg checkpoint")
    if header.get("version") != _VERSION:
        raise CheckpointError(
            f"normreg.load: {where} has format version {str(header.get('version'))[:20]}, "
            f"this normreg reads version {_VERSION}"
        )
    return header
