"""The cross-entropy's forms of input beyond logits (B, K) with labels (B,), as PyTorch's:
K-dimensional logits (N, C, d1, ..., dk) with labels (N, d1, ..., dk), unbatched logits (C,)
with a 0-d label, and class-probability targets of the shape of the logits. Against a float64
NumPy reference written here from PyTorch's documented formulas (log-softmax along the class
axis), its analytic gradient, central differences of its loss, and PyTorch when installed."""

import numpy as np
import pytest
from helpers import DTYPES, LAYOUTS, layout

from normreg import functional as F
from normreg import nn

# ---- the reference: whole arrays, the class axis 1 (0 when unbatched) ---------------------


def _axis(z):
    return 0 if np.ndim(z) == 1 else 1


def _log_softmax(z):
    """log softmax along the class axis, in float64."""
    z = np.asarray(z, np.float64)
    m = np.max(z, axis=_axis(z), keepdims=True)
    return z - m - np.log(np.sum(np.exp(z - m), axis=_axis(z), keepdims=True))


def _lse(z):
    z = np.asarray(z, np.float64)
    return np.log(np.sum(np.exp(z), axis=_axis(z)))


def _class_last(a, z):
    return np.moveaxis(np.asarray(a, np.float64), _axis(z), -1)


def _indices_parts(z, y, weight, ignore_index):
    """(log p with the classes last, kept mask, labels with the ignored ones 0, w (C,))."""
    C = np.shape(z)[_axis(z)]
    y = np.asarray(y)
    keep = y != ignore_index
    safe = np.where(keep, y, 0)
    w = np.ones(C) if weight is None else np.asarray(weight, np.float64)
    return _class_last(_log_softmax(z), z), keep, safe, w


def ref_indices(z, y, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """PyTorch's l_n = -w[y_n] log p[n, y_n] (0 if ignored), mixed with the smoothing term
    -sum_c w_c log p[n, c] / C; the mean over the summed weights of the kept samples."""
    logp, keep, safe, w = _indices_parts(z, y, weight, ignore_index)
    C = logp.shape[-1]
    nll = -np.take_along_axis(logp, safe[..., None], -1)[..., 0] * w[safe] * keep
    smooth = -(logp * w).sum(-1) * keep
    per = (1 - label_smoothing) * nll + label_smoothing / C * smooth
    if reduction == "none":
        return per
    return per.sum() if reduction == "sum" else per.sum() / (w[safe] * keep).sum()


def ref_indices_grad(z, y, g, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """d loss / d z for upstream g: (1 - e) w_y (p - onehot_y) + e / C (p sum(w) - w) per
    kept sample, times g (over the summed weights for the mean)."""
    logp, keep, safe, w = _indices_parts(z, y, weight, ignore_index)
    C = logp.shape[-1]
    p = np.exp(logp)
    g = np.broadcast_to(np.asarray(g, np.float64), keep.shape)
    if reduction == "mean":
        g = g / (w[safe] * keep).sum()
    d = (1 - label_smoothing) * w[safe][..., None] * (p - np.eye(C)[safe])
    d = d + label_smoothing / C * (p * w.sum() - w)
    return np.moveaxis(d * (g * keep)[..., None], -1, _axis(z))


def _smoothed(z, t, weight, label_smoothing):
    """w_c t_c (t smoothed to t (1 - e) + e / C), the classes last."""
    C = np.shape(z)[_axis(z)]
    t = _class_last(t, z) * (1 - label_smoothing) + label_smoothing / C
    return t * (np.ones(C) if weight is None else np.asarray(weight, np.float64))


def ref_probs(z, t, weight=None, reduction="mean", label_smoothing=0.0, ignore_index=-100):
    """PyTorch's l_n = -sum_c w_c t[n, c] log p[n, c]; the mean over the number of samples."""
    per = -(_smoothed(z, t, weight, label_smoothing) * _class_last(_log_softmax(z), z)).sum(-1)
    if reduction == "none":
        return per
    return per.sum() if reduction == "sum" else per.sum() / per.size


def ref_probs_grad(z, t, g, weight=None, reduction="mean", label_smoothing=0.0, ignore_index=-100):
    """g (p sum_c w_c t_c - w t) per sample (g over the number of samples for the mean)."""
    wt = _smoothed(z, t, weight, label_smoothing)
    p = np.exp(_class_last(_log_softmax(z), z))
    g = np.broadcast_to(np.asarray(g, np.float64), p.shape[:-1])
    if reduction == "mean":
        g = g / g.size
    d = g[..., None] * (p * wt.sum(-1, keepdims=True) - wt)
    return np.moveaxis(d, -1, _axis(z))


def numeric_grad(loss, z, g, h=1e-6):
    """Central differences of sum(g * loss(z)) in float64."""
    z = np.asarray(z, np.float64)
    d = np.zeros_like(z)
    for idx in np.ndindex(*z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += h
        zm[idx] -= h
        d[idx] = np.sum(g * (np.asarray(loss(zp)) - np.asarray(loss(zm)))) / (2 * h)
    return d


# ---- the cases ----------------------------------------------------------------------------

SHAPES = {"k1": (3, 4, 5), "k2": (2, 3, 4, 2), "k3": (2, 3, 2, 3, 2), "unbatched": (5,)}
PROB_SHAPES = {"2d": (4, 5), **SHAPES}

INDEX_OPTIONS = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"weight": True},
    {"weight": True, "reduction": "none"},
    {"ignore_index": 1},
    {"ignored": True},  # labels -100 (the default ignore_index) at some positions
    {"label_smoothing": 0.15},
    {"label_smoothing": 0.3, "weight": True, "ignore_index": 2, "reduction": "sum"},
    {"label_smoothing": 0.2, "weight": True, "ignore_index": -1, "ignored": True, "reduction": "none"},
    {"label_smoothing": 0.25, "weight": True, "ignore_index": 3, "ignored": True},
]

PROB_OPTIONS = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"weight": True},
    {"weight": True, "reduction": "none"},
    {"label_smoothing": 0.2},
    {"label_smoothing": 0.3, "weight": True, "reduction": "sum"},
    {"label_smoothing": 0.1, "weight": True, "ignore_index": -5},
    {"unnormalized": True, "weight": True, "reduction": "none"},  # rows not summing to 1
]

TOL = {np.float32: dict(rtol=2e-5, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-13)}
NUM_TOL = {np.float32: dict(rtol=1e-4, atol=1e-6), np.float64: dict(rtol=1e-6, atol=1e-8)}


def _samples(shape):
    return shape[:1] + shape[2:] if len(shape) > 1 else ()


def _index_case(rng, shape, opts, dtype):
    """(logits, labels, the options as F.cross_entropy takes them)."""
    C = shape[_axis(np.empty(shape))]
    z = (3 * rng.standard_normal(shape)).astype(dtype)
    y = rng.integers(0, C, _samples(shape))
    kw = {k: v for k, v in opts.items() if k != "ignored"}
    if kw.get("weight"):
        kw["weight"] = rng.uniform(0.2, 2.0, C).astype(dtype)
    if opts.get("ignored") and y.ndim:
        y.reshape(-1)[[1, 4]] = kw.get("ignore_index", -100)
    return z, y, kw


def _prob_case(rng, shape, opts, dtype):
    """(logits, class probabilities, the options)."""
    C = shape[_axis(np.empty(shape))]
    z = (3 * rng.standard_normal(shape)).astype(dtype)
    if opts.get("unnormalized"):
        t = rng.uniform(0, 2, shape)
    else:
        e = np.exp(2 * rng.standard_normal(shape))
        t = e / e.sum(axis=_axis(z), keepdims=True)
    kw = {k: v for k, v in opts.items() if k != "unnormalized"}
    if kw.get("weight"):
        kw["weight"] = rng.uniform(0.2, 2.0, C).astype(dtype)
    return z, t.astype(dtype), kw


def _dloss(rng, kw, samples, dtype):
    if kw.get("reduction") == "none":
        return rng.standard_normal(samples).astype(dtype)
    return -1.7


def _check(z, y, kw, dloss, ref, ref_grad, dtype, z_layout=None, y_layout=None):
    """F.cross_entropy, its backward and the module on (z, y) (or their layouts) against the
    reference and central differences of its loss; the inputs unchanged."""
    zl = z if z_layout is None else z_layout
    yl = y if y_layout is None else y_layout
    z0, y0 = np.array(zl), np.array(yl)
    samples = _samples(z.shape)
    want = ref(z, y, **kw)
    loss, lse = F.cross_entropy(zl, yl, **kw)
    if kw.get("reduction") == "none":
        assert isinstance(loss, np.ndarray) and loss.shape == samples and loss.dtype == dtype
    else:
        assert isinstance(loss, float)
    np.testing.assert_allclose(loss, want, **TOL[dtype])
    assert lse.shape == samples and lse.dtype == dtype
    np.testing.assert_allclose(lse, _lse(z), **TOL[dtype])
    dz = F.cross_entropy_backward(zl, yl, lse, dloss, **kw)
    assert dz.shape == z.shape and dz.dtype == dtype and dz.flags.c_contiguous
    g = np.asarray(dloss, np.float64)
    np.testing.assert_allclose(dz, ref_grad(z, y, g, **kw), **TOL[dtype])
    num = numeric_grad(lambda v: ref(v, y, **kw), z, g)
    np.testing.assert_allclose(dz, num, **NUM_TOL[dtype])
    fn = nn.CrossEntropyLoss(**kw)
    np.testing.assert_allclose(fn(zl, yl), want, **TOL[dtype])
    np.testing.assert_allclose(fn.backward(dloss), ref_grad(z, y, g, **kw), **TOL[dtype])
    np.testing.assert_array_equal(zl, z0)
    np.testing.assert_array_equal(yl, y0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", INDEX_OPTIONS, ids=str)
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_class_indices(rng, shape, opts, dtype):
    z, y, kw = _index_case(rng, shape, opts, dtype)
    if y.ndim == 0 and y == kw.get("ignore_index", -100):
        y = np.array((int(y) + 1) % shape[0])  # the one label ignored: see test_unbatched_ignored
    _check(z, y, kw, _dloss(rng, kw, y.shape, dtype), ref_indices, ref_indices_grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", PROB_OPTIONS, ids=str)
@pytest.mark.parametrize("shape", PROB_SHAPES.values(), ids=PROB_SHAPES.keys())
def test_class_probabilities(rng, shape, opts, dtype):
    z, t, kw = _prob_case(rng, shape, opts, dtype)
    _check(z, t, kw, _dloss(rng, kw, _samples(shape), dtype), ref_probs, ref_probs_grad, dtype)


@pytest.mark.parametrize("kind", [k for k in LAYOUTS if k != "C"])
@pytest.mark.parametrize("form", ["k2", "unbatched", "probs_k1", "probs_2d"])
def test_layouts(rng, form, kind):
    """Strided, Fortran-order, reversed, unaligned, read-only and byte-swapped logits and
    labels give the reference's results and are left as they were."""
    opts = {"weight": True, "label_smoothing": 0.1, "reduction": "none"}
    dtype = np.float32
    if form.startswith("probs"):
        z, y, kw = _prob_case(rng, PROB_SHAPES[form[6:]], opts, dtype)
        ref, ref_grad = ref_probs, ref_probs_grad
    else:
        z, y, kw = _index_case(rng, SHAPES[form], {**opts, "ignore_index": 0}, dtype)
        ref, ref_grad = ref_indices, ref_indices_grad
    dloss = _dloss(rng, kw, _samples(z.shape), dtype)
    _check(z, y, kw, dloss, ref, ref_grad, dtype, layout(z, kind), layout(y, kind))


@pytest.mark.parametrize("dtype", DTYPES)
def test_transposed_logits_of_an_image(rng, dtype):
    """Logits (N, H, W, C) of a channels-last network, transposed to (N, C, H, W): a view
    whose class axis is the fastest in memory."""
    nhwc = (2 * rng.standard_normal((2, 3, 4, 6))).astype(dtype)
    z = nhwc.transpose(0, 3, 1, 2)
    y = rng.integers(0, 6, (2, 3, 4))
    t = rng.dirichlet(np.ones(6), (2, 3, 4)).transpose(0, 3, 1, 2).astype(dtype)
    _check(np.ascontiguousarray(z), y, {}, 0.5, ref_indices, ref_indices_grad, dtype, z)
    _check(np.ascontiguousarray(z), np.ascontiguousarray(t), {}, 0.5, ref_probs, ref_probs_grad, dtype, z, t)


@pytest.mark.parametrize("form", ["k1", "k3", "unbatched", "probs_k2", "probs_unbatched"])
def test_backward_into_out(rng, form):
    dtype = np.float64
    if form.startswith("probs"):
        z, y, kw = _prob_case(rng, PROB_SHAPES[form[6:]], {"weight": True}, dtype)
        ref_grad = ref_probs_grad
    else:
        z, y, kw = _index_case(rng, SHAPES[form], {"label_smoothing": 0.2}, dtype)
        ref_grad = ref_indices_grad
    _, lse = F.cross_entropy(z, y, **kw)
    out = np.full(z.shape, np.nan)
    res = F.cross_entropy_backward(z, y, lse, 0.3, **kw, out=out)
    assert res is out
    np.testing.assert_allclose(out, ref_grad(z, y, 0.3, **kw), **TOL[dtype])
    with pytest.raises(ValueError, match="out"):
        F.cross_entropy_backward(z, y, lse, 0.3, **kw, out=np.zeros(z.shape[::-1] + (1,)))


def test_unbatched_ignored():
    """The one label of unbatched logits equal to ignore_index: a loss 0 ("none", "sum"), a
    mean over no weight (NaN, as PyTorch's), a zero gradient but for the mean's NaN."""
    z = np.array([0.5, -1.0, 2.0])
    loss, lse = F.cross_entropy(z, np.array(1), ignore_index=1, reduction="none")
    assert isinstance(loss, np.ndarray) and loss.shape == () and loss == 0
    np.testing.assert_array_equal(
        F.cross_entropy_backward(z, np.array(1), lse, np.array(2.0), ignore_index=1, reduction="none"), 0
    )
    assert F.cross_entropy(z, np.array(1), ignore_index=1, reduction="sum")[0] == 0
    assert np.isnan(F.cross_entropy(z, np.array(-100))[0])


def test_unbatched_none_takes_a_0d_gradient(rng):
    z = rng.standard_normal(4)
    for y in (np.array(2), rng.dirichlet(np.ones(4))):
        ref, ref_grad = (ref_indices, ref_indices_grad) if y.ndim == 0 else (ref_probs, ref_probs_grad)
        fn = nn.CrossEntropyLoss(reduction="none")
        loss = fn(z, y)
        assert loss.shape == () and loss == pytest.approx(float(ref(z, y, reduction="none")), rel=1e-12)
        np.testing.assert_allclose(
            fn.backward(np.array(-0.4)), ref_grad(z, y, -0.4, reduction="none"), rtol=1e-12
        )


def test_a_number_stands_for_every_sample(rng):
    z, y, kw = _index_case(rng, SHAPES["k2"], {"reduction": "none"}, np.float64)
    _, lse = F.cross_entropy(z, y, **kw)
    want = ref_indices_grad(z, y, 1.5, **kw)
    np.testing.assert_allclose(F.cross_entropy_backward(z, y, lse, 1.5, **kw), want, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="dloss"):
        F.cross_entropy_backward(z, y, lse, np.ones(y.size), **kw)  # flat: not the shape


def test_probabilities_as_lists_take_the_logits_dtype(rng):
    z = rng.standard_normal((3, 4)).astype(np.float32)
    t = rng.dirichlet(np.ones(4), 3)
    loss, lse = F.cross_entropy(z, t.tolist())
    assert loss == pytest.approx(ref_probs(z, t), rel=1e-6)
    assert F.cross_entropy_backward(z, t.tolist(), lse).dtype == np.float32


@pytest.mark.parametrize(
    "shape,reduction,want",
    [((0, 4), "mean", np.nan), ((0, 4, 3), "sum", 0.0), ((2, 4, 0), "none", np.zeros((2, 0)))],
)
@pytest.mark.parametrize("probabilities", [False, True])
def test_no_sample(shape, reduction, want, probabilities):
    """No sample: the mean is NaN (0 / 0, as PyTorch's), the sum 0, "none" empty."""
    z = np.zeros(shape)
    y = np.full(shape, 0.25) if probabilities else np.zeros(_samples(shape), np.int64)
    loss, lse = F.cross_entropy(z, y, reduction=reduction)
    np.testing.assert_array_equal(loss, want)
    assert F.cross_entropy_backward(z, y, lse, reduction=reduction).shape == shape


def test_no_class_with_probabilities():
    """Probabilities over no class: each sample's loss is an empty sum, 0; the mean over
    logits holding nothing is NaN, as PyTorch's."""
    z = np.zeros((3, 0))
    np.testing.assert_array_equal(F.cross_entropy(z, z, reduction="none")[0], np.zeros(3))
    assert F.cross_entropy(z, z, reduction="sum")[0] == 0
    assert np.isnan(F.cross_entropy(z, z)[0])


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: F.cross_entropy(np.zeros((2, 3, 4)), np.zeros((2, 3), np.int64)), ValueError, "labels"),
        (lambda: F.cross_entropy(np.zeros((2, 3, 4)), np.zeros((2, 4), np.float64)), TypeError, "labels"),
        (lambda: F.cross_entropy(np.zeros((2, 3, 4)), np.zeros((2, 3, 4), np.int64)), ValueError, "labels"),
        (
            lambda: F.cross_entropy(np.zeros((2, 3, 4)), np.array([[0, 1, 2, 3], [0, 0, 0, 0]])),
            ValueError,
            r"labels\[0, 3\] = 3 is out of range \[0, 3\)",
        ),
        (
            lambda: F.cross_entropy(np.zeros((2, 3, 4)), np.full((2, 4), -1)),
            ValueError,
            r"labels\[0, 0\] = -1",
        ),
        (
            lambda: F.cross_entropy(np.zeros((2, 3, 4)), np.full((2, 4), 2**64 - 1, np.uint64)),
            ValueError,
            r"labels\[0, 0\] = 18446744073709551615",
        ),
        (lambda: F.cross_entropy(np.zeros(3), np.array(3)), ValueError, r"labels = 3 is out of range"),
        (lambda: F.cross_entropy(np.zeros(3), np.array([1])), ValueError, r"labels must have shape \(\)"),
        (lambda: F.cross_entropy(np.zeros(()), np.array(0)), ValueError, "logits"),
        (lambda: F.cross_entropy(np.zeros((2, 3), np.float32), np.full((2, 3), 0.5)), TypeError, "labels"),
        (lambda: F.cross_entropy(np.zeros((2, 3)), np.full((2, 3), True)), TypeError, "labels"),
        (lambda: F.cross_entropy(np.zeros((2, 3)), np.full((2, 3), 0.5, np.float16)), TypeError, "labels"),
        (
            lambda: F.cross_entropy(np.zeros((2, 3)), np.full((2, 3), 0.5), ignore_index=0),
            ValueError,
            "ignore_index",
        ),
        (
            lambda: F.cross_entropy(np.zeros((2, 3, 4)), np.full((2, 3, 4), 0.5), np.ones(4)),
            ValueError,
            "weight",
        ),
        (
            lambda: F.cross_entropy(np.zeros((2, 3, 4)), np.zeros((2, 4), np.int64), np.ones(4)),
            ValueError,
            "weight",
        ),
        (
            lambda: F.cross_entropy_backward(np.zeros((2, 3, 4)), np.zeros((2, 4), np.int64), np.zeros(2)),
            ValueError,
            "lse",
        ),
        (
            lambda: F.cross_entropy_backward(np.zeros((2, 3)), np.full((2, 3), 0.5), np.zeros(3)),
            ValueError,
            "lse",
        ),
        (
            lambda: F.cross_entropy_backward(np.zeros(3), np.full(3, 0.5), np.zeros((), np.float32)),
            TypeError,
            "lse",
        ),
        (lambda: F.cross_entropy_backward(np.zeros(3), np.array(0), np.zeros(()), "1"), TypeError, "dloss"),
        (
            lambda: F.cross_entropy_backward(
                np.zeros((2, 3, 4)),
                np.zeros((2, 4), np.int64),
                np.zeros((2, 4)),
                np.ones(8),
                reduction="none",
            ),
            ValueError,
            "dloss",
        ),
    ],
)
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ---- PyTorch ------------------------------------------------------------------------------


def _torch_config(seed):
    """A random form, shape, dtype and set of options (and dloss) from seed."""
    rng = np.random.default_rng(seed)
    form = ["k1", "probs", "k2", "probs", "k3", "probs", "unbatched", "probs"][seed % 8]
    dims = {"k1": 1, "k2": 2, "k3": 3, "unbatched": -1, "probs": int(rng.integers(-1, 4))}[form]
    C = int(rng.integers(1, 6))
    shape = (
        (C,) if dims < 0 else (int(rng.integers(1, 4)), C) + tuple(int(d) for d in rng.integers(1, 4, dims))
    )
    dtype = [np.float32, np.float64][int(rng.integers(2))]
    kw = {"reduction": ["mean", "sum", "none"][int(rng.integers(3))]}
    if rng.random() < 0.5:
        kw["weight"] = rng.uniform(0.1, 3, C).astype(dtype)
    if rng.random() < 0.5:
        kw["label_smoothing"] = float(rng.uniform(0, 1))
    z = (4 * rng.standard_normal(shape)).astype(dtype)
    if form == "probs":
        y = rng.uniform(0, 1, shape) ** 2
        if rng.random() < 0.7:
            y = y / y.sum(axis=_axis(z), keepdims=True)
        y = y.astype(dtype)
    else:
        y = rng.integers(0, C, _samples(shape))
        if rng.random() < 0.6:
            kw["ignore_index"] = int(rng.integers(-1, C))
            if y.ndim and kw["ignore_index"] < 0:
                y.reshape(-1)[0] = -1
    samples = _samples(shape)
    dloss = (
        rng.standard_normal(samples).astype(dtype) if kw["reduction"] == "none" else float(rng.uniform(-2, 2))
    )
    return z, y, kw, dloss


@pytest.mark.parametrize("seed", range(120))
def test_matches_torch(seed):
    torch = pytest.importorskip("torch")
    z, y, kw, dloss = _torch_config(seed)
    tkw = {k: torch.tensor(v) if k == "weight" else v for k, v in kw.items()}
    tz = torch.tensor(z, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(tz, torch.tensor(y), **tkw)
    tloss.backward(torch.tensor(dloss, dtype=tz.dtype))
    want, want_grad = tloss.detach().numpy(), tz.grad.numpy()
    tol = dict(rtol=1e-5, atol=1e-6) if z.dtype == np.float32 else dict(rtol=1e-11, atol=1e-14)
    loss, lse = F.cross_entropy(z, y, **kw)
    assert np.shape(loss) == want.shape
    np.testing.assert_allclose(loss, want, **tol)
    np.testing.assert_allclose(F.cross_entropy_backward(z, y, lse, dloss, **kw), want_grad, **tol)
    fn = nn.CrossEntropyLoss(**kw)
    np.testing.assert_allclose(fn(z, y), want, **tol)
    np.testing.assert_allclose(fn.backward(dloss), want_grad, **tol)
