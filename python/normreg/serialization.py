"""Checkpoints: ``normreg.save(obj, path)`` and ``normreg.load(path)``.

``obj`` is a tree of dicts (str or int keys), lists and tuples whose leaves are ndarrays
(numeric or bool, any shape, including 0-d), NumPy scalars, and Python ``None``, bools,
ints, floats and strings: a module's ``state_dict()``, an optimizer's, a scheduler's, an
epoch number... The file is a NumPy ``.npz`` archive: one ``.npy`` entry per array and the
structure as JSON in the entry ``__normreg__``. :func:`load` opens it with
``allow_pickle=False``, so loading never executes code from the file.

Writes are atomic: the archive goes to a temporary file in the destination's directory,
is flushed and fsync'ed, then renamed over ``path`` with :func:`os.replace` (and the
directory fsync'ed), so a crash or an error mid-save leaves the previous checkpoint
intact. A file that is not such an archive (truncated, corrupted, another format) or that
holds pickled data raises :class:`CheckpointError` (a ``ValueError``) saying so.
"""

from __future__ import annotations

import contextlib
import io
import json
import numbers
import os
import tempfile
import zipfile
from typing import IO, Any, Union

import numpy as np

__all__ = ["save", "load", "CheckpointError"]

PathLike = Union[str, "os.PathLike[str]"]

_FORMAT = "normreg-checkpoint"
_VERSION = 1
_STRUCTURE = "__normreg__"


class CheckpointError(ValueError):
    """A file that normreg.load cannot read as a checkpoint (corrupted, truncated, foreign,
    or holding pickled data)."""


def _encode(obj: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    """A JSON-able description of ``obj``; arrays are appended to ``arrays``."""
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
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if isinstance(k, bool) or not isinstance(k, (str, int, np.integer)):
                raise TypeError(
                    f"normreg.save: {where} has a key {k!r} of type {type(k).__name__}; "
                    "dict keys must be str or int"
                )
            key = k if isinstance(k, str) else int(k)
            items.append([key, _encode(v, arrays, f"{where}[{k!r}]")])
        return {"dict": items}
    if isinstance(obj, (list, tuple)):
        values = [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]
        return {"tuple" if isinstance(obj, tuple) else "list": values}
    raise TypeError(
        f"normreg.save: {where} is a {type(obj).__name__}; a checkpoint holds dicts, "
        "lists, tuples, ndarrays, NumPy scalars, None, bool, int, float and str"
    )


def _decode(node: Any, arrays: dict[str, np.ndarray], used: set[str], where: str) -> Any:
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, dict) and len(node) == 1:
        ((tag, value),) = node.items()
        if tag in ("array", "scalar") and isinstance(value, str):
            if value not in arrays:
                raise CheckpointError(f"{where} refers to a missing array entry '{value}'")
            used.add(value)
            return arrays[value][()] if tag == "scalar" else arrays[value]
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
                out[item[0]] = _decode(item[1], arrays, used, f"{where}[{item[0]!r}]")
            return out
        if tag in ("list", "tuple") and isinstance(value, list):
            values = [_decode(v, arrays, used, f"{where}[{i}]") for i, v in enumerate(value)]
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

    The file name is used as given (no ``.npz`` is appended). Raises TypeError naming the
    first value that cannot be stored without pickle; the previous file at ``path``, if
    any, is left untouched on any error.
    """
    path = os.fspath(path)
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


def load(path: PathLike) -> Any:
    """Load a checkpoint written by :func:`save` (with ``allow_pickle=False``).

    Raises FileNotFoundError for a missing file and :class:`CheckpointError` (a
    ValueError) for a file that is truncated, corrupted, not a normreg checkpoint, or
    holds pickled data (refused: loading never unpickles).
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(b"PK"):
        if data.startswith(b"\x80") or data[:1] in (b"(", b"]", b"}"):
            raise CheckpointError(
                f"normreg.load: refused to load '{path}': it holds pickled data, "
                "which normreg never unpickles"
            )
        raise CheckpointError(
            f"normreg.load: '{path}' is not a normreg checkpoint "
            "(not an .npz archive: corrupted or truncated?)"
        )
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            for name in archive.files:
                arrays[name] = archive[name]
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise CheckpointError(
                f"normreg.load: refused to load '{path}': it holds pickled "
                "(object) data, which normreg never unpickles"
            ) from None
        raise CheckpointError(f"normreg.load: '{path}' is corrupted: {exc}") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as exc:
        raise CheckpointError(
            f"normreg.load: '{path}' is corrupted or truncated ({type(exc).__name__}: {exc})"
        ) from None
    if _STRUCTURE not in arrays:
        raise CheckpointError(
            f"normreg.load: '{path}' is an .npz archive but not a normreg "
            f"checkpoint (no '{_STRUCTURE}' entry)"
        )
    try:
        header = json.loads(str(arrays.pop(_STRUCTURE)[()]))
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"normreg.load: '{path}' has an unreadable structure: {exc}") from None
    if not isinstance(header, dict) or header.get("format") != _FORMAT or "root" not in header:
        raise CheckpointError(f"normreg.load: '{path}' is not a normreg checkpoint")
    if header.get("version") != _VERSION:
        raise CheckpointError(
            f"normreg.load: '{path}' has format version {header.get('version')}, "
            f"this normreg reads version {_VERSION}"
        )
    used: set[str] = set()
    obj = _decode(header["root"], arrays, used, "obj")
    extra = sorted(set(arrays) - used)
    if extra:
        raise CheckpointError(
            f"normreg.load: '{path}' has array entries {extra} that its structure does not use"
        )
    return obj
