"""The optimizers' steps on arrays of every memory layout: gradients that need converting,
parameters updated in place whatever their layout, against the NumPy references."""

import numpy as np
import pytest
import reference as R
from helpers import adam_reference, optim_tol

from normreg import optim
from normreg.nn import Parameter

DTYPES = [np.float32, np.float64]


def _odd_grad(kind, g):
    """g (2-D) in a form the kernels do not take as it is, with the same values."""
    if kind == "list":
        return g.tolist()
    if kind == "fortran":
        return np.asfortranarray(g)
    if kind == "strided":
        wide = np.zeros((g.shape[0], 2 * g.shape[1]), g.dtype)
        wide[:, ::2] = g
        return wide[:, ::2]
    return g.astype(g.dtype.newbyteorder(">"))  # "big-endian"


@pytest.mark.parametrize("kind", ["list", "fortran", "strided", "big-endian"])
@pytest.mark.parametrize(
    "make",
    [
        lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
        lambda ps: optim.AdamW(ps, lr=0.01),
        lambda ps: optim.Adam(ps, lr=0.01, amsgrad=True),
    ],
    ids=["SGD", "AdamW", "Adam amsgrad"],
)
def test_step_takes_gradients_that_need_converting(kind, make):
    """A gradient the kernels do not take as it is (a list, a strided or big-endian array)
    updates the parameter as its contiguous copy does, and is left as it was."""
    rng = np.random.default_rng(5)
    w = rng.standard_normal((4, 3))  # float64: a list of Python floats converts to it
    gs = [rng.standard_normal((4, 3)) for _ in range(3)]
    plain, odd = (
        [Parameter(w.copy()), Parameter(w.copy() + 1)],
        [Parameter(w.copy()), Parameter(w.copy() + 1)],
    )
    opt_plain, opt_odd = make(plain), make(odd)
    for g in gs:
        for p in plain:
            p.grad = g.copy()
        opt_plain.step()
        grad = _odd_grad(kind, g)
        before = np.array(grad, copy=True)
        odd[0].grad, odd[1].grad = grad, g.copy()  # one odd gradient among plain ones
        opt_odd.step()
        np.testing.assert_array_equal(np.asarray(grad), before)
    for p, q in zip(plain, odd):
        np.testing.assert_array_equal(p.data, q.data)


def _odd_param(kind, w):
    """An array of w's values (2-D, float) whose layout the kernels do not take as it is, and
    the array whose memory it is (its other entries must stay as they are)."""
    if kind == "fortran":
        a = np.asfortranarray(w)
        return a, a
    if kind == "strided":
        wide = np.full((w.shape[0], 2 * w.shape[1]), 7.0, w.dtype)
        wide[:, ::2] = w
        return wide[:, ::2], wide
    if kind == "reversed":
        a = w[::-1, ::-1].copy()
        return a[::-1, ::-1], a
    raw = np.zeros(w.nbytes + 1, np.uint8)  # "unaligned"
    a = raw[1:].view(w.dtype).reshape(w.shape)
    a[...] = w
    return a, raw


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["fortran", "strided", "reversed", "unaligned"])
@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_step_updates_a_parameter_of_any_layout_in_place(dtype, kind, name):
    """A Fortran-ordered, strided, reversed or unaligned parameter is updated as the NumPy
    reference rule says, in place (p.data stays the same array, as a tensor does in
    PyTorch), beside a C-contiguous one of the same group; the memory around a strided
    view is untouched."""
    rng = np.random.default_rng(6)
    w0 = [rng.standard_normal((4, 3)).astype(dtype) for _ in range(2)]
    grads = [rng.standard_normal((4, 3)).astype(dtype) for _ in range(3)]
    data, base = _odd_param(kind, w0[0].copy())
    base_before = base.copy()
    ps = [Parameter(w0[1].copy()), Parameter(np.zeros((4, 3), dtype))]
    ps[1].data = data
    assert not (ps[1].data.flags.c_contiguous and ps[1].data.flags.aligned)
    if name == "SGD":
        opt = optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01)
    else:
        opt = getattr(optim, name)(ps, lr=0.01, weight_decay=0.1, amsgrad=True)
    refs, bufs, sts = [w.astype(np.float64) for w in w0[::-1]], [None, None], [{}, {}]
    for g in grads:
        for i, p in enumerate(ps):
            p.grad = g.copy()
            if name == "SGD":
                refs[i], bufs[i] = R.sgd_step(refs[i], g, bufs[i], 0.1, momentum=0.9, weight_decay=0.01)
            else:
                refs[i] = adam_reference(
                    refs[i], g, sts[i], lr=0.01, weight_decay=0.1, amsgrad=True, decoupled=name == "AdamW"
                )
        opt.step()
    assert ps[1].data is data
    for p, ref in zip(ps, refs):
        np.testing.assert_allclose(p.data, ref, **optim_tol(dtype))
    if kind == "strided":
        np.testing.assert_array_equal(base[:, 1::2], base_before[:, 1::2])
    assert all(v.flags.c_contiguous for v in opt.state[ps[1]].values() if isinstance(v, np.ndarray))
    # a read-only parameter is still refused, naming it, and nothing is written
    ro = Parameter(w0[0].copy())
    ro.data = np.asfortranarray(ro.data)
    ro.data.flags.writeable = False
    ro.grad = grads[0].copy()
    with pytest.raises(ValueError, match="param is updated in place and must be writeable"):
        optim.SGD([ro], lr=0.1).step()
    np.testing.assert_array_equal(ro.data, w0[0])
