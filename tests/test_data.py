"""normreg.data: the IDX reader, Fashion-MNIST's search order and download (DataLoader:
test_dataloader.py)."""

import gzip
import hashlib
import http.server
import os
import pathlib
import struct
import threading

import numpy as np
import pytest
from _synthetic import FILES, idx_bytes, make_images, write_dataset, write_idx

from normreg import data
from normreg.data import load_fashion_mnist, read_idx

# ---- IDX ------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, compress):
    images, labels = make_images(7, seed=3)
    p_img = write_idx(tmp_path / "img.idx", images, compress)
    p_lab = write_idx(tmp_path / "lab.idx", labels, compress)
    got = read_idx(p_img)
    assert got.dtype == np.uint8 and got.shape == (7, 28, 28)
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(read_idx(p_lab), labels)


def test_read_idx_other_types(tmp_path):
    # element type 0x0D: big-endian float32, 2-D
    values = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    raw = bytes([0, 0, 0x0D, 2]) + struct.pack(">2I", 2, 3) + values.astype(">f4").tobytes()
    (tmp_path / "f.idx").write_bytes(raw)
    got = read_idx(tmp_path / "f.idx")
    assert got.dtype == np.float32 and got.dtype.isnative
    np.testing.assert_array_equal(got, values)


def test_read_idx_wrong_magic(tmp_path):
    raw = bytearray(idx_bytes(np.zeros((2, 3), np.uint8)))
    raw[0] = 0x12
    (tmp_path / "bad.idx").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="not an IDX file.*magic"):
        read_idx(tmp_path / "bad.idx")
    raw[0] = 0
    raw[2] = 0x42  # unknown element type
    (tmp_path / "bad2.idx").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="unknown IDX element type 0x42"):
        read_idx(tmp_path / "bad2.idx")


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_truncated_data(tmp_path, compress):
    raw = idx_bytes(np.ones((4, 5, 5), np.uint8))[:-10]  # 10 bytes of data missing
    path = tmp_path / "t.idx"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    with pytest.raises(ValueError, match=r"truncated IDX file.*\(4, 5, 5\).*needs 116 bytes.*has 106"):
        read_idx(path)


def test_read_idx_truncated_header_and_gzip(tmp_path):
    (tmp_path / "h.idx").write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 4]))  # 3 dims, 1 size given
    with pytest.raises(ValueError, match="truncated IDX header"):
        read_idx(tmp_path / "h.idx")
    (tmp_path / "tiny.idx").write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="truncated IDX file"):
        read_idx(tmp_path / "tiny.idx")
    full = gzip.compress(idx_bytes(np.arange(3000, dtype=np.uint8).reshape(30, 100) % 251))
    (tmp_path / "cut.gz").write_bytes(full[: len(full) // 2])  # a download cut in the middle
    with pytest.raises(ValueError, match="truncated gzip"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "corrupt.gz").write_bytes(full[:10] + bytes(len(full) - 10))
    with pytest.raises(ValueError, match=str(tmp_path / "corrupt.gz")):
        read_idx(tmp_path / "corrupt.gz")


def test_read_idx_trailing_bytes(tmp_path):
    (tmp_path / "long.idx").write_bytes(idx_bytes(np.zeros(5, np.uint8)) + b"xyz")
    with pytest.raises(ValueError, match="3 bytes after"):
        read_idx(tmp_path / "long.idx")


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope.idx")


# ---- load_fashion_mnist: search order -----------------------------------------------------------


def test_load_fashion_mnist_format(isolated):
    write_dataset(isolated / "root", n_train=50, n_test=20, seed=5)
    x_train, y_train, x_test, y_test = load_fashion_mnist(isolated / "root")
    images, labels = make_images(50, seed=5)
    assert x_train.dtype == np.float32 and x_train.shape == (50, 784)
    assert y_train.dtype == np.int64 and y_train.shape == (50,)
    assert x_test.shape == (20, 784) and y_test.shape == (20,)
    np.testing.assert_allclose(x_train, images.reshape(50, 784) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y_train, labels)
    assert x_train.min() >= 0.0 and x_train.max() <= 1.0


def test_load_fashion_mnist_raw_files(isolated):
    write_dataset(isolated / "raw", n_train=30, n_test=10, compress=False)
    x_train, _, x_test, _ = load_fashion_mnist(isolated / "raw")
    assert x_train.shape == (30, 784) and x_test.shape == (10, 784)


def test_load_fashion_mnist_search_order(isolated, monkeypatch):
    # Each place holds a dataset of a different size, so the result tells which was used.
    cache = isolated / "home" / ".cache" / "normreg" / "fashion-mnist"
    places = {
        "root": (isolated / "root", 11),
        "env": (isolated / "env", 12),
        "cache": (cache, 13),
        "debian": (isolated / "debian", 14),
    }
    for directory, n in places.values():
        write_dataset(directory, n_train=n, n_test=5)
    monkeypatch.setenv("NORMREG_DATA", str(places["env"][0]))
    assert len(load_fashion_mnist(places["root"][0])[0]) == 11
    assert len(load_fashion_mnist()[0]) == 12
    monkeypatch.delenv("NORMREG_DATA")
    assert len(load_fashion_mnist()[0]) == 13
    for name in FILES[1:]:  # an incomplete directory is skipped
        os.remove(cache / name)
    assert len(load_fashion_mnist()[0]) == 14


def test_explicit_root_without_the_files_is_an_error(isolated):
    """An explicit directory is the only place looked at: never a silent fallback to the
    data of another place (issue 11 item 8)."""
    write_dataset(isolated / "debian", n_train=14, n_test=5)  # found by the default search
    assert len(load_fashion_mnist()[0]) == 14
    with pytest.raises(FileNotFoundError, match=f"{isolated / 'nonexistent'} does not exist"):
        load_fashion_mnist(isolated / "nonexistent")
    (isolated / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=f"{isolated / 'empty'} lacks train-images-idx3-ubyte.gz, "):
        load_fashion_mnist(isolated / "empty")
    partial = isolated / "partial"
    write_dataset(partial, n_train=11, n_test=5)
    os.remove(partial / FILES[3])
    with pytest.raises(FileNotFoundError, match=r"partial lacks t10k-labels-idx1-ubyte.gz \(gzipped or not"):
        load_fashion_mnist(partial)
    (isolated / "file").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load_fashion_mnist(isolated / "file")
    assert data.find_fashion_mnist(partial) is None
    assert data.fashion_mnist_dirs(partial) == [("root", str(partial))]


def test_load_fashion_mnist_offline_message(isolated):
    with pytest.raises(RuntimeError) as info:
        load_fashion_mnist()
    message = str(info.value)
    for option in (
        "root=",
        "NORMREG_DATA",
        ".cache/normreg/fashion-mnist",
        "apt-get install dataset-fashion-mnist",
        "http://127.0.0.1:9/",
        str(isolated / "debian"),
    ):
        assert option in message
    with pytest.raises(RuntimeError, match="download=False"):
        load_fashion_mnist(download=False)


def test_load_fashion_mnist_mismatched_lengths(isolated):
    paths = write_dataset(isolated / "root", n_train=20, n_test=5)
    write_idx(paths[1], np.zeros(19, np.uint8))
    with pytest.raises(ValueError, match="19 labels for the 20 images"):
        load_fashion_mnist(isolated / "root")


# ---- download from local servers ----------------------------------------------------------------


class _Server:
    """An HTTP server on 127.0.0.1 in a thread, serving a directory and logging the paths
    asked for (into a list shared by the servers of a test, so their order shows)."""

    def __init__(self, directory, requests):
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(directory), **kwargs)

            def do_GET(self):
                requests.append(server.url + self.path.lstrip("/"))
                super().do_GET()

            def log_message(self, *args):
                pass

        self.directory = directory
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def servers(tmp_path):
    """``start(name)`` starts a server for tmp_path/name; ``requests`` lists what was asked."""
    started, requests = [], []

    def start(name):
        directory = tmp_path / name
        directory.mkdir(exist_ok=True)
        started.append(_Server(directory, requests))
        return started[-1]

    start.requests = requests
    yield start
    for server in started:
        server.close()


def _pin(monkeypatch, directory):
    """Pin the digests of the files in ``directory`` as the dataset's."""
    md5s, shas = {}, {}
    for name in FILES:
        raw = (directory / name).read_bytes()
        md5s[name], shas[name] = hashlib.md5(raw).hexdigest(), hashlib.sha256(raw).hexdigest()
    monkeypatch.setattr(data, "FASHION_MNIST_FILES", md5s)
    monkeypatch.setattr(data, "FASHION_MNIST_SHA256", shas)


def _tamper(path):
    """Change one pixel byte inside the gzip stream's data: still a valid gzip IDX file."""
    raw = gzip.decompress(path.read_bytes())
    raw = raw[:-1] + bytes([raw[-1] ^ 1])
    path.write_bytes(gzip.compress(raw, mtime=0))


@pytest.fixture
def read_idx_calls(monkeypatch):
    """The files the IDX parser is given, with their SHA-256."""
    calls = []

    def recording(path):
        calls.append((os.path.basename(path), hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()))
        return read_idx(path)

    monkeypatch.setattr(data, "read_idx", recording)
    return calls


def test_download_into_cache(isolated, servers, monkeypatch, capsys):
    good = servers("good")
    write_dataset(good.directory, n_train=40, n_test=10, seed=9)
    _pin(monkeypatch, good.directory)
    monkeypatch.setenv("NORMREG_FASHION_MNIST_URL", good.url)
    x_train, y_train, x_test, y_test = load_fashion_mnist()
    assert x_train.shape == (40, 784) and x_test.shape == (10, 784)
    cache = isolated / "home" / ".cache" / "normreg" / "fashion-mnist"
    for name in FILES:
        assert (cache / name).read_bytes() == (good.directory / name).read_bytes()
    assert sorted(os.listdir(cache)) == sorted(FILES)  # no temporary files left
    assert "train-images-idx3-ubyte.gz" in capsys.readouterr().err  # the progress bar
    # the next call finds the cache without the server
    monkeypatch.setenv("NORMREG_FASHION_MNIST_URL", "http://127.0.0.1:9/")
    np.testing.assert_array_equal(load_fashion_mnist(progress=False)[1], y_train)


def test_download_tries_the_mirrors_in_order(isolated, servers, monkeypatch, recwarn):
    """The first mirror (HTTPS by default) is asked first; one that lacks a file, serves a
    tampered one or cannot be reached is skipped for the next."""
    first, second = servers("first"), servers("second")
    write_dataset(second.directory, n_train=40, n_test=10, seed=2)
    _pin(monkeypatch, second.directory)
    write_dataset(first.directory, n_train=40, n_test=10, seed=2)
    os.remove(first.directory / FILES[1])  # 404 on the first mirror
    _tamper(first.directory / FILES[2])  # other bytes on the first mirror
    refused = "http://127.0.0.1:9/"  # the discard port: connection refused
    monkeypatch.setenv("NORMREG_FASHION_MNIST_URL", f"{refused} {first.url} {second.url}")
    load_fashion_mnist(progress=False)
    asked = servers.requests
    assert asked == [
        first.url + FILES[0],
        first.url + FILES[1],
        second.url + FILES[1],
        first.url + FILES[2],
        second.url + FILES[2],
        first.url + FILES[3],
    ]
    assert any("served a file with another digest" in str(w.message) for w in recwarn)
    cache = isolated / "home" / ".cache" / "normreg" / "fashion-mnist"
    for name in FILES:
        assert (cache / name).read_bytes() == (second.directory / name).read_bytes()


def test_download_with_the_wrong_digest_is_never_parsed(isolated, servers, monkeypatch, read_idx_calls):
    first, second = servers("first"), servers("second")
    write_dataset(first.directory, n_train=40, n_test=10)
    _pin(monkeypatch, first.directory)
    write_dataset(second.directory, n_train=40, n_test=10)
    _tamper(first.directory / FILES[0])
    _tamper(second.directory / FILES[0])
    monkeypatch.setenv("NORMREG_FASHION_MNIST_URL", f"{first.url} {second.url}")
    with (
        pytest.warns(RuntimeWarning),
        pytest.raises(ValueError, match="checksum mismatch.*train-images-idx3"),
    ):
        load_fashion_mnist(progress=False)
    assert read_idx_calls == []  # refused before it reached the IDX parser
    cache = isolated / "home" / ".cache" / "normreg" / "fashion-mnist"
    assert os.listdir(cache) == []  # nothing kept, no temporary file
    # the MD5 alone is not enough: a file with the right MD5 but another SHA-256 is refused
    write_dataset(second.directory, n_train=40, n_test=10)
    monkeypatch.setitem(data.FASHION_MNIST_SHA256, FILES[0], "0" * 64)
    with pytest.warns(RuntimeWarning), pytest.raises(ValueError, match=f"SHA-256 .*, expected {'0' * 64}"):
        load_fashion_mnist(progress=False)
    assert read_idx_calls == [] and os.listdir(cache) == []


def test_download_missing_file_on_server(isolated, servers, monkeypatch):
    server = servers("served")
    write_dataset(server.directory, n_train=40, n_test=10)
    _pin(monkeypatch, server.directory)
    os.remove(server.directory / "t10k-labels-idx1-ubyte.gz")
    monkeypatch.setenv("NORMREG_FASHION_MNIST_URL", server.url)
    with pytest.raises(RuntimeError, match="404"):
        load_fashion_mnist(progress=False)


def test_default_mirrors_https_first():
    assert data.FASHION_MNIST_URLS == (
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    )
    assert data.FASHION_MNIST_URLS[0] == data.FASHION_MNIST_URL
    assert set(data.FASHION_MNIST_FILES) == set(data.FASHION_MNIST_SHA256) == set(FILES)
    assert all(len(v) == 32 and int(v, 16) >= 0 for v in data.FASHION_MNIST_FILES.values())
    assert all(len(v) == 64 and int(v, 16) >= 0 for v in data.FASHION_MNIST_SHA256.values())


DEBIAN = pathlib.Path(data._DEBIAN_DIR)

# Debian's dataset-fashion-mnist holds the dataset's deflate streams with the gzip header
# normalized (no file name; the package's date). The dataset's own files have the flag FNAME,
# the file name and these modification times (the ones whose MD5 is the published one).
_ORIGINAL_MTIMES = {
    "train-images-idx3-ubyte.gz": 1504176606,
    "train-labels-idx1-ubyte.gz": 1504176606,
    "t10k-images-idx3-ubyte.gz": 1504176627,
    "t10k-labels-idx1-ubyte.gz": 1504176627,
}


def _original_gz(name):
    packaged = (DEBIAN / name).read_bytes()
    assert packaged[:4] == b"\x1f\x8b\x08\x00"  # deflate, no flags
    header = b"\x1f\x8b\x08\x08" + struct.pack("<I", _ORIGINAL_MTIMES[name]) + packaged[8:10]
    return header + name[:-3].encode() + b"\x00" + packaged[10:]


@pytest.mark.skipif(
    not all((DEBIAN / name).is_file() for name in FILES),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_pinned_digests_are_those_of_the_published_files(isolated, servers, monkeypatch):
    """The dataset's files rebuilt from Debian's have the MD5 the authors publish, and the
    pinned SHA-256; served locally, they download with the real pins (no patching)."""
    mirror = servers("mirror")
    for name in FILES:
        original = _original_gz(name)
        assert hashlib.md5(original).hexdigest() == data.FASHION_MNIST_FILES[name]
        assert hashlib.sha256(original).hexdigest() == data.FASHION_MNIST_SHA256[name]
        assert gzip.decompress(original) == gzip.decompress((DEBIAN / name).read_bytes())
        (mirror.directory / name).write_bytes(original)
    monkeypatch.setenv("NORMREG_FASHION_MNIST_URL", mirror.url)
    x_train, y_train, x_test, y_test = load_fashion_mnist(progress=False)
    assert x_train.shape == (60000, 784) and y_test.shape == (10000,)
