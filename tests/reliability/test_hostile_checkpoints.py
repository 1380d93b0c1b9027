"""Hostile checkpoints (``normreg.load``) crafted to lie about their sizes, nest without end,
smuggle pickles or duplicate members (hostile IDX files: test_hostile_idx.py).

Every case must be refused with ``CheckpointError`` and a message, before any large read or
allocation: never MemoryError, RecursionError, a hang or a crash. Cases that could hang or
exhaust memory on a broken reader run in a child process with a timeout and an address-space
limit; the others measure their peak allocation with tracemalloc.
"""

import io
import json
import os
import random
import resource
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib

import numpy as np
import pytest
from helpers import peak_bytes_of

import normreg

pytestmark = pytest.mark.sanitize

CheckpointError = normreg.CheckpointError
HEADER = {"format": "normreg-checkpoint", "version": 1}


# ---- crafting archives -------------------------------------------------------------------------


def npy(descr, shape, payload=b"", fortran=False, version=(1, 0)):
    """The bytes of a ``.npy`` member whose header says anything we like."""
    text = f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {tuple(shape)!r}, }}"
    size_bytes = 2 if version == (1, 0) else 4
    pad = -(len(text) + 1 + 8 + size_bytes) % 64
    header = (text + " " * pad + "\n").encode("latin1")
    size = struct.pack("<H" if size_bytes == 2 else "<I", len(header))
    return b"\x93NUMPY" + bytes(version) + size + header + payload


def npy_of(array):
    f = io.BytesIO()
    np.lib.format.write_array(f, np.asarray(array), allow_pickle=False)
    return f.getvalue()


def structure(root, **header):
    return npy_of(np.array(json.dumps({**HEADER, **header, "root": root})))


def archive(members, compression=zipfile.ZIP_STORED):
    """A zip archive of ``(name, bytes)`` members (a name may repeat)."""
    f = io.BytesIO()
    with zipfile.ZipFile(f, "w", compression) as z:
        for name, data in members:
            if name in z.NameToInfo:
                with pytest.warns(UserWarning, match="Duplicate name"):
                    z.writestr(name, data)
            else:
                z.writestr(name, data)
    return f.getvalue()


def checkpoint(*arrays, root=None):
    """An archive as normreg.save writes it: the structure and members a0.npy, a1.npy..."""
    if root is None:
        root = {"list": [{"array": f"a{i}"} for i in range(len(arrays))]}
    return archive([("__normreg__.npy", structure(root))] + [(f"a{i}.npy", m) for i, m in enumerate(arrays)])


def _local_header(name, data):
    n = name.encode()
    crc = zlib.crc32(data)
    return struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, crc, len(data), len(data), len(n), 0) + n


def _central_entry(name, data, offset):
    n = name.encode()
    crc = zlib.crc32(data)
    fixed = struct.pack(
        "<IHHHHHHIIIHHHHHII",
        0x02014B50,
        20,
        20,
        0,
        0,
        0,
        0,
        crc,
        len(data),
        len(data),
        len(n),
        0,
        0,
        0,
        0,
        0,
        offset,
    )
    return fixed + n


def overlapping_archive(big):
    """``a0.npy``'s data is ``a1.npy``'s local header and data: two members, one copy of the
    bytes (the overlapping-entries trick of zip bombs)."""
    s = structure({"list": [{"array": "a0"}, {"array": "a1"}]})
    inner = _local_header("a1.npy", big) + big
    body = _local_header("__normreg__.npy", s) + s
    off_a0 = len(body)
    body += _local_header("a0.npy", inner) + inner
    off_a1 = off_a0 + len(_local_header("a0.npy", inner))
    central = (
        _central_entry("__normreg__.npy", s, 0)
        + _central_entry("a0.npy", inner, off_a0)
        + _central_entry("a1.npy", big, off_a1)
    )
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 3, 3, len(central), len(body), 0)
    return body + central + end


def refused(data, match):
    """``normreg.load`` of ``data`` (as a file, then as bytes in a file object) raises
    CheckpointError matching ``match``; returns the message."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "hostile.npz")
        with open(path, "wb") as f:
            f.write(data)
        with pytest.raises(CheckpointError, match=match) as info:
            normreg.load(path)
    with pytest.raises(CheckpointError, match=match):
        normreg.load(io.BytesIO(data))
    return str(info.value)


# AddressSanitizer (scripts/sanitize.sh) reserves terabytes of address space for its shadow
# memory: there the children run without the address-space limit (the timeout still holds).
UNDER_ASAN = "asan" in os.environ.get("LD_PRELOAD", "")


def run_child(code, timeout=60, address_space=3 << 30):
    """Run ``code`` in a fresh interpreter with an address-space limit and a timeout."""

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=None if UNDER_ASAN else limit,
    )


# ---- normreg.load: reading before checking -----------------------------------------------------


def test_dev_zero_is_refused_at_once():
    """/dev/zero used to be read whole (forever): 4 bytes decide now."""
    code = (
        "import time, normreg\n"
        "t = time.perf_counter()\n"
        "try:\n"
        "    normreg.load('/dev/zero')\n"
        "except normreg.CheckpointError as exc:\n"
        "    print('refused', round(time.perf_counter() - t, 3), exc)\n"
    )
    proc = run_child(code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("refused") and "not a normreg checkpoint" in proc.stdout
    assert float(proc.stdout.split()[1]) < 5


@pytest.mark.parametrize("start", [b"not a checkpoint", b"PK\x03\x04garbage"])
def test_a_huge_foreign_file_costs_nothing(tmp_path, start):
    """A 1.5 GB file (sparse: no disk used) that is not a checkpoint, whether or not it
    starts like a zip archive: refused in well under a second, reading a few kilobytes."""
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.write(start)
        f.truncate(1536 << 20)
    code = (
        "import resource, time, normreg\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "t = time.perf_counter()\n"
        "try:\n"
        f"    normreg.load({str(path)!r})\n"
        "except normreg.CheckpointError as exc:\n"
        "    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
        "    print(grew, round(time.perf_counter() - t, 3), exc)\n"
    )
    proc = run_child(code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    grew_kib, seconds = proc.stdout.split()[:2]
    assert int(grew_kib) < 16 << 10, proc.stdout  # resident high-water mark, KiB
    assert float(seconds) < 5, proc.stdout
    assert "not a normreg checkpoint" in proc.stdout or "corrupted" in proc.stdout


# ---- normreg.load: members that lie -------------------------------------------------------------


def test_member_declaring_a_huge_shape():
    """(2**40,) float32 used to be a MemoryError; 10**12 elements too."""
    for shape in [(2**40,), (10**6, 10**6), (2**62, 2**62)]:
        msg = refused(checkpoint(npy("<f4", shape, b"\0" * 16)), "declares shape")
        assert "holds 16 bytes" in msg


def test_member_lying_about_its_size_allocates_nothing_large():
    """800 MB declared, 80 bytes present: refused before the 800 MB are allocated."""
    data = checkpoint(npy("<f8", (10**8,), b"\0" * 80))
    refused(data, r"declares shape \(100000000,\) of float64 \(800000000 bytes\) but holds 80 bytes")
    assert peak_bytes_of(normreg.load, io.BytesIO(data)) < 1 << 20


def test_member_with_more_bytes_than_its_shape():
    refused(
        checkpoint(npy("<f8", (2,), b"\0" * 24)),
        r"declares shape \(2,\) of float64 \(16 bytes\) but holds 24",
    )
    refused(checkpoint(npy("<f8", (-1, 3), b"")), "negative shape")


@pytest.mark.parametrize(
    "descr, match",
    [
        ("|O", "pickled"),
        ([("a", "<f4"), ("b", "<i8")], "dtype"),
        ("|V8", "dtype"),
        ("<M8[s]", "dtype"),
        ("|S0", "dtype"),
    ],
)
def test_members_of_dtypes_save_never_writes(descr, match):
    refused(checkpoint(npy(descr, (1,), b"\x80\x04" + b"\0" * 14)), match)


def test_unreadable_npy_headers():
    refused(checkpoint(b"\x93NUMPY\x01\x00" + b"\xff" * 40), "unreadable .npy header")
    refused(checkpoint(b"not npy at all"), "unreadable .npy header")
    refused(checkpoint(npy("<f4", (1,), b"\0" * 4, version=(3, 0))), "unreadable .npy header")
    deep = "{'descr': '<f4', 'fortran_order': False, 'shape': " + "(" * 5000 + ")" * 5000 + "}"
    refused(
        checkpoint(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(deep) + 1) + deep.encode() + b"\n"), "npy"
    )


def test_unexpected_members():
    ok = npy_of(np.ones(2))
    for name in [
        "evil.npy",
        "../a0.npy",
        "a01.npy",
        "a0.npy/",
        "__normreg__",
        "a0.pkl",
        "a" + "9" * 12 + ".npy",
    ]:
        data = archive([("__normreg__.npy", structure({"array": "a0"})), ("a0.npy", ok), (name, ok)])
        msg = refused(data, "unexpected archive member")
        assert repr(name) in msg


def test_duplicated_members():
    """Which copy is meant is ambiguous: zipfile (and np.load) silently took the last one."""
    s = structure({"array": "a0"})
    for members in (
        [("__normreg__.npy", s), ("a0.npy", npy_of(np.ones(2))), ("a0.npy", npy_of(np.zeros(2)))],
        [
            ("__normreg__.npy", s),
            ("__normreg__.npy", structure({"array": "a0"})),
            ("a0.npy", npy_of(np.ones(2))),
        ],
    ):
        refused(archive(members), r"holds the archive members \[.*\] more than once")


def test_compressed_members():
    s = structure({"array": "a0"})
    data = archive([("__normreg__.npy", s), ("a0.npy", npy_of(np.zeros(1000)))], zipfile.ZIP_DEFLATED)
    refused(data, r"compressed \(method 8\)")


def test_overlapping_members_cannot_multiply_the_file():
    """Two members sharing one region of the file would allocate twice its size."""
    big = npy_of(np.zeros(1 << 17))  # 1 MiB
    data = overlapping_archive(big)
    refused(data, "more than the .*-byte file holds")
    assert peak_bytes_of(normreg.load, io.BytesIO(data)) < 1 << 20


def test_member_past_the_end_of_the_file(tmp_path):
    path = tmp_path / "ck.npz"
    normreg.save({"w": np.zeros(1 << 16)}, path)
    data = path.read_bytes()
    cd = data.rfind(b"PK\x01\x02")  # the last central directory entry: a0.npy, the big one
    size_field = cd + 24  # uncompressed size (compressed size at +20)
    forged = bytearray(data)
    for field in (cd + 20, size_field):
        forged[field : field + 4] = struct.pack("<I", 1 << 30)
    refused(bytes(forged), "more than the .*-byte file holds")


def test_structure_entry_problems():
    ok = npy_of(np.ones(2))
    refused(archive([("__normreg__.npy", npy_of(np.arange(3))), ("a0.npy", ok)]), "is not a string")
    refused(archive([("__normreg__.npy", npy_of(np.array("{nope"))), ("a0.npy", ok)]), "unreadable structure")
    refused(
        archive(
            [("__normreg__.npy", structure({"list": [{"array": "a0"}, {"array": "a0"}]})), ("a0.npy", ok)]
        ),
        "refers to array entry 'a0' a second time",
    )
    refused(
        archive([("__normreg__.npy", structure({"array": "a1"})), ("a0.npy", ok)]), "missing array entry 'a1'"
    )
    refused(archive([("__normreg__.npy", structure(None)), ("a0.npy", ok)]), r"array entries \['a0'\] that")
    refused(archive([("__normreg__.npy", structure(None, version=2))]), "format version 2")


@pytest.mark.parametrize("depth", [200, 1000, 100_000])
def test_deeply_nested_structure(depth):
    """A structure nested ~1,000 deep used to be a RecursionError."""
    text = json.dumps(HEADER)[:-1] + ', "root": ' + "[" * depth + "]" * depth + "}"
    refused(archive([("__normreg__.npy", npy_of(np.array(text)))]), "nested deeper than a checkpoint can be")
    node = None
    for _ in range(depth):
        node = {"list": [node]}
    if depth <= 200:  # json.dumps itself recurses
        refused(
            archive([("__normreg__.npy", npy_of(np.array(json.dumps({**HEADER, "root": node}))))]), "nested"
        )


def test_nesting_limit_is_the_same_for_save_and_load(tmp_path):
    def nested(levels):
        obj = np.arange(3)
        for i in range(levels):
            obj = {"k": obj} if i % 3 == 0 else ([obj] if i % 3 == 1 else (obj,))
        return obj

    path = tmp_path / "deep.npz"
    normreg.save(nested(normreg.serialization.MAX_DEPTH), path)
    back = normreg.load(path)
    for i in reversed(range(normreg.serialization.MAX_DEPTH)):
        back = back["k"] if i % 3 == 0 else back[0]
    np.testing.assert_array_equal(back, np.arange(3))
    with pytest.raises(ValueError, match="nested more than 64 containers deep"):
        normreg.save(nested(normreg.serialization.MAX_DEPTH + 1), tmp_path / "deeper.npz")
    cycle = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="a cycle"):
        normreg.save(cycle, tmp_path / "cycle.npz")
    assert sorted(os.listdir(tmp_path)) == ["deep.npz"]
    # a structure one level deeper than save writes is refused by load
    node = {"array": "a0"}
    for _ in range(normreg.serialization.MAX_DEPTH + 1):
        node = {"list": [node]}
    data = archive([("__normreg__.npy", structure(node)), ("a0.npy", npy_of(np.ones(1)))])
    refused(data, "nested more than 64 containers deep")


def test_file_objects(tmp_path):
    path = tmp_path / "ck.npz"
    normreg.save({"w": np.arange(4.0), "n": 3}, path)
    raw = path.read_bytes()
    got = normreg.load(io.BytesIO(raw))
    np.testing.assert_array_equal(got["w"], np.arange(4.0))
    assert got["n"] == 3 and got["w"].flags.writeable
    with open(path, "rb") as f:
        assert normreg.load(f)["n"] == 3
    prefixed = io.BytesIO(b"junk" + raw)  # read from the current position
    prefixed.seek(4)
    assert normreg.load(prefixed)["n"] == 3
    with open(path, encoding="latin1") as f, pytest.raises(TypeError, match="binary mode"):
        normreg.load(f)
    read_end, write_end = os.pipe()
    os.write(write_end, raw[:1000])
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe, pytest.raises(CheckpointError, match="not a seekable file"):
        normreg.load(pipe)


def test_random_mutations_of_a_real_checkpoint(tmp_path):
    """Bytes flipped, cut or repeated anywhere in a real checkpoint: it loads (the bytes
    changed were data) or raises CheckpointError, nothing else."""
    model = normreg.nn.Sequential(normreg.nn.Linear(5, 4), normreg.nn.BatchNorm1d(4), normreg.nn.Dropout(0.1))
    opt = normreg.optim.Adam(model.parameters(), lr=1e-3)
    path = tmp_path / "ck.npz"
    normreg.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, path)
    good = path.read_bytes()
    rng = random.Random(0)
    outcomes = {"loaded": 0, "refused": 0}
    for _ in range(600):
        data = bytearray(good)
        kind = rng.randrange(4)
        if kind == 0:
            for _ in range(rng.randrange(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 1:
            data = data[: rng.randrange(len(data))]
        elif kind == 2:
            i = rng.randrange(len(data))
            data[i:i] = data[rng.randrange(len(data)) :][: rng.randrange(1, 64)]
        else:  # a 32-bit field set to an extreme value
            i = rng.randrange(len(data) - 4)
            data[i : i + 4] = struct.pack("<I", rng.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF]))
        try:
            normreg.load(io.BytesIO(bytes(data)))
            outcomes["loaded"] += 1
        except CheckpointError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 300, outcomes
