"""Hostile IDX files (``normreg.data.read_idx``): headers whose dimensions overflow, lie about
the size, declare an empty-but-huge or 33-dimensional array, gzip bombs, file objects and
random mutations. Every case must be refused with ``ValueError`` and a message naming the
file, before any large read or allocation (peak allocation measured with tracemalloc).
"""

import gzip
import io
import random
import struct

import numpy as np
import pytest
from helpers import peak_bytes_of

from normreg.data import read_idx

pytestmark = pytest.mark.sanitize


def idx(type_code, dims, payload=b""):
    return bytes([0, 0, type_code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload


@pytest.mark.parametrize("compress", [False, True])
def test_idx_dimensions_whose_product_overflows(tmp_path, compress):
    """(2**32-1)**3 elements overflow int64: refused by exact arithmetic, naming the file."""
    raw = idx(0x08, [2**32 - 1] * 3, b"\0" * 64)
    path = tmp_path / ("overflow.gz" if compress else "overflow.idx")
    path.write_bytes(gzip.compress(raw) if compress else raw)
    match = "can hold" if compress else "truncated IDX file"
    with pytest.raises(ValueError, match=f"{path}: .*{match}") as info:
        read_idx(path)
    assert str((2**32 - 1) ** 3 + 16) in str(info.value)
    assert peak_bytes_of(read_idx, path) < 1 << 20


def test_idx_declared_size_beyond_the_file_allocates_nothing(tmp_path):
    path = tmp_path / "lie.idx"
    path.write_bytes(idx(0x0E, [10**8], b"\0" * 80))  # 800 MB of float64 declared
    with pytest.raises(ValueError, match=r"needs 800000008 bytes, the file has 88"):
        read_idx(path)
    assert peak_bytes_of(read_idx, path) < 1 << 20
    gz = tmp_path / "lie.gz"
    gz.write_bytes(gzip.compress(idx(0x0E, [10**8], b"\0" * 80)))
    with pytest.raises(ValueError, match=r"more than a \d+-byte gzip file can hold"):
        read_idx(gz)
    assert peak_bytes_of(read_idx, gz) < 1 << 20


def test_idx_gzip_bomb_after_a_small_header(tmp_path):
    """A header declaring 10 bytes followed by 64 MB of zeros (64 KB compressed): the
    extra data is counted, never held."""
    path = tmp_path / "bomb.gz"
    with gzip.open(path, "wb") as f:
        f.write(idx(0x08, [10], b"\1" * 10))
        block = bytes(1 << 20)
        for _ in range(64):
            f.write(block)
    with pytest.raises(ValueError, match=f"{path}: corrupted IDX file: {64 << 20} bytes after the 18"):
        read_idx(path)
    assert peak_bytes_of(read_idx, path) < 8 << 20


def test_idx_empty_but_huge_and_too_many_dimensions(tmp_path):
    path = tmp_path / "empty-huge.idx"
    path.write_bytes(idx(0x08, [0, 2**32 - 1, 2**32 - 1]))
    with pytest.raises(ValueError, match=f"{path}: IDX header declares shape .* cannot be allocated"):
        read_idx(path)
    path.write_bytes(idx(0x08, [0, 5, 7]))
    assert read_idx(path).shape == (0, 5, 7)
    path.write_bytes(idx(0x08, [1] * 33, b"\0"))
    with pytest.raises(ValueError, match="declares 33 dimensions"):
        read_idx(path)


def test_idx_file_objects():
    images = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx(0x08, images.shape, images.tobytes())
    np.testing.assert_array_equal(read_idx(io.BytesIO(raw)), images)
    np.testing.assert_array_equal(read_idx(io.BytesIO(gzip.compress(raw))), images)
    floats = np.linspace(-1, 1, 6).reshape(2, 3)
    got = read_idx(io.BytesIO(idx(0x0E, floats.shape, floats.astype(">f8").tobytes())))
    assert got.dtype == np.float64 and got.dtype.isnative and got.flags.writeable
    np.testing.assert_array_equal(got, floats)
    with pytest.raises(ValueError, match="<IDX file object>: truncated IDX file"):
        read_idx(io.BytesIO(raw[:-1]))
    with pytest.raises(TypeError, match="binary mode"):
        read_idx(io.StringIO("\0\0\x08\x01"))


def test_idx_random_mutations():
    """Mutated IDX files (raw and gzipped): an array or ValueError, nothing else."""
    images = np.random.default_rng(0).integers(0, 256, (3, 4, 5), dtype=np.uint8)
    rng = random.Random(1)
    counts = {"read": 0, "refused": 0}
    for compress in (False, True):
        good = idx(0x08, images.shape, images.tobytes())
        good = gzip.compress(good, mtime=0) if compress else good
        for _ in range(400):
            data = bytearray(good)
            if rng.random() < 0.5:
                for _ in range(rng.randrange(1, 4)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
            else:
                i = rng.randrange(len(data) - 4)
                data[i : i + 4] = struct.pack(">I", rng.choice([0, 1, 2**31, 2**32 - 1]))
            try:
                read_idx(io.BytesIO(bytes(data)))
                counts["read"] += 1
            except ValueError:
                counts["refused"] += 1
    assert counts["refused"] > 200, counts
