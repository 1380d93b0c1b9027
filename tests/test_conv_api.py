"""Conv2d's PyTorch arguments: their order (dilation sixth), the ones taking only their
default, and padding "valid" / "same" against the NumPy reference."""

import numpy as np
import pytest
import reference as R

from normreg import functional as F
from normreg import nn


def test_pytorch_arguments_in_pytorch_order():
    """Conv2d(in, out, k, stride, padding, dilation, groups, bias, padding_mode, device,
    dtype) as PyTorch's: a sixth positional argument is dilation, not bias; dilation and
    groups other than 1, another padding_mode or device are refused, not ignored."""
    m = nn.Conv2d(3, 4, 3, 1, 0, 1, 1, False)
    assert m.bias is None
    for args, kw, what in (
        ((3, 4, 3, 1, 0, 2), {}, "dilation"),
        ((3, 4, 3), {"dilation": (1, 2)}, "dilation"),
        ((3, 4, 3, 1, 0, 1, 3), {}, "groups"),
        ((3, 4, 3), {"padding_mode": "reflect"}, "padding_mode"),
        ((3, 4, 3), {"device": "cuda"}, "device"),
    ):
        with pytest.raises(ValueError, match=what):
            nn.Conv2d(*args, **kw)
    with pytest.raises(ValueError, match="dilation"):
        F.conv2d(np.ones((1, 3, 5, 5)), np.ones((4, 3, 3, 3)), None, 1, 0, 2)


@pytest.mark.parametrize("k", [1, 3, (5, 3)])
def test_padding_valid_and_same(rng, k):
    """'valid' is padding 0; 'same' (stride 1, odd kernels) gives an output of the input's
    size, padding k // 2 on each side: the reference with that padding."""
    x = rng.standard_normal((2, 3, 7, 6))
    kh, kw = (k, k) if isinstance(k, int) else k
    w = rng.standard_normal((4, 3, kh, kw))
    b = rng.standard_normal(4)
    y = F.conv2d(x, w, b, 1, "same")
    assert y.shape == (2, 4, 7, 6)
    np.testing.assert_allclose(y, R.conv2d(x, w, b, 1, (kh // 2, kw // 2)), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(F.conv2d(x, w, b, 1, "valid"), R.conv2d(x, w, b, 1, 0), rtol=1e-10, atol=1e-12)
    m = nn.Conv2d(3, 4, k, padding="same", dtype=np.float64)
    assert m.padding == (kh // 2, kw // 2) and m(x).shape == (2, 4, 7, 6)
    assert m.backward(np.ones((2, 4, 7, 6))).shape == x.shape
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="even kernel size"):
        F.conv2d(x, rng.standard_normal((4, 3, 2, 3)), None, 1, "same")
    with pytest.raises(ValueError, match="'valid' or 'same'"):
        nn.Conv2d(3, 4, 3, padding="full")
