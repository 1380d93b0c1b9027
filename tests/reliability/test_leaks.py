"""Leaks and reference counts: every op called thousands of times, forward and backward,
on success and on error paths (in the binding and in the functional layer). Resident
memory must stay flat, the interpreter's allocated blocks must not grow with the number
of calls, and the reference counts of every argument must be unchanged.
"""

import gc
import os
import sys

import numpy as np
import pytest
from helpers import set_grad

import normreg
from normreg import _C
from normreg import functional as F

CALLS = int(os.environ.get("NORMREG_LEAK_CALLS", "3000"))
WARMUP = 200
RSS_SLACK = 4 << 20  # bytes; a leaked output (>= 8 KiB here) would add CALLS * 8 KiB = 24 MB
# Under AddressSanitizer (scripts/sanitize.sh) freed memory sits in a quarantine, so resident
# memory grows by design: only the reference counts and Python's blocks are checked there.
UNDER_ASAN = "asan" in os.environ.get("LD_PRELOAD", "")


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def assert_flat(call, watched, what):
    """Runs ``call`` WARMUP times, then CALLS times: the reference counts of the ``watched``
    objects must be unchanged, Python's allocated blocks must not grow with the number of
    calls, and resident memory must stay flat (except under AddressSanitizer)."""
    for _ in range(WARMUP):
        call()
    gc.collect()
    refs = [sys.getrefcount(a) for a in watched]
    blocks0, rss0 = sys.getallocatedblocks(), rss()
    for _ in range(CALLS):
        call()
    gc.collect()
    blocks1, rss1 = sys.getallocatedblocks(), rss()
    assert [sys.getrefcount(a) for a in watched] == refs, f"{what}: reference counts of the arguments changed"
    assert blocks1 - blocks0 < CALLS // 10, (
        f"{what}: {blocks1 - blocks0} Python blocks more after {CALLS} calls"
    )
    assert UNDER_ASAN or rss1 - rss0 < RSS_SLACK, (
        f"{what}: resident memory grew by {(rss1 - rss0) / 2**20:.1f} MiB over {CALLS} calls"
    )


def _f(*shape, seed=0):
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape).astype(np.float32)


class _BadBool:
    def __bool__(self):
        raise ValueError("no truth value")


def _cases():
    """name -> (arguments kept alive, one call) for the success and error paths."""
    M, K, N = 64, 32, 48
    x, w, b, dy = _f(M, K), _f(K, N), _f(N), _f(M, N)
    dw, db = np.zeros((K, N), np.float32), np.zeros(N, np.float32)
    lx, lw, lb = _f(M, K, seed=1), _f(K, seed=2) + 1, _f(K, seed=3)
    _, lmean, lrstd = F.layer_norm(lx, K)
    ldy = _f(M, K, seed=4)
    bx = _f(M, K, 4, seed=5)
    rm, rv = np.zeros(K, np.float32), np.ones(K, np.float32)
    _, bmean, brstd = F.batch_norm(bx, None, None, training=True)
    gen = normreg.Generator(0)
    _, mask = F.dropout(x, 0.5, generator=gen)
    z = _f(M, 10, seed=6)
    labels = np.arange(M, dtype=np.int64) % 10
    bad_labels = labels.copy()
    bad_labels[-1] = 10
    _, lse = F.cross_entropy(z, labels)
    wrong = np.zeros((3, 3), np.float32)
    out_xy = np.empty((M, N), np.float32)
    op, og = _f(32, 32, seed=7), _f(32, 32, seed=8)
    obuf, om, ov, ovmax = np.zeros_like(op), np.zeros_like(op), np.zeros_like(op), np.zeros_like(op)
    gx = _f(8, 6, 5, seed=9)
    _, gmean, grstd = F.group_norm(gx, 3)
    _, rrstd = F.rms_norm(lx, K)
    cx, cw, cb, cdy = (
        _f(4, 3, 9, 8, seed=10),
        _f(5, 3, 3, 3, seed=11),
        _f(5, seed=12),
        _f(4, 5, 9, 8, seed=13),
    )
    cdw, cdb = np.zeros_like(cw), np.zeros_like(cb)
    _, pidx = F.max_pool2d(cx, 2, return_indices=True)
    pdy = _f(4, 3, 4, 4, seed=14)
    bad_idx = pidx.copy()
    bad_idx[0, 0, 0, 0] = 72  # outside the 9 x 8 plane
    keep = [
        cx,
        cw,
        cb,
        cdy,
        cdw,
        cdb,
        pidx,
        pdy,
        bad_idx,
        gx,
        gmean,
        grstd,
        rrstd,
        op,
        og,
        obuf,
        om,
        ov,
        ovmax,
        x,
        w,
        b,
        dy,
        dw,
        db,
        lx,
        lw,
        lb,
        lmean,
        lrstd,
        ldy,
        bx,
        rm,
        rv,
        bmean,
        brstd,
        mask,
        z,
        labels,
        bad_labels,
        lse,
        wrong,
        out_xy,
        gen,
    ]
    calls = {
        # success paths, functional (-> binding -> kernel)
        "linear": lambda: F.linear(x, w, b),
        "linear out=": lambda: F.linear(x, w, b, out=out_xy),
        "linear_backward": lambda: F.linear_backward(dy, x, w, dweight=dw, dbias=db),
        "relu": lambda: F.relu(x),
        "relu_backward": lambda: F.relu_backward(x, x),
        "layer_norm": lambda: F.layer_norm(lx, K, lw, lb),
        "layer_norm_backward": lambda: F.layer_norm_backward(ldy, lx, lmean, lrstd, lw),
        "batch_norm train": lambda: F.batch_norm(bx, rm, rv, training=True),
        "batch_norm eval": lambda: F.batch_norm(bx, rm, rv, training=False),
        "batch_norm_backward": lambda: F.batch_norm_backward(bx, bx, bmean, brstd),
        "dropout": lambda: F.dropout(x, 0.5, generator=gen),
        "dropout_backward": lambda: F.dropout_backward(x, mask, 0.5),
        "cross_entropy": lambda: F.cross_entropy(z, labels),
        "cross_entropy_backward": lambda: F.cross_entropy_backward(z, labels, lse),
        "philox4x32": lambda: _C.philox4x32(1, 2, 3, 4, 5, 6),
        "rms_norm": lambda: F.rms_norm(lx, K, lw),
        "rms_norm_backward": lambda: F.rms_norm_backward(ldy, lx, rrstd, lw),
        "group_norm": lambda: F.group_norm(gx, 3, gx[0, :, 0], gx[1, :, 0]),
        "group_norm_backward": lambda: F.group_norm_backward(gx, gx, gmean, grstd, gx[0, :, 0]),
        "conv2d": lambda: F.conv2d(cx, cw, cb, 2, 1),
        "conv2d_backward": lambda: F.conv2d_backward(cdy, cx, cw, 1, 1, dweight=cdw, dbias=cdb),
        "max_pool2d": lambda: F.max_pool2d(cx, 2),
        "max_pool2d_backward": lambda: F.max_pool2d_backward(pdy, pidx, cx.shape),
        "avg_pool2d": lambda: F.avg_pool2d(cx, 3, 2, 1),
        "avg_pool2d_backward": lambda: F.avg_pool2d_backward(pdy, cx.shape, 2),
        "adaptive_avg_pool2d": lambda: F.adaptive_avg_pool2d(cx, (2, 3)),
        "adaptive_avg_pool2d_backward": lambda: F.adaptive_avg_pool2d_backward(pdy, cx.shape),
        "E conv2d_forward out": lambda: _C.conv2d_forward(cx, cw, cb, 1, 1, 1, 1, wrong),
        "E conv2d_backward dy": lambda: _C.conv2d_backward(cdy, cx, cw, 2, 1, 1, 1, None, None, True),
        "E max_pool2d_backward indices": lambda: _C.max_pool2d_backward(pdy, bad_idx, 9, 8, None),
        "E avg_pool2d_backward out": lambda: _C.avg_pool2d_backward(
            pdy, 9, 8, 2, 2, 2, 2, 0, 0, False, True, 0, wrong
        ),
        "E rms_norm_backward out": lambda: _C.rms_norm_backward(ldy, lx, rrstd, lw, None, wrong),
        "E rms_norm_forward eps": lambda: _C.rms_norm_forward(lx, lw, -1.0, None),
        "E group_norm_forward groups": lambda: _C.group_norm_forward(gx, None, None, 4, 1e-5, None),
        "E group_norm_backward out": lambda: _C.group_norm_backward(
            gx, gx, gmean, grstd, None, None, None, 3, wrong
        ),
        "sgd_step_": lambda: F.sgd_step_(op, og, obuf, lr=1e-6, momentum=0.9),
        "adam_step_": lambda: F.adam_step_(
            op, og, om, ov, ovmax, step=3, lr=1e-6, beta1=0.9, beta2=0.999, eps=1e-8
        ),
        "E sgd_step buffer": lambda: _C.sgd_step(op, og, wrong, 0.1, 0.9, 0.0, 0.0, False, False),
        "E sgd_step flag": lambda: _C.sgd_step(op, og, obuf, 0.1, 0.9, 0.0, 0.0, False, _BadBool()),
        "E adam_step bias_correction2": lambda: _C.adam_step(
            op, og, om, ov, None, 0.1, 0.9, 0.999, 1e-8, 0.0, False, 0.1, "x"
        ),
        "E adam_step max_exp_avg_sq": lambda: _C.adam_step(
            op, og, om, ov, wrong, 0.1, 0.9, 0.999, 1e-8, 0.0, False, 0.1, 0.1
        ),
        "E F.adam_step_ grad dtype": lambda: F.adam_step_(
            op, og.astype(np.float64), om, ov, step=1, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8
        ),
        # error paths late in the binding (after arguments were parsed and checked)
        "E linear_forward bias": lambda: _C.linear_forward(x, w, wrong[0], None),
        "E linear_forward out": lambda: _C.linear_forward(x, w, b, wrong),
        "E linear_backward dbias": lambda: _C.linear_backward(dy, x, w, None, dw, wrong[0], True),
        "E linear_backward dx out": lambda: _C.linear_backward(dy, x, w, wrong, dw, db, True),
        "E relu_backward out": lambda: _C.relu_backward(x, x, wrong),
        "E layer_norm_forward eps": lambda: _C.layer_norm_forward(lx, lw, lb, -1.0, None),
        "E layer_norm_forward out": lambda: _C.layer_norm_forward(lx, lw, lb, 1e-5, wrong),
        "E layer_norm_backward out": lambda: _C.layer_norm_backward(
            ldy, lx, lmean, lrstd, lw, None, None, wrong
        ),
        "E batch_norm_forward out": lambda: _C.batch_norm_forward(
            bx, None, None, rm, rv, True, 0.1, 1e-5, wrong
        ),
        "E batch_norm_forward eval": lambda: _C.batch_norm_forward(
            bx, None, None, None, None, False, 0.1, 1e-5, None
        ),
        "E batch_norm_backward out": lambda: _C.batch_norm_backward(
            bx, bx, bmean, brstd, None, None, None, True, wrong
        ),
        "E dropout_forward offset": lambda: _C.dropout_forward(x, 0.5, 1, -1, None),
        "E dropout_forward out": lambda: _C.dropout_forward(x, 0.5, 1, 2, wrong),
        "E dropout_backward out": lambda: _C.dropout_backward(x, mask, 0.5, wrong),
        "E cross_entropy_forward labels": lambda: _C.cross_entropy_forward(z, bad_labels),
        "E cross_entropy_backward out": lambda: _C.cross_entropy_backward(z, labels, lse, 1.0, wrong),
        "E philox4x32": lambda: _C.philox4x32(1, 2, 3, 4, 5, 2**40),
        # error paths in the functional layer
        "E F.linear shape": lambda: F.linear(x, wrong),
        "E F.layer_norm dtype": lambda: F.layer_norm(lx, K, lw.astype(np.float64)),
        "E F.batch_norm one value": lambda: F.batch_norm(bx[:1, :, :1], None, None, training=True),
        "E F.dropout p": lambda: F.dropout(x, 2.0),
        "E F.cross_entropy labels": lambda: F.cross_entropy(z, labels[:3]),
    }
    return keep, calls


_KEEP, _CALLS = _cases()


@pytest.mark.parametrize("name", sorted(_CALLS))
def test_calls_do_not_leak(name):
    call = _CALLS[name]
    expect_error = name.startswith("E ")

    def once():
        try:
            call()
        except (TypeError, ValueError, OverflowError):
            if not expect_error:
                raise
        else:
            assert not expect_error, f"{name} was expected to raise"

    assert_flat(once, _KEEP, name)


def test_modules_do_not_leak():
    from normreg import nn

    model = nn.Sequential(
        nn.Linear(32, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.2), nn.LayerNorm(64), nn.Linear(64, 10)
    )
    loss_fn = nn.SoftmaxLoss()
    x = _f(128, 32)
    y = np.arange(128) % 10

    def step():
        model.zero_grad()
        loss_fn(model(x), y)
        model.backward(loss_fn.backward())

    assert_flat(step, [x, y], "a training step")  # the modules' caches hold one of each


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_optimizer_steps_do_not_leak(name):
    from normreg import nn, optim

    model = nn.Sequential(nn.Linear(32, 64), nn.LayerNorm(64), nn.Linear(64, 10))
    opt = {
        "SGD": lambda p: optim.SGD(p, lr=1e-3, momentum=0.9),
        "Adam": lambda p: optim.Adam(p, lr=1e-3, amsgrad=True),
        "AdamW": lambda p: optim.AdamW(p, lr=1e-3),
    }[name](model.parameters())
    for p in model.parameters():
        set_grad(p, 0.01)
    bad = model.parameters()[0]
    good_grad = bad.grad

    def once():
        opt.step()
        bad.grad = good_grad[:1]  # a failing step
        with pytest.raises(ValueError):
            opt.step()
        bad.grad = good_grad

    assert_flat(once, [p.data for p in model.parameters()], name)
