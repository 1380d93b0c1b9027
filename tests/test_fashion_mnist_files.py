"""load_fashion_mnist refuses files that are not Fashion-MNIST's from their headers, before
reading their data, naming the file: images other than 28x28 pixels (either split), a split
without images, element types other than uint8."""

import gzip
import struct

import numpy as np
import pytest
from _synthetic import FILES, write_dataset, write_idx

from normreg.data import load_fashion_mnist, read_idx


def _replace_split(directory, which, images, labels=None):
    """Overwrite the images (and labels) of split ``which`` (0: train, 1: test) in ``directory``."""
    write_idx(directory / FILES[2 * which], images)
    if labels is not None:
        write_idx(directory / FILES[2 * which + 1], labels)
    return directory / FILES[2 * which]


@pytest.mark.parametrize(
    "which, shape", [(1, (5, 14, 56)), (1, (5, 20, 20)), (0, (20, 28, 27)), (0, (20, 784))]
)
def test_load_fashion_mnist_needs_28x28_images(isolated, which, shape):
    """Both splits' images must be Fashion-MNIST's 28x28 pixels: others (even of 784 pixels,
    whose rows would train silently) are a ValueError naming the file and its shape."""
    root = isolated / "root"
    write_dataset(root, n_train=20, n_test=5)
    path = _replace_split(root, which, np.zeros(shape, np.uint8))
    with pytest.raises(ValueError) as info:
        load_fashion_mnist(root)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and str(shape) in message, message
    assert "Fashion-MNIST's are 28x28" in message or "expected uint8 images (N, 28, 28)" in message
    # read_idx stays a generic IDX reader
    np.testing.assert_array_equal(read_idx(path), np.zeros(shape, np.uint8))


@pytest.mark.parametrize("compress", [False, True])
def test_load_fashion_mnist_checks_the_image_shape_before_reading_the_data(isolated, compress):
    """A header declaring 1000 images of 1000x1000 pixels is refused from its header alone,
    whatever the data after it (none here: read_idx would call it truncated)."""
    root = isolated / "root"
    paths = write_dataset(root, n_train=20, n_test=5, compress=compress)
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 1000, 1000, 1000)
    with open(paths[0], "wb") as f:
        f.write(gzip.compress(header) if compress else header)
    with pytest.raises(ValueError, match="truncated|more than a"):
        read_idx(paths[0])
    pattern = r"images of 1000x1000 pixels \(shape \(1000, 1000, 1000\)\); .*28x28"
    with pytest.raises(ValueError, match=pattern):
        load_fashion_mnist(root)


@pytest.mark.parametrize("which", [0, 1])
def test_load_fashion_mnist_split_without_images(isolated, which):
    root = isolated / "root"
    write_dataset(root, n_train=20, n_test=5)
    path = _replace_split(root, which, np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8))
    with pytest.raises(ValueError, match=f"^{path}: holds 0 images"):
        load_fashion_mnist(root)
    assert read_idx(path).shape == (0, 28, 28)


def test_load_fashion_mnist_wrong_element_types(isolated):
    root = isolated / "root"
    paths = write_dataset(root, n_train=20, n_test=5)
    with open(paths[1], "wb") as f:  # int32 labels
        f.write(gzip.compress(bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 20) + bytes(80)))
    pattern = f"^{paths[1]}: expected uint8 labels \\(N,\\), the file holds int32 \\(20,\\)"
    with pytest.raises(ValueError, match=pattern):
        load_fashion_mnist(root)
