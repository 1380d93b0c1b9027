"""What the property tests (test_properties.py, test_properties_norms.py) share: hypothesis'
settings (``NORMREG_PROPERTY_EXAMPLES`` examples per op, default 100), the strategies of
shapes, dtypes, memory layouts, values and seeds, the tolerances and the random data."""

import os

import numpy as np
from helpers import LAYOUTS, layout
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("NORMREG_PROPERTY_EXAMPLES", "100"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

dtypes = st.sampled_from([np.float32, np.float64])
layouts = st.sampled_from(LAYOUTS)
seeds = st.integers(0, 2**32 - 1)


def shapes(max_side, max_dims=3, min_side=0, min_dims=0):
    """Array shapes (tuples) of ``min_dims`` to ``max_dims`` dimensions of ``min_side`` to
    ``max_side`` elements."""
    return st.lists(st.integers(min_side, max_side), min_size=min_dims, max_size=max_dims).map(tuple)


# The dtype and the memory layouts of an op's x, weight and dy.
dtype_layouts = dict(dtype=dtypes, lx=layouts, lw=layouts, ldy=layouts)

# The data's offset and spread (``Data(seed, dtype, offset, scale)``) for the normalizations.
norm_values = dict(offset=st.sampled_from([0.0, 12.0]), scale=st.sampled_from([1.0, 5.0]))

# A layer-wise norm (LayerNorm, RMSNorm): x of shape lead + norm, normalized over norm.
row_norm_args = dict(
    lead=shapes(4, max_dims=2), norm=shapes(7, max_dims=2, min_side=1, min_dims=1), **dtype_layouts
)


def tol(dtype, scale=1.0):
    if dtype == np.float32:
        return dict(rtol=1e-4, atol=2e-5 * scale)
    return dict(rtol=1e-9, atol=1e-9 * scale)


def assert_param_grad(got, ref, start, present, **t):
    """A parameter's gradient: None when the layer has no such parameter, else the
    reference's added to the gradient it started from (``start``; None: from zero)."""
    if not present:
        assert got is None
        return
    np.testing.assert_allclose(got, ref + (0 if start is None else start), **t)


class Data:
    """Random arrays from one seed: offset + scale * randn, cast to the dtype."""

    def __init__(self, seed, dtype, offset=0.0, scale=1.0):
        self.rng = np.random.default_rng(seed)
        self.dtype, self.offset, self.scale = dtype, offset, scale

    def __call__(self, shape, kind="C", offset=None, scale=None):
        a = (self.offset if offset is None else offset) + (
            self.scale if scale is None else scale
        ) * self.rng.standard_normal(shape)
        return layout(a.astype(self.dtype), kind)
