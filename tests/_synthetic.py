"""Small learnable stand-ins for Fashion-MNIST, written as real IDX files by the tests."""

import gzip
import os
import struct

import numpy as np

FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def idx_bytes(array):
    """The IDX encoding of a uint8 array: magic 00 00 08 ndim, big-endian sizes, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_idx(path, array, compress=None):
    data = idx_bytes(array)
    if compress is None:
        compress = str(path).endswith(".gz")
    with open(path, "wb") as f:
        f.write(gzip.compress(data, mtime=0) if compress else data)
    return path


def make_images(n, seed, num_classes=10):
    """``n`` 28x28 uint8 images of ``num_classes`` classes, each a fixed random pattern plus
    noise, so a small MLP separates them in an epoch or two."""
    rng = np.random.default_rng(seed)
    prototypes = np.random.default_rng(1234).uniform(0, 255, (num_classes, 28, 28))
    labels = rng.integers(0, num_classes, n).astype(np.uint8)
    noise = rng.normal(0, 60, (n, 28, 28))
    images = np.clip(prototypes[labels] * 0.7 + noise + 30, 0, 255).astype(np.uint8)
    return images, labels


def write_dataset(directory, n_train=600, n_test=200, seed=0, compress=True):
    """Write the four files (gzipped, or raw without the .gz suffix) into ``directory``."""
    os.makedirs(directory, exist_ok=True)
    x_train, y_train = make_images(n_train, seed)
    x_test, y_test = make_images(n_test, seed + 1)
    paths = []
    for name, array in zip(FILES, (x_train, y_train, x_test, y_test)):
        fname = name if compress else name[:-3]
        paths.append(write_idx(os.path.join(directory, fname), array, compress))
    return paths
