"""Shared helpers for the tests: tolerances and comparisons against the references."""
import numpy as np

DTYPES = (np.float32, np.float64)

# Relative tolerance and absolute tolerance (relative to the largest expected magnitude)
# when a result in ``dtype`` is compared with a float64 reference.
_TOL = {np.dtype(np.float32): (1e-4, 1e-5), np.dtype(np.float64): (1e-10, 1e-12)}


def assert_close(actual, expected, dtype, scale=None, err_msg=""):
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{err_msg}: shape {actual.shape} vs {expected.shape}"
    rtol, atol = _TOL[np.dtype(dtype)]
    if scale is None:
        scale = max(float(np.abs(expected).max()) if expected.size else 0.0, 1.0)
    np.testing.assert_allclose(actual.astype(np.float64), expected, rtol=rtol,
                               atol=atol * scale, err_msg=err_msg)


def frozen(a):
    """A read-only copy of ``a`` (to check inputs are never written)."""
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


def noncontig(a):
    """``a`` as a non-contiguous view with the same values (every other element of a
    buffer twice as wide in the last dimension)."""
    a = np.asarray(a)
    buf = np.empty(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    buf[..., ::2] = a
    buf[..., 1::2] = np.nan if a.dtype.kind == "f" else -1
    v = buf[..., ::2]
    assert not v.flags.c_contiguous or a.shape[-1] <= 1
    return v
