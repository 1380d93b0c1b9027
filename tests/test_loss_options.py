"""The cross-entropy's PyTorch options (weight, ignore_index, reduction, label_smoothing):
against the reference written from PyTorch's documented formula, central differences of
that reference, and PyTorch itself when it is installed."""

import numpy as np
import pytest
import reference as R
from helpers import DTYPES, assert_close

from normreg import functional as F
from normreg import nn

OPTIONS = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"weight": True},
    {"weight": True, "reduction": "sum"},
    {"ignore_index": 2},
    {"ignore_index": -100, "ignored_rows": True},
    {"label_smoothing": 0.1},
    {"label_smoothing": 0.3, "weight": True, "ignore_index": 1, "reduction": "mean"},
    {"label_smoothing": 0.2, "weight": True, "ignore_index": -1, "ignored_rows": True, "reduction": "none"},
]


def _case(rng, opts, B=7, K=5, dtype=np.float64):
    """(logits, labels, the options as F.cross_entropy takes them)."""
    z = (3 * rng.standard_normal((B, K))).astype(dtype)
    labels = rng.integers(0, K, B)
    kw = {k: v for k, v in opts.items() if k != "ignored_rows"}
    if kw.get("weight"):
        kw["weight"] = rng.uniform(0.2, 2.0, K).astype(dtype)
    if opts.get("ignored_rows"):
        labels[[1, 4]] = kw["ignore_index"]
    return z, labels, kw


def _numeric_grad(z, labels, kw, dloss, h=1e-6):
    """Central differences of the reference's loss (dloss: its upstream gradient)."""
    g = np.zeros_like(z)
    for idx in np.ndindex(*z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += h
        zm[idx] -= h
        diff = np.asarray(R.cross_entropy_options(zp, labels, **kw)) - np.asarray(
            R.cross_entropy_options(zm, labels, **kw)
        )
        g[idx] = np.sum(dloss * diff) / (2 * h)
    return g


@pytest.mark.parametrize("opts", OPTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_against_reference(rng, opts, dtype):
    z, labels, kw = _case(rng, opts, dtype=dtype)
    loss, lse = F.cross_entropy(z, labels, **kw)
    ref = R.cross_entropy_options(z, labels, **kw)
    if kw.get("reduction") == "none":
        assert isinstance(loss, np.ndarray) and loss.dtype == dtype and loss.shape == labels.shape
        assert_close(loss, ref, dtype)
        dloss = rng.standard_normal(labels.shape).astype(dtype)
    else:
        assert isinstance(loss, float)
        assert loss == pytest.approx(ref, rel=1e-5 if dtype == np.float32 else 1e-12)
        dloss = 0.7
    dz = F.cross_entropy_backward(z, labels, lse, dloss, **kw)
    assert dz.dtype == dtype
    num = _numeric_grad(z.astype(np.float64), labels, kw, np.asarray(dloss, np.float64))
    np.testing.assert_allclose(dz, num, rtol=1e-4 if dtype == np.float32 else 1e-6, atol=1e-6)


def test_default_ignores_label_minus_100():
    """PyTorch's default ignore_index: rows labelled -100 are left out of the mean, and get
    a zero gradient; any other negative label is still an error."""
    rng = np.random.default_rng(3)
    z = rng.standard_normal((4, 3))
    labels = np.array([0, -100, 2, 1])
    fn = nn.CrossEntropyLoss()
    loss = fn(z, labels)
    assert loss == pytest.approx(R.cross_entropy(z[[0, 2, 3]], labels[[0, 2, 3]])[0], rel=1e-12)
    dz = fn.backward()
    assert np.all(dz[1] == 0)
    kept = [0, 2, 3]
    np.testing.assert_allclose(dz[kept], R.cross_entropy_backward(z[kept], labels[kept]), rtol=1e-12)
    with pytest.raises(ValueError, match=r"labels\[1\] = -1"):
        F.cross_entropy(z, np.array([0, -1, 2, 1]))
    all_ignored, _ = F.cross_entropy(z, np.full(4, -100))
    assert np.isnan(all_ignored)  # 0 / 0, as PyTorch


def test_module_options_and_gradcheck(rng):
    from helpers import GRADCHECK_TOL

    from normreg.testing import gradcheck

    z = 2 * rng.standard_normal((6, 4))
    labels = np.array([0, 3, 1, 1, 2, 3])
    w = np.array([0.5, 1.0, 2.0, 1.5])
    for kw, dy in (
        ({"weight": w, "label_smoothing": 0.2}, np.array(0.7)),
        ({"reduction": "none", "ignore_index": 1}, rng.standard_normal(6)),
        ({"reduction": "sum", "weight": w}, np.array(1.3)),
    ):
        assert gradcheck(nn.CrossEntropyLoss(**kw), (z, labels), dy=dy, **GRADCHECK_TOL)


@pytest.mark.parametrize(
    "kw,exc,match",
    [
        ({"reduction": "avg"}, ValueError, "reduction"),
        ({"reduction": None}, TypeError, "reduction"),
        ({"label_smoothing": 1.5}, ValueError, "label_smoothing"),
        ({"label_smoothing": float("nan")}, ValueError, "label_smoothing"),
        ({"ignore_index": 1.0}, TypeError, "ignore_index"),
        ({"weight": np.ones(3)}, ValueError, "weight"),
        ({"weight": np.ones(4, np.int64)}, TypeError, "weight"),
        ({"weight": "abcd"}, TypeError, "weight"),
    ],
)
def test_bad_options(kw, exc, match):
    z, labels = np.zeros((2, 4)), np.array([0, 3])
    with pytest.raises(exc, match=match):
        F.cross_entropy(z, labels, **kw)
    if "weight" not in kw:
        with pytest.raises(exc, match=match):
            nn.CrossEntropyLoss(**kw)


def test_none_backward_takes_rows_or_a_number(rng):
    z, labels = rng.standard_normal((3, 4)), np.array([0, 1, 3])
    _, lse = F.cross_entropy(z, labels, reduction="none")
    d1 = F.cross_entropy_backward(z, labels, lse, 2.0, reduction="none")
    d2 = F.cross_entropy_backward(z, labels, lse, np.full(3, 2.0), reduction="none")
    np.testing.assert_array_equal(d1, d2)
    np.testing.assert_array_equal(
        d1, F.cross_entropy_backward(z, labels, lse, [2.0, 2.0, 2.0], reduction="none")
    )
    with pytest.raises(ValueError, match="dloss"):
        F.cross_entropy_backward(z, labels, lse, np.ones(4), reduction="none")


@pytest.mark.parametrize("opts", OPTIONS)
def test_matches_torch(rng, opts):
    torch = pytest.importorskip("torch")
    z, labels, kw = _case(rng, opts)
    tkw = dict(kw)
    if "weight" in tkw:
        tkw["weight"] = torch.tensor(tkw["weight"])
    fn = nn.CrossEntropyLoss(**kw)
    loss = fn(z, labels)
    tz = torch.tensor(z, requires_grad=True)
    tloss = torch.nn.CrossEntropyLoss(**tkw)(tz, torch.tensor(labels))
    dloss = rng.standard_normal(labels.shape) if kw.get("reduction") == "none" else 0.7
    tloss.backward(torch.tensor(dloss, dtype=torch.float64))
    np.testing.assert_allclose(loss, tloss.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fn.backward(dloss), tz.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_weight_takes_the_dtype_of_the_logits(rng):
    z = rng.standard_normal((5, 3)).astype(np.float32)
    labels = np.array([0, 2, 1, 1, 0])
    w64 = np.array([0.5, 1.0, 2.0])
    fn = nn.CrossEntropyLoss(weight=[0.5, 1.0, 2.0])
    loss = fn(z, labels)
    assert loss == pytest.approx(R.cross_entropy_options(z, labels, weight=w64), rel=1e-6)
    assert fn.backward().dtype == np.float32


def test_an_ignored_row_counts_for_nothing_even_if_it_is_not_finite():
    z = np.array([[0.0, 1.0, 2.0], [np.nan, 1.0, np.inf], [1.0, -1.0, 0.5]])
    labels = np.array([2, -100, 0])
    kept = [0, 2]
    for reduction in ("mean", "sum", "none"):
        for smoothing in (0.0, 0.25):
            loss, lse = F.cross_entropy(z, labels, reduction=reduction, label_smoothing=smoothing)
            ref = R.cross_entropy_options(
                z[kept], labels[kept], reduction=reduction, label_smoothing=smoothing
            )
            if reduction == "none":
                np.testing.assert_allclose(loss[kept], ref, rtol=1e-12)
                assert loss[1] == 0
            else:
                assert loss == pytest.approx(ref, rel=1e-12)
            d = F.cross_entropy_backward(z, labels, lse, 1.0, reduction=reduction, label_smoothing=smoothing)
            assert np.all(d[1] == 0) and np.all(np.isfinite(d[kept]))


def test_options_after_weight_are_keywords():
    """PyTorch's positions after weight hold its deprecated size_average and reduce: a
    positional option is a TypeError here, not a silently different meaning."""
    z, labels = np.zeros((2, 3)), np.array([0, 2])
    with pytest.raises(TypeError):
        nn.CrossEntropyLoss(None, None, 1)
    with pytest.raises(TypeError):
        F.cross_entropy(z, labels, None, -100)


@pytest.mark.parametrize("opts", OPTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("offset", [1e4, -3e4, 1e8])
def test_a_common_offset_changes_nothing(rng, opts, dtype, offset):
    """Softmax and its cross-entropy do not change when every logit of a row moves by the
    same amount: logits z + c (z on a grid of 1/64, which c keeps exact in float32 at 1e4 and
    3e4; at 1e8 a grid of 8) against the reference on z, where
    a log-sum-exp rounded to float32 before ``lse - z[y]`` is 5e-4 off at 1e4 and wholly off
    at 1e8."""
    z, labels, kw = _case(rng, opts, dtype=np.float64)
    z = np.round(z) * 8 if abs(offset) >= 1e8 else np.round(z * 64) / 64
    zc = (z + offset).astype(dtype)
    np.testing.assert_array_equal(zc.astype(np.float64) - offset, z)  # the shift is exact
    loss, lse = F.cross_entropy(zc, labels, **kw)
    ref = R.cross_entropy_options(z, labels, **kw)
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(loss, ref, rtol=rtol, atol=1e-12)
    dloss = rng.standard_normal(labels.shape) if kw.get("reduction") == "none" else 0.7
    dz = F.cross_entropy_backward(zc, labels, lse, dloss, **kw)
    num = _numeric_grad(z, labels, kw, np.asarray(dloss, np.float64))
    np.testing.assert_allclose(dz, num, rtol=1e-4 if dtype == np.float32 else 1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", [1e8, 1e17, 1e30, 3e38])
@pytest.mark.parametrize("opts", [{}, {"reduction": "none"}, {"label_smoothing": 0.3}])
def test_two_tied_maximal_logits_give_log_2(dtype, c, opts):
    """Logits (0, c, c) with label 1: softmax (0, 1/2, 1/2), loss log 2, gradient
    (0, -1/2, 1/2) at any c (where max + log(sum) rounds the log 2 away: from 1e17 in
    float64, 1e8 in float32). With smoothing e: the loss (1 - e) log 2 + e/3 (c + 3 log 2),
    the gradient (-e/3, -1/2 + 2e/3, 1/2 - e/3)."""
    z = np.array([[0.0, c, c]], dtype)
    labels = np.array([1])
    loss, lse = F.cross_entropy(z, labels, **opts)
    d = F.cross_entropy_backward(z, labels, lse, 1.0, **opts)
    e = opts.get("label_smoothing", 0.0)
    want = (1 - e) * np.log(2.0) + e / 3 * (float(dtype(c)) + 3 * np.log(2.0))
    np.testing.assert_allclose(np.asarray(loss), want, rtol=1e-7)
    np.testing.assert_allclose(d, [[-e / 3, -0.5 + 2 * e / 3, 0.5 - e / 3]], atol=1e-7)
