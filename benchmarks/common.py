"""Timing helpers for the benchmark suite: interleaved repetitions, medians, the roofline."""

import statistics
import time

import numpy as np
from benchfmt import fmt_bytes, fmt_ratio, fmt_time  # noqa: F401 (the suite's formatting)

from normreg import _C


def _time_calls(fn, k):
    t0 = time.perf_counter()
    for _ in range(k):
        fn()
    return (time.perf_counter() - t0) / k


def measure(fns, *, sample_time=2e-3, budget=1.0, min_rounds=3, max_rounds=15):
    """Median seconds per call of each callable in ``fns`` (a dict name -> fn).

    Every callable is warmed up, then timed in rounds; in each round every callable is
    timed once (``k`` back-to-back calls, ``k`` chosen so a sample lasts about
    ``sample_time``), in an order that rotates from round to round. Interleaving makes
    slow drifts of the machine (other processes, memory bandwidth) hit every callable
    alike, so ratios between them hold even when absolute times wander.
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
            samples[name].append(_time_calls(fns[name], ks[name]))
    return {name: statistics.median(s) for name, s in samples.items()}


class Roofline:
    """The copy the kernels are measured against: ``n`` float32 values copied by ``threads``
    threads (fewer for small arrays, as the kernels do) with plain loads and stores
    (``normreg._C.copy_f32``). Its bandwidth counts the
    bytes read plus the bytes written, as the kernels' minimum bytes do."""

    def __init__(self, n, threads):
        self.src = np.ones(n, dtype=np.float32)
        self.dst = np.empty_like(self.src)
        self.threads = threads
        self.bytes = 2 * self.src.nbytes

    @property
    def threads_used(self):
        """The kernels' own rule: no second thread below 64 KiB of traffic per thread."""
        return max(1, min(self.threads, self.bytes // (64 << 10)))

    def __call__(self):
        _C.copy_f32(self.dst, self.src, self.threads_used)


def set_threads(n):
    import kernels

    import normreg

    normreg.set_num_threads(n)
    if kernels.torch is not None:
        kernels.torch.set_num_threads(n)
