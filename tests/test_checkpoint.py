"""Checkpoints: round trips, atomic writes, refusal of corrupted and pickle-bearing files."""

import io
import os
import pickle
import stat
import zipfile

import numpy as np
import pytest
from helpers import train_steps

import normreg
from normreg import nn, optim, serialization


def _model():
    normreg.manual_seed(1)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2, dtype=np.float32))


def _train(model, opt, steps=3):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 4)).astype(np.float32)
    train_steps(model, opt, x, rng.integers(0, 2, 16), steps)
    return x


def _equal(a, b):
    """Structural equality with types, dtypes and shapes."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _equal(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _equal(x, y)
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b)
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


def test_round_trip_of_nested_values(tmp_path):
    obj = {
        "epoch": 7,
        "best": 0.25,
        "nan": float("nan"),
        "inf": float("-inf"),
        "name": "run-1",
        "done": False,
        "nothing": None,
        "big": 2**62,
        "arrays": [
            np.arange(6, dtype=np.float32).reshape(2, 3),
            np.zeros((0, 4)),
            np.array(5, dtype=np.int64),
            np.array([True, False]),
            np.array(["a", "bc"]),
        ],
        "scalars": (np.float32(1.5), np.int64(-3), np.float64(2.0)),
        3: {"nested": {"deeper": [1, [2, (3.5,)]]}},
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    }
    path = tmp_path / "ck.npz"
    normreg.save(obj, path)
    assert sorted(os.listdir(tmp_path)) == ["ck.npz"]  # no temporary left, no name change
    loaded = normreg.load(path)
    _equal(obj, loaded)
    assert loaded["arrays"][0].flags.writeable
    normreg.save(obj, str(tmp_path / "plain"))  # str path, no extension appended
    assert os.path.exists(tmp_path / "plain")


def test_module_and_optimizer_state_round_trip(tmp_path):
    model = _model()
    opt = optim.SGD(optim.param_groups(model, 5e-4), lr=0.1, momentum=0.9)
    x = _train(model, opt)
    normreg.save(
        {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, tmp_path / "ck.npz"
    )
    ck = normreg.load(tmp_path / "ck.npz")
    model2 = _model()
    opt2 = optim.SGD(optim.param_groups(model2, 5e-4), lr=0.1, momentum=0.9)
    model2.load_state_dict(ck["model"])
    opt2.load_state_dict(ck["optimizer"])
    assert ck["epoch"] == 3
    model.eval()
    model2.eval()
    np.testing.assert_array_equal(model(x), model2(x))
    model.train()
    model2.train()
    _train(model, opt)
    _train(model2, opt2)
    for (n1, p1), (n2, p2) in zip(model.named_parameters(), model2.named_parameters()):
        assert n1 == n2
        np.testing.assert_array_equal(p1.data, p2.data)


def test_module_load_state_dict_names_the_key(tmp_path):
    model = _model()
    sd = model.state_dict()
    sd["0.weight"] = sd["0.weight"][:2]
    normreg.save(sd, tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="'0.weight' has shape"):
        model.load_state_dict(normreg.load(tmp_path / "bad.npz"))
    sd = model.state_dict()
    sd["1.running_var"] = sd["1.running_var"].astype(np.complex64)
    with pytest.raises(TypeError, match="'1.running_var' has dtype complex64"):
        model.load_state_dict(sd)
    sd = model.state_dict()
    sd["1.num_batches_tracked"] = np.asarray(sd["1.num_batches_tracked"], np.float64)
    with pytest.raises(TypeError, match="'1.num_batches_tracked' has dtype float64"):
        model.load_state_dict(sd)
    sd = model.state_dict()
    del sd["3.bias"]
    sd["extra"] = np.zeros(1)
    with pytest.raises(KeyError, match=r"missing keys \['3.bias'\].*unexpected keys \['extra'\]"):
        model.load_state_dict(sd)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert missing == ["3.bias"] and unexpected == ["extra"]


def _write_old(path):
    normreg.save({"version": "old", "w": np.ones(3)}, path)
    return path.read_bytes()


@pytest.mark.parametrize("where", ["replace", "writer", "fsync"])
def test_failure_during_save_keeps_the_old_file(tmp_path, monkeypatch, where):
    path = tmp_path / "ck.npz"
    old = _write_old(path)

    def boom(*args, **kwargs):
        raise OSError("simulated crash")

    if where == "replace":
        monkeypatch.setattr(serialization.os, "replace", boom)
    elif where == "fsync":
        monkeypatch.setattr(serialization.os, "fsync", boom)
    else:
        real = serialization._write_archive

        def half_then_crash(f, arrays, structure):
            real(f, arrays, structure)
            f.truncate(f.tell() // 2)
            raise OSError("simulated crash")

        monkeypatch.setattr(serialization, "_write_archive", half_then_crash)
    with pytest.raises(OSError, match="simulated crash"):
        normreg.save({"version": "new", "w": np.zeros(1000)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["ck.npz"]  # the temporary was removed
    assert normreg.load(path)["version"] == "old"


def test_unsavable_values_raise_before_touching_the_file(tmp_path):
    path = tmp_path / "ck.npz"
    old = _write_old(path)
    for obj, msg in [
        ({"f": lambda: 0}, r"obj\['f'\] is a function"),
        ({"o": np.array([object()])}, "dtype object"),
        ({1.5: 2}, "dict keys must be str or int"),
        ({"s": {1, 2}}, "is a set"),
    ]:
        with pytest.raises(TypeError, match=msg):
            normreg.save(obj, path)
    assert path.read_bytes() == old


@pytest.mark.parametrize("f", [5, None, 2.5, bytearray(b"ck.npz"), ["ck.npz"]])
def test_load_of_what_is_neither_a_path_nor_a_file_names_f(f):
    with pytest.raises(TypeError, match=r"normreg.load: f must be a path .* or a binary file object"):
        normreg.load(f)


def test_load_of_a_text_mode_file_says_binary_mode(tmp_path):
    path = tmp_path / "ck.npz"
    normreg.save({"w": np.arange(300.0)}, path)  # bytes that are not valid UTF-8
    with open(path, encoding="utf-8") as fh:
        with pytest.raises(TypeError, match="must be opened in binary mode"):
            normreg.load(fh)
        assert fh.tell() == 0  # nothing was read
    with pytest.raises(TypeError, match="must be opened in binary mode"):
        normreg.load(io.StringIO("PK\x03\x04"))

    class TextReader:  # no io base class: its read returns str
        def read(self, n=-1):
            return "PK\x03\x04"[: max(n, 0)] if n >= 0 else "PK\x03\x04"

    with pytest.raises(TypeError, match="must be opened in binary mode"):
        normreg.load(TextReader())
    with open(path, "rb") as fh:  # the same file in binary mode loads
        np.testing.assert_array_equal(normreg.load(fh)["w"], np.arange(300.0))
    np.testing.assert_array_equal(normreg.load(io.BytesIO(path.read_bytes()))["w"], np.arange(300.0))


@pytest.mark.parametrize("dest", [5, None, 2.5, ["ck.npz"]])
def test_save_to_what_is_not_a_path_names_path(tmp_path, dest):
    with pytest.raises(TypeError, match="normreg.save: path must be a str, bytes or os.PathLike"):
        normreg.save({"w": np.zeros(3)}, dest)
    assert os.listdir(tmp_path) == []


def test_save_to_a_file_object_is_refused_and_writes_nothing(tmp_path):
    refused = pytest.raises(TypeError, match="path must be .*file objects are not supported")
    with open(tmp_path / "ck.npz", "wb") as fh, refused:
        normreg.save({"w": np.zeros(3)}, fh)
    buf = io.BytesIO()
    with pytest.raises(TypeError, match="file objects are not supported"):
        normreg.save({"w": np.zeros(3)}, buf)
    assert buf.getvalue() == b""
    assert (tmp_path / "ck.npz").read_bytes() == b""
    assert sorted(os.listdir(tmp_path)) == ["ck.npz"]


def test_save_and_load_take_bytes_paths(tmp_path):
    path = os.fsencode(tmp_path / "ck.npz")
    normreg.save({"w": np.arange(4.0)}, path)
    assert sorted(os.listdir(tmp_path)) == ["ck.npz"]
    np.testing.assert_array_equal(normreg.load(path)["w"], np.arange(4.0))


def test_truncated_and_corrupted_files_raise_a_clear_error(tmp_path):
    path = tmp_path / "ck.npz"
    normreg.save({"w": np.arange(1000.0), "epoch": 1}, path)
    data = path.read_bytes()
    for cut in (0, 10, len(data) // 2, len(data) - 10):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(normreg.CheckpointError, match="corrupted|truncated|not a normreg"):
            normreg.load(bad)
    flipped = bytearray(data)
    start = data.find(b"\x93NUMPY", 100)  # inside the array entry's data
    for i in range(start + 200, start + 260):
        flipped[i] ^= 0xFF
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(normreg.CheckpointError, match="corrupted"):
        normreg.load(bad)
    assert issubclass(normreg.CheckpointError, ValueError)
    with pytest.raises(FileNotFoundError):
        normreg.load(tmp_path / "missing.npz")


def test_foreign_archives_are_refused(tmp_path):
    plain = tmp_path / "plain.npz"
    np.savez(plain, w=np.ones(2))
    with pytest.raises(normreg.CheckpointError, match="not a normreg checkpoint"):
        normreg.load(plain)
    npy = tmp_path / "a.npy"
    np.save(npy, np.ones(2))
    with pytest.raises(normreg.CheckpointError, match="not a normreg checkpoint"):
        normreg.load(npy)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_bearing_files_are_refused(tmp_path):
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps({"w": np.ones(2), "x": _Evil()}))
    with pytest.raises(normreg.CheckpointError, match="pickled"):
        normreg.load(raw)
    # an archive made by normreg.save, with an object array slipped in
    ck = tmp_path / "ck.npz"
    normreg.save({"w": np.ones(2)}, ck)
    with zipfile.ZipFile(ck, "a") as z, z.open("a1.npy", "w") as f:
        np.lib.format.write_array(f, np.array([_Evil()], dtype=object), allow_pickle=True)
    with pytest.raises(normreg.CheckpointError, match="pickled"):
        normreg.load(ck)
    # np.savez of an object array (pickled inside)
    obj = tmp_path / "obj.npz"
    np.savez(
        obj,
        __normreg__=np.array('{"format": "normreg-checkpoint", "version": 1, "root": null}'),
        a0=np.array([{"a": 1}], dtype=object),
    )
    with pytest.raises(normreg.CheckpointError, match="pickled"):
        normreg.load(obj)


def test_save_fsyncs_the_file_then_renames_then_fsyncs_the_directory(tmp_path, monkeypatch):
    """The order that makes a save durable: the data reaches the disk before the rename, and
    the rename (a directory entry) reaches it before save returns."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        st = os.fstat(fd)
        events.append(("fsync-dir" if stat.S_ISDIR(st.st_mode) else "fsync-file", st.st_ino))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(serialization.os, "fsync", fsync)
    monkeypatch.setattr(serialization.os, "replace", replace)
    sub = tmp_path / "run"
    sub.mkdir()
    normreg.save({"w": np.ones(3)}, sub / "ck.npz")
    kinds = [e[0] for e in events]
    assert kinds == ["fsync-file", "replace", "fsync-dir"], events
    assert events[1][1] == "ck.npz"
    assert events[0][1] == os.stat(sub / "ck.npz").st_ino  # the temporary became the file
    assert events[2][1] == os.stat(sub).st_ino  # the destination's directory


def test_module_load_state_dict_takes_other_floats_and_an_absent_batch_count():
    """As PyTorch's: a float64 state loads into a float32 model (rounded to float32, as
    ``copy_`` does), and a batch norm's num_batches_tracked may be absent (the count kept)."""
    model = _model()
    sd = {k: np.asarray(v, np.float64) if v.dtype.kind == "f" else v for k, v in model.state_dict().items()}
    rng = np.random.default_rng(5)
    sd["0.weight"] = rng.standard_normal(sd["0.weight"].shape)
    count = model.state_dict()["1.num_batches_tracked"]
    del sd["1.num_batches_tracked"]
    assert model.load_state_dict(sd) == ([], [])
    assert model.state_dict()["0.weight"].dtype == np.float32
    np.testing.assert_array_equal(model.state_dict()["0.weight"], sd["0.weight"].astype(np.float32))
    assert model.state_dict()["1.num_batches_tracked"] == count
