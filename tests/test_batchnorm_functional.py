"""Functional batch norm as PyTorch's F.batch_norm takes it: (N, C, *) input against the
NumPy reference, and training flags that must be bools."""

import numpy as np
import pytest
import reference as R
from helpers import offset_randn

from normreg import functional as F


@pytest.mark.parametrize("shape", [(4, 3, 5, 2), (3, 2, 2, 2, 3)])
@pytest.mark.parametrize("training", [True, False])
def test_functional_batch_norm_takes_any_trailing_dimensions(rng, shape, training):
    """F.batch_norm on (N, C, *) as PyTorch's: each trailing position a value of its channel,
    against the NumPy reference on the same data; the backward likewise."""
    x = offset_randn(rng, shape, np.float64)
    C = shape[1]
    w, b = rng.standard_normal(C), rng.standard_normal(C)
    rm, rv = rng.standard_normal(C), rng.uniform(0.5, 2.0, C)
    rm0, rv0 = rm.copy(), rv.copy()
    y, mean, rstd = F.batch_norm(x, rm, rv, w, b, training=training, momentum=0.3)
    if training:
        y_ref, rm_ref, rv_ref, _, _ = R.batch_norm_train(x, w, b, rm0, rv0, momentum=0.3)
        np.testing.assert_allclose(rm, rm_ref, rtol=1e-10)
        np.testing.assert_allclose(rv, rv_ref, rtol=1e-10)
    else:
        y_ref = R.batch_norm_eval(x, rm0, rv0, w, b)
    assert y.shape == shape
    np.testing.assert_allclose(y, y_ref, rtol=1e-9, atol=1e-10)
    dy = rng.standard_normal(shape)
    dx, dw, db = F.batch_norm_backward(dy, x, mean, rstd, w, training=training)
    if training:
        ref = R.batch_norm_train_backward(dy, x, w)
    else:
        ref = R.batch_norm_eval_backward(dy, x, rm0, rv0, w)
    np.testing.assert_allclose(dx, ref[0], rtol=1e-8, atol=1e-9)
    with pytest.raises(ValueError, match="2 dimensions or more"):
        F.batch_norm(np.ones(3), None, None, training=True)


@pytest.mark.parametrize("flag", ["no", "False", 0, 1, None])
def test_functional_training_flags_are_bools(flag):
    """training="no" would be True: only bool (or np.bool_) passes, as the modules' flags."""
    x = np.ones((4, 3))
    with pytest.raises(TypeError, match="training must be a bool"):
        F.batch_norm(x, np.zeros(3), np.ones(3), training=flag)
    with pytest.raises(TypeError, match="training must be a bool"):
        F.batch_norm_backward(x, x, np.zeros(3), np.ones(3), training=flag)
    with pytest.raises(TypeError, match="training must be a bool"):
        F.dropout(x, 0.5, flag)
    assert F.dropout(x, 0.5, np.bool_(False))[1] is None
