"""Timing helpers for the benchmark suite: interleaved repetitions, medians, the roofline, and
the pieces the sections share (ratios of a row, the training steps timed against PyTorch)."""

import statistics
import time

import numpy as np
from benchfmt import fmt_bytes, fmt_ratio, fmt_time  # noqa: F401 (the suite's formatting)

from normreg import _C, nn


def _time_calls(fn, k):
    t0 = time.perf_counter()
    for _ in range(k):
        fn()
    return (time.perf_counter() - t0) / k


def median_ms(fn, samples, warmup=5):
    """The median time of ``samples`` calls of ``fn`` (each timed alone, after ``warmup``
    untimed ones), in ms: for a script timing one thing at a time in its own process."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(samples):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def measure(fns, *, sample_time=2e-3, budget=1.0, min_rounds=3, max_rounds=15, lead_in=False):
    """Median seconds per call of each callable in ``fns`` (a dict name -> fn).

    Every callable is warmed up, then timed in rounds; in each round every callable is
    timed once (``k`` back-to-back calls, ``k`` chosen so a sample lasts about
    ``sample_time``), in an order that rotates from round to round. Interleaving makes
    slow drifts of the machine (other processes, memory bandwidth) hit every callable
    alike, so ratios between them hold even when absolute times wander.

    With ``lead_in``, each sample is preceded by one untimed call: a callable whose threads
    slept while the others ran (OpenMP's idle threads sleep after a short spin) gets them
    back before it is timed, as a loop of such calls (a training loop) has them.
    """
    names = list(fns)
    ks, per_round = {}, 0.0
    for name in names:
        fns[name]()  # warm-up: first-touch page faults, lazy initialization
        t = _time_calls(fns[name], 1)
        ks[name] = max(1, int(sample_time / max(t, 1e-9)))
        per_round += t * ks[name]
    rounds = int(min(max_rounds, max(min_rounds, budget / max(per_round, 1e-9))))
    samples = {name: [] for name in names}
    for r in range(rounds):
        for i in range(len(names)):
            name = names[(i + r) % len(names)]
            if lead_in:
                fns[name]()
            samples[name].append(_time_calls(fns[name], ks[name]))
    return {name: statistics.median(s) for name, s in samples.items()}


# OpenBLAS's own threads spin for up to about 0.1 s after a product (2^28 cycles, its
# OPENBLAS_THREAD_TIMEOUT) and take the cores of whatever runs next, normreg's OpenMP threads
# among them; PyTorch's pool spins after its operations likewise. So the direct sgemm
# yardsticks, and PyTorch where its threads would disturb single-threaded calls, are timed in
# a phase of their own, after a pause that lets those threads go to sleep.
BLAS_SETTLE = 0.3


def measure_apart(fns, apart, against=None, **kwargs):
    """``measure(..., **kwargs)`` of the callables of ``fns`` not named in ``apart``,
    interleaved, then of those in ``apart`` (callables whose threads spin after they
    return: OpenBLAS-threaded yardsticks, PyTorch) interleaved among themselves, each phase
    after a pause (``BLAS_SETTLE``).

    With ``against`` (the name of the callable the yardsticks measure), that callable runs
    in the second phase too, interleaved with them, each sample after one untimed call
    (whose time absorbs the threads the previous sample left spinning): its time there is
    returned as ``against + "_apart"``, so its ratio to a yardstick is taken within one
    phase, not across whatever the machine did between two."""
    together = {k: f for k, f in fns.items() if k not in apart}
    alone = {k: f for k, f in fns.items() if k in apart}
    time.sleep(BLAS_SETTLE)
    t = measure(together, **kwargs)
    time.sleep(BLAS_SETTLE)
    if against is not None and alone:
        alone = {f"{against}_apart": fns[against], **alone}
        kwargs = {**kwargs, "lead_in": True}
    t.update(measure(alone, **kwargs) if alone else {})
    time.sleep(BLAS_SETTLE)
    return t


def measure_run(fns, args, budget=1, apart=(), against=None, sample_time=None, lead_in=False):
    """``measure(fns)`` with the run's settings (``args.sample_time``, or ``sample_time``
    when longer, ``args.min_rounds``) and ``budget`` times its time budget ``args.budget``;
    the callables named in ``apart`` timed in a phase of their own (``measure_apart``, with
    ``against``)."""
    sample = max(args.sample_time, sample_time or 0)
    kwargs = dict(sample_time=sample, budget=args.budget * budget, min_rounds=args.min_rounds)
    kwargs["lead_in"] = lead_in
    if apart:
        return measure_apart(fns, apart, against, **kwargs)
    return measure(fns, **kwargs)


def ratio(t, num, den="normreg"):
    """``t[num] / t[den]`` of a row of times, None when either was not measured."""
    return t[num] / t[den] if t.get(num) and t.get(den) else None


class Roofline:
    """The copy the kernels are measured against: ``n`` float32 values copied by ``threads``
    threads (fewer for small arrays, as the kernels do) with plain loads and stores
    (``normreg._C.copy_f32``). Its bandwidth counts the
    bytes read plus the bytes written, as the kernels' minimum bytes do."""

    def __init__(self, n, threads=1):
        self.src = np.ones(n, dtype=np.float32)
        self.dst = np.empty_like(self.src)
        self.threads = threads
        self.bytes = 2 * self.src.nbytes

    @classmethod
    def of_working_set(cls, nbytes, threads=1):
        """The copy between two arrays of ``nbytes`` together, the bytes of the arrays the
        kernel it is compared with touches: both then meet the same level of the memory
        hierarchy (a copy of one activation stays in the caches where a forward and backward
        over four of them do not; a copy of all the bytes a step moves spills out of them
        where the step, rereading its arrays, does not)."""
        return cls(max(nbytes // 8, 1), threads)

    @property
    def threads_used(self):
        """The kernels' own rule: a thread per 256 KiB of traffic at most."""
        return max(1, min(self.threads, self.bytes // (256 << 10)))

    def __call__(self):
        _C.copy_f32(self.dst, self.src, self.threads_used)

    def columns(self, nbytes, t):
        """A row's bandwidth columns: the kernel's minimum ``nbytes`` over its time
        ``t["normreg"]`` in GB/s, the copy's (timed as ``t["copy"]``) and the ratio in %."""
        gbs = nbytes / t["normreg"] / 1e9
        copy_gbs = self.bytes / t["copy"] / 1e9
        return {"bytes": nbytes, "gbs": gbs, "copy_gbs": copy_gbs, "roof_pct": 100 * gbs / copy_gbs}


def set_threads(n):
    import kernels

    import normreg

    normreg.set_num_threads(n)
    if kernels.torch is not None:
        kernels.torch.set_num_threads(n)


# ---- training steps: normreg's and PyTorch's, on the same batch -----------------------------


def normreg_step(model, opt, x, y, input_grad=True):
    """One training step of ``model`` on the batch (x, y): softmax cross-entropy, backward
    (``input_grad=False``: no gradient for the data x), ``opt.step()``. The optimizer is
    kept as ``step.optimizer``."""
    loss_fn = nn.SoftmaxLoss()

    def step():
        opt.zero_grad()
        loss_fn(model(x), y)
        model.backward(loss_fn.backward(), input_grad=input_grad)
        opt.step()

    step.optimizer = opt
    return step


def torch_step(torch, model, opt, x, y):
    """The same step in PyTorch, on the same NumPy batch (x, y)."""
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    ce = torch.nn.functional.cross_entropy

    def step():
        opt.zero_grad()
        ce(model(xt), yt).backward()
        opt.step()

    return step


def torch_layer_fwd_bwd(torch, layer, x, dy):
    """PyTorch's forward and backward of ``layer`` on x with output gradient dy (NumPy
    arrays): every gradient normreg's layer computes (input, weight, bias), none kept."""
    xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)

    def fwd_bwd():
        layer.weight.grad = layer.bias.grad = None
        xg = xt.detach().requires_grad_(True)
        layer(xg).backward(dyt)

    return fwd_bwd
