"""Careless inputs to normreg.train's Python API: the fields of TrainConfig the command
line's flags would refuse, and data that is not a training and a test set of rows with
integer labels."""

import numpy as np
import pytest


def _tiny_data():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 4)).astype(np.float32), rng.integers(0, 3, 16)
    return x, y, x[:4], y[:4]


@pytest.mark.parametrize(
    "field, value, error",
    [
        ("batch_size", True, TypeError),  # was a batch of 1
        ("epochs", 1.5, TypeError),  # was CosineAnnealingLR's "T_max must be an int"
        ("epochs", 0, ValueError),  # ran nothing
        ("seed", -1, ValueError),
        ("nesterov", "no", TypeError),  # a str was true
        ("init_gain", float("inf"), ValueError),  # trained to NaN
        ("dtype", "float16", ValueError),
        ("width", "64", TypeError),
        ("width", [8, True], TypeError),
        ("schedule", "linear", ValueError),
        ("warmup_epochs", -1.0, ValueError),
    ],
)
def test_train_config_fields_are_checked_as_the_command_line_checks_them(field, value, error):
    """normreg.train's Python API refuses what normreg-train's flags refuse, naming the field,
    before anything is built or trained."""
    from normreg.train import TrainConfig, train

    config = TrainConfig(**{"width": [8], "epochs": 1, "norm": "layer", field: value})
    with pytest.raises(error, match=rf"TrainConfig: {field}"):
        train(config, _tiny_data(), log=None, progress=False)


def test_train_config_takes_a_numpy_dtype_by_name():
    from normreg.train import TrainConfig

    assert TrainConfig(dtype=np.float64).resolved().dtype == "float64"
    with pytest.raises(TypeError, match="dtype"):  # np.dtype(None) is float64: not a default
        TrainConfig(dtype=None).resolved()


@pytest.mark.parametrize(
    "part, value, error, words",
    [
        (3, None, ValueError, "the test set is empty"),  # was NumPy's "zero-size array to reduction"
        (0, None, ValueError, "the train set is empty"),
        (1, "float", TypeError, "y_train must hold integer labels"),
        (3, "negative", ValueError, "y_test holds a negative label"),
        (2, "wide", ValueError, "the samples of x_test have shape"),
        (0, "flat", ValueError, "x_train must have a sample per row"),
        (0, "images", ValueError, "x_train must have a sample per row \\(2-D\\)"),  # failed deep inside
        (2, "complex", TypeError, "x_test must hold real numbers"),  # trained on the real parts
        (1, "huge", ValueError, "y_train holds label 18446744073709551615"),  # the class count wrapped to 0
    ],
)
def test_train_checks_its_data(part, value, error, words):
    from normreg.train import TrainConfig, train

    data = list(_tiny_data())
    if value is None:  # the set emptied: both its arrays
        lo = part - 1 if part % 2 else part
        data[lo], data[lo + 1] = data[lo][:0], data[lo + 1][:0]
    elif value == "float":
        data[part] = data[part] + 0.5
    elif value == "negative":
        data[part] = data[part] - 5
    elif value == "wide":
        data[part] = np.ones((4, 5), np.float32)
    elif value == "images":
        data[0], data[2] = data[0].reshape(16, 2, 2), data[2].reshape(4, 2, 2)
    elif value == "complex":
        data[part] = data[part] + 1j
    elif value == "huge":
        data[part] = data[part].astype(np.uint64)
        data[part][0] = 2**64 - 1
    else:
        data[part] = data[part][:, 0]
    with pytest.raises(error, match=words):
        train(TrainConfig(width=[8], epochs=1, norm="layer"), tuple(data), log=None, progress=False)
