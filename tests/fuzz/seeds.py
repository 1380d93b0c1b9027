"""Writes the hand-made seeds of the fuzz corpus (``tests/fuzz/corpus/<target>/seed-*``).

    python tests/fuzz/seeds.py [binding|load|idx ...]

* binding: for every function of ``normreg._C``, inputs found by a seeded search over
  random bytes that decode to a call that succeeds, one per exception type the function
  raises, and one involving a huge size (what the fuzzer then mutates).
* load: real checkpoints (``normreg.save`` of modules' and optimizers' states, nested
  structures, every dtype kind, 0-d, empty and 64-deep values) and crafted archives
  (compressed, pickled, an object array, an unexpected member, a lying header).
* idx: small samples of the real Fashion-MNIST files (/usr/share/datasets/fashion-mnist,
  Debian's dataset-fashion-mnist) raw and gzipped, their real headers over truncated data,
  and headers whose sizes overflow, lie or exceed memory, every element type.

The seeds are committed; run this again only to regenerate them (checkpoints record the
time in their zip directory, so the bytes differ from one run to the next).
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import random
import struct
import sys
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
FASHION = "/usr/share/datasets/fashion-mnist"


def _write(target: str, name: str, data: bytes) -> None:
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"seed-{name}"), "wb") as f:
        f.write(data)


# ---- binding ------------------------------------------------------------------------------------


def binding_seeds() -> None:
    import targets
    from binding_specs import SPECS
    from calls import decode
    from reader import Reader

    from normreg import _C

    rng = random.Random(20260601)
    for fid, spec in enumerate(SPECS):
        kept: dict[str, bytes] = {}
        for _ in range(400):
            body = bytes(
                rng.randrange(256) if rng.random() < 0.25 else 0 for _ in range(rng.randrange(4, 96))
            )
            data = bytes([fid, 0]) + body
            call = decode(spec, Reader(data[2:]))
            try:
                getattr(_C, spec.name)(*call.args, **call.kwargs)
                what = "ok"
            except Exception as exc:
                what = type(exc).__name__
            if call.huge:
                what += "-huge"
            kept.setdefault(what, data)
        for what, data in kept.items():
            targets.binding(data)  # a seed that is a finding is not a seed
            _write("binding", f"{spec.name}-{what}", data)


# ---- load ---------------------------------------------------------------------------------------


def _saved(obj: object) -> bytes:
    import tempfile

    import normreg

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ckpt")
        normreg.save(obj, path)
        with open(path, "rb") as f:
            return f.read()


def _zip(members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_STORED) -> bytes:
    f = io.BytesIO()
    with zipfile.ZipFile(f, "w", compression) as z:
        for name, data in members:
            z.writestr(zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0)), data)
    return f.getvalue()


def _npy(array: np.ndarray) -> bytes:
    f = io.BytesIO()
    np.lib.format.write_array(f, array, allow_pickle=True)
    return f.getvalue()


def _npy_header(descr: str, shape: tuple) -> bytes:
    """A version 1.0 ``.npy`` header declaring whatever we like."""
    text = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {shape!r}, }}"
    text += " " * (-(len(text) + 11) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


def load_seeds() -> None:
    import normreg
    from normreg import nn, optim
    from normreg.serialization import MAX_DEPTH

    normreg.manual_seed(0)
    lin = nn.Linear(3, 2)
    model = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3), nn.ReLU(), nn.BatchNorm1d(3))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    opt.step()
    adam = optim.Adam(lin.parameters(), lr=1e-3)
    for p in lin.parameters():
        p.grad = np.ones_like(p.data)
    adam.step()
    nested: object = 1.0
    for _ in range(MAX_DEPTH - 1):
        nested = [nested]
    objects = {
        "empty-dict": {},
        "linear": lin.state_dict(),
        "sequential": model.state_dict(),
        "sgd": opt.state_dict(),
        "adam": adam.state_dict(),
        "training": {
            "epoch": 3,
            "model": lin.state_dict(),
            "history": [(0.5, 0.25), (0.4, None)],
            "rng": "x",
        },
        "dtypes": [
            np.arange(3).astype(t) for t in ("?", "i1", "u2", "i4", "u8", "f2", "f4", "f8", "c8", "c16")
        ],
        "strings": [np.array(["a", "bc"]), np.array([b"x", b"yz"]), "text", "", "\u00e9\u4e2d"],
        "shapes": [
            np.zeros(()),
            np.zeros((0, 3)),
            np.zeros((2, 0, 2), np.float32),
            np.float32(2.5),
            np.int64(-1),
        ],
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "scalars": {"a": None, "b": True, "c": -(2**70), "d": float("nan"), "e": float("inf"), 1: 2, -5: "k"},
        "tuples": ((1, 2), [(), []], {"x": ({},)}),
        "deep": nested,
    }
    for name, obj in objects.items():
        _write("load", name, _saved(obj))
    real = _saved(lin.state_dict())
    with zipfile.ZipFile(io.BytesIO(real)) as z:
        members = [(i.filename, z.read(i)) for i in z.infolist()]
    _write("load", "compressed", _zip(members, zipfile.ZIP_DEFLATED))
    _write("load", "extra-member", _zip(members + [("notes.txt", b"hello")]))
    _write("load", "duplicate-member", _zip(members + [members[-1]]))
    _write("load", "object-array", _zip(members[:1] + [("a0.npy", _npy(np.array([1, None], dtype=object)))]))
    _write("load", "lying-header", _zip(members[:1] + [("a0.npy", _npy_header("<f4", (2**40,)) + bytes(16))]))
    _write("load", "pickle", pickle.dumps({"weight": [1.0, 2.0]}))
    _write("load", "truncated", real[: len(real) // 2])
    _write("load", "empty", b"")


# ---- idx ----------------------------------------------------------------------------------------


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _idx(code: int, dims: tuple, payload: bytes) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload


def idx_seeds() -> None:
    with gzip.open(os.path.join(FASHION, "t10k-images-idx3-ubyte.gz")) as f:
        images = f.read(16 + 2 * 784)
    with gzip.open(os.path.join(FASHION, "t10k-labels-idx1-ubyte.gz")) as f:
        labels = f.read(8 + 20)
    img2 = _idx(8, (2, 28, 28), images[16:])
    lab20 = _idx(8, (20,), labels[8:])
    seeds = {
        "images-2": img2,
        "labels-20": lab20,
        "real-images-header-truncated": images[:16] + images[16:80],
        "real-labels-header-truncated": labels,
        "overflow": _idx(8, (2**32 - 1,) * 3, b"\0" * 8),
        "lies-larger": _idx(0x0D, (1000, 1000), b"\0" * 16),
        "huge-but-empty": _idx(8, (0, 2**32 - 1, 2**32 - 1), b""),
        "too-many-dims": _idx(8, (1,) * 33, b"\0"),
        "zero-dims": _idx(8, (), b""),
        "unknown-type": _idx(0x0A, (2,), b"\0\0"),
        "trailing": lab20 + b"\0\0\0",
        "empty": b"",
        "short": b"\0\0\x08",
    }
    for code, fmt in ((9, ">i1"), (0x0B, ">i2"), (0x0C, ">i4"), (0x0D, ">f4"), (0x0E, ">f8")):
        seeds[f"type-{code:02x}"] = _idx(code, (2, 3), np.arange(-3, 3).astype(fmt).tobytes())
    for name, data in list(seeds.items()):
        _write("idx", name, data)
        _write("idx", name + ".gz", _gz(data))
    _write("idx", "gzip-bomb.gz", _gz(_idx(8, (1, 1000, 1000), bytes(10**6))))
    _write("idx", "gzip-two-members.gz", _gz(img2[:100]) + _gz(img2[100:]))
    _write("idx", "gzip-truncated.gz", _gz(img2)[:-9])
    _write("idx", "gzip-trailing-junk.gz", _gz(lab20) + b"junk")
    with open(os.path.join(FASHION, "train-labels-idx1-ubyte.gz"), "rb") as f:
        _write("idx", "real-labels-first-4k.gz", f.read(4096))


SEEDS = {"binding": binding_seeds, "load": load_seeds, "idx": idx_seeds}

if __name__ == "__main__":
    for target in sys.argv[1:] or list(SEEDS):
        SEEDS[target]()
