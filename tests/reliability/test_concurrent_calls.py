"""Concurrency: the functional API from several Python threads at once, on shared
read-only inputs, gives exactly the serial results. The kernels release the GIL (on inputs
from 32 KiB), so the threads really overlap inside the C code (and inside OpenMP and
OpenBLAS)."""

import threading

import numpy as np
import pytest

import normreg
from normreg import functional as F

pytestmark = pytest.mark.sanitize

THREADS = 8
ROUNDS = 10


def _ro(a):
    a.flags.writeable = False
    return a


def _inputs():
    rng = np.random.default_rng(0)

    def f(*s):
        return _ro(rng.standard_normal(s).astype(np.float32))

    d = dict(
        x=f(256, 128),
        w=f(128, 64),
        b=f(64),
        dy=f(256, 64),
        lw=f(128),
        lb=f(128),
        ldy=f(256, 128),
        bx=f(64, 32, 16),
        bdy=f(64, 32, 16),
        z=f(256, 10),
        labels=_ro(rng.integers(0, 10, 256)),
        cx=f(16, 8, 12, 12),
        cw=f(16, 8, 3, 3),
        cb=f(16),
        cdy=f(16, 16, 12, 12),
        pdy=f(16, 8, 6, 6),
    )
    d["x64"] = _ro(d["x"].astype(np.float64))
    return d


def _ops(d):
    """name -> function of nothing returning a tuple of arrays/floats; deterministic."""

    def layer_norm():
        y, m, r = F.layer_norm(d["x"], 128, d["lw"], d["lb"])
        return (y, m, r) + F.layer_norm_backward(d["ldy"], d["x"], m, r, d["lw"])

    def batch_norm():
        rm, rv = np.zeros(32, np.float32), np.ones(32, np.float32)  # each call's own state
        y, m, r = F.batch_norm(d["bx"], rm, rv, training=True)
        return (y, m, r, rm, rv) + F.batch_norm_backward(d["bdy"], d["bx"], m, r)

    def dropout():
        y, mask = F.dropout(d["x"], 0.3, generator=normreg.Generator(1234))  # own generator
        return y, mask, F.dropout_backward(d["x"], mask, 0.3)

    def cross_entropy():
        loss, lse = F.cross_entropy(d["z"], d["labels"])
        return np.float64(loss), lse, F.cross_entropy_backward(d["z"], d["labels"], lse)

    def sgd():
        p, buf = d["x"].copy(), np.zeros_like(d["x"])  # each call's own parameter and state
        for first in (True, False):
            F.sgd_step_(p, d["ldy"], buf, lr=0.1, momentum=0.9, weight_decay=0.01, first_step=first)
        return p, buf

    def adam():
        p, m, v, vmax = d["x"].copy(), np.zeros_like(d["x"]), np.zeros_like(d["x"]), np.zeros_like(d["x"])
        for step in (1, 2):
            F.adam_step_(
                p,
                d["ldy"],
                m,
                v,
                vmax,
                step=step,
                lr=1e-3,
                beta1=0.9,
                beta2=0.999,
                eps=1e-8,
                weight_decay=0.01,
                decoupled=True,
            )
        return p, m, v, vmax

    def norms():
        y, r = F.rms_norm(d["x"], 128, d["lw"])
        g, gm, gr = F.group_norm(d["bx"], 4, d["lw"][:32], d["lb"][:32])
        return (
            (y, r)
            + F.rms_norm_backward(d["ldy"], d["x"], r, d["lw"])
            + (g, gm, gr)
            + F.group_norm_backward(d["bdy"], d["bx"], gm, gr, d["lw"][:32])
        )

    def conv_pool():  # the team of threads with single-threaded GEMMs, and the pooling
        y = F.conv2d(d["cx"], d["cw"], d["cb"], 1, 1)
        m, idx = F.max_pool2d(d["cx"], 2, return_indices=True)
        a = F.avg_pool2d(d["cx"], 3, 2, 1)
        return (
            (y,)
            + F.conv2d_backward(d["cdy"], d["cx"], d["cw"], 1, 1)
            + (m, idx, F.max_pool2d_backward(d["pdy"], idx, d["cx"].shape), a)
            + (F.avg_pool2d_backward(d["pdy"], d["cx"].shape, 3, 2, 1), F.adaptive_avg_pool2d(d["cx"], 1))
        )

    return {
        "conv2d, pooling": conv_pool,
        "rms_norm, group_norm": norms,
        "sgd_step_": sgd,
        "adam_step_": adam,
        "linear": lambda: (F.linear(d["x"], d["w"], d["b"]),) + F.linear_backward(d["dy"], d["x"], d["w"]),
        "linear f64": lambda: (F.linear(d["x64"], d["w"].astype(np.float64)),),
        "relu": lambda: (F.relu(d["x"]), F.relu_backward(d["x"], d["x"])),
        "layer_norm": layer_norm,
        "batch_norm": batch_norm,
        "dropout": dropout,
        "cross_entropy": cross_entropy,
    }


@pytest.mark.parametrize("num_threads", [1, 2])
def test_functional_api_from_threads_equals_serial(num_threads):
    old = normreg.get_num_threads()
    normreg.set_num_threads(num_threads)
    try:
        d = _inputs()
        ops = _ops(d)
        serial = {name: op() for name, op in ops.items()}
        errors, mismatches = [], []
        barrier = threading.Barrier(THREADS)

        def worker(k):
            try:
                barrier.wait()
                names = list(ops)
                for r in range(ROUNDS):
                    order = names[k % len(names) :] + names[: k % len(names)]  # different interleavings
                    for name in order:
                        got = ops[name]()
                        for g, s in zip(got, serial[name]):
                            if not (g is s or np.array_equal(g, s, equal_nan=True)):
                                mismatches.append((k, r, name))
            except BaseException as exc:
                errors.append((k, repr(exc)))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "a worker thread hung"
        assert not errors, errors[:5]
        assert not mismatches, mismatches[:10]
        # the shared inputs are untouched
        for _name, a in d.items():
            assert not a.flags.writeable
        np.testing.assert_array_equal(d["x"], _inputs()["x"])
    finally:
        normreg.set_num_threads(old)


def test_set_num_threads_while_ops_run():
    """Changing the thread count while other threads run kernels is safe: each call sizes
    its workspace and its teams from one reading of the setting."""
    old = normreg.get_num_threads()
    d = _inputs()
    ops = _ops(d)
    serial = {name: op() for name, op in ops.items()}
    stop = threading.Event()
    errors, mismatches = [], []

    def toggler():
        k = 0
        while not stop.is_set():
            normreg.set_num_threads(1 + k % 3)
            k += 1

    def worker():
        try:
            for _ in range(ROUNDS):
                for name, op in ops.items():
                    for i, (g, s) in enumerate(zip(op(), serial[name])):
                        if g is s:
                            continue
                        if not np.allclose(
                            g, s, rtol=1e-4, atol=1e-4, equal_nan=True
                        ):  # other summation order
                            mismatches.append(
                                (name, i, float(np.max(np.abs(np.subtract(g, s, dtype=float)))))
                            )
        except BaseException as exc:
            errors.append(repr(exc))

    t0 = threading.Thread(target=toggler)
    workers = [threading.Thread(target=worker) for _ in range(4)]
    t0.start()
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=120)
    stop.set()
    t0.join()
    normreg.set_num_threads(old)
    assert not errors and not mismatches, (errors[:3], mismatches[:3])
