"""Careless inputs to the layers and the norms' functions: a dy of another dtype than the
forward's output, eps 0 in a training batch norm, one running estimate without the other,
strided or read-only running estimates, out= given. Each against what the checked path,
NumPy or PyTorch's documented behaviour says."""

import numpy as np
import pytest

from normreg import functional as F
from normreg import nn

X4 = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4) / 7


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.Dropout(0.5),
        lambda: nn.MaxPool2d(2),
        lambda: nn.AvgPool2d(2),
        lambda: nn.AdaptiveAvgPool2d(1),
        lambda: nn.Flatten(),
        lambda: nn.Unflatten(1, (1, 3)),
        lambda: nn.Identity(),
        lambda: nn.Residual(nn.ReLU()),
    ],
)
def test_layers_without_parameters_take_dy_of_their_outputs_dtype(make):
    """As the layers with parameters: a float64 or int dy after a float32 forward is a
    TypeError naming dy (it came back as float64, or as int through Flatten), a dy of
    another shape a ValueError; dy of the output's dtype gives dx of the input's."""
    m = make()
    y = m(X4)
    assert y.dtype == np.float32
    for bad in (np.ones(y.shape), np.ones(y.shape, np.int64)):
        with pytest.raises(TypeError, match="dy"):
            m.backward(bad)
    with pytest.raises(ValueError, match="dy"):
        m.backward(np.ones(y.shape[:-1] + (y.shape[-1] + 1,), np.float32))
    dx = m.backward(np.ones(y.shape, np.float32))
    assert dx.dtype == np.float32 and dx.shape == X4.shape


XB = np.array([[1, 2, 3], [1, 5, 3], [1, 0, 3], [1, 1, 3]], np.float32)  # two constant channels


def test_batch_norm_needs_a_positive_eps_in_training_as_pytorch():
    """eps 0 made a constant channel 0 / 0 = NaN; PyTorch's F.batch_norm raises, in training
    only (evaluation divides by the running variance)."""
    for call in (
        lambda: F.batch_norm(XB, None, None, training=True, eps=0.0),
        lambda: nn.BatchNorm1d(3, eps=0.0)(XB),
    ):
        with pytest.raises(ValueError, match="eps must be positive during training"):
            call()
    m = nn.BatchNorm1d(3, eps=0.0)
    with pytest.raises(ValueError):
        m(XB)
    assert int(m.num_batches_tracked) == 0 and not m.running_mean.any() and m.pending_forwards == 0
    m.eval()
    np.testing.assert_array_equal(m(XB), XB)  # running mean 0, variance 1


def test_batch_norm_takes_both_running_estimates_or_neither():
    with pytest.raises(ValueError, match="running_mean and running_var"):
        F.batch_norm(XB, np.zeros(3, np.float32), None, training=True)
    with pytest.raises(ValueError, match="running_mean and running_var"):
        F.batch_norm(XB, None, np.ones(3, np.float32), training=True)


def test_batch_norm_updates_strided_running_estimates_in_place():
    """As PyTorch updates a strided running tensor: the same values a contiguous one gets,
    written into the caller's view (the elements between left alone); read-only estimates
    serve an evaluation, which only reads them."""
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    want, _, _ = F.batch_norm(XB, rm, rv, training=True, momentum=0.3)
    brm, brv = np.full(6, 7, np.float32), np.full(6, 7, np.float32)
    brm[::2], brv[::2] = 0, 1
    got, _, _ = F.batch_norm(XB, brm[::2], brv[::2], training=True, momentum=0.3)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(brm[::2], rm)
    np.testing.assert_array_equal(brv[::2], rv)
    assert (brm[1::2] == 7).all() and (brv[1::2] == 7).all()
    # the update itself, against its formula: mean and unbiased variance of each channel
    np.testing.assert_allclose(rm, 0.3 * XB.mean(0), rtol=1e-6)
    np.testing.assert_allclose(rv, 0.7 + 0.3 * XB.var(0, ddof=1), rtol=1e-6)
    rm.flags.writeable = rv.flags.writeable = False
    y, _, _ = F.batch_norm(XB, rm, rv, training=False)
    np.testing.assert_allclose(y, (XB - rm) / np.sqrt(rv + 1e-5), rtol=1e-6)


@pytest.mark.parametrize(
    "call",
    [
        lambda x, o: F.layer_norm(x, (3,), out=o)[0],
        lambda x, o: F.rms_norm(x, (3,), out=o)[0],
        lambda x, o: F.group_norm(x, 1, out=o)[0],
        lambda x, o: F.batch_norm(x, None, None, training=True, out=o)[0],
        lambda x, o: F.batch_norm_elemt(x, np.zeros(3), np.ones(3, np.float32), out=o),
    ],
)
def test_norms_return_out_itself(call):
    """As NumPy's ufuncs and normreg's relu: the array given as out= is what comes back."""
    x = XB + np.arange(12, dtype=np.float32).reshape(4, 3)
    out = np.empty_like(x)
    assert call(x, out) is out
