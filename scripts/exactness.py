"""float32 exactness of the norms and of softmax cross-entropy, against float64.

Every layer is run in float32 and, with the same parameters, in float64 on the same float32
input (so only the arithmetic differs). Printed: the relative error max |a - ref| / max |ref|
of the forward output y and of the input gradient dx, at means 0, 1e2, 1e4, 1e6 and standard
deviations 1 and 0.01; softmax cross-entropy's gradient (element-wise relative error) at logit
offsets 0 .. 3e4 and for equal logits; and extreme finite input. RELIABILITY.md quotes it.

    python scripts/exactness.py            # the tables (Markdown)
"""

import numpy as np

from normreg import distributed, nn

MEANS = [0.0, 1e2, 1e4, 1e6]
STDS = [1.0, 0.01]


def _layers():
    """(name, constructor(dtype), input shape) of every norm (and its kernel path)."""
    return [
        ("LayerNorm (64, 256)", lambda dt: nn.LayerNorm(256, dtype=dt), (64, 256)),
        ("LayerNorm (64, 1000)", lambda dt: nn.LayerNorm(1000, dtype=dt), (64, 1000)),
        ("BatchNorm1d (256, 64)", lambda dt: nn.BatchNorm1d(64, dtype=dt), (256, 64)),
        ("BatchNorm2d (16, 8, 8, 8)", lambda dt: nn.BatchNorm2d(8, dtype=dt), (16, 8, 8, 8)),
        (
            "SyncBatchNorm (32, 8, 16)",
            lambda dt: distributed.SyncBatchNorm(8, dtype=dt, comm=distributed.LocalComm()),
            (32, 8, 16),
        ),
        ("GroupNorm 4 groups (8, 16, 64)", lambda dt: nn.GroupNorm(4, 16, dtype=dt), (8, 16, 64)),
        ("InstanceNorm1d (8, 16, 64)", lambda dt: nn.InstanceNorm1d(16, affine=True, dtype=dt), (8, 16, 64)),
        # one eps for both dtypes (the default is the dtype's machine epsilon)
        ("RMSNorm (64, 256)", lambda dt: nn.RMSNorm(256, eps=1e-6, dtype=dt), (64, 256)),
    ]


def _pair(make, rng):
    """A float32 layer and a float64 one with the same (random) parameters."""
    l32, l64 = make(np.float32), make(np.float64)
    for name in ("weight", "bias"):
        p32, p64 = getattr(l32, name, None), getattr(l64, name, None)
        if p32 is not None:
            v = rng.uniform(0.5, 1.5, p32.shape) if name == "weight" else rng.standard_normal(p32.shape)
            p32.data[...] = v
            p64.data[...] = p32.data
    return l32, l64


def rel(a, ref):
    """max |a - ref| / max |ref| (0 for two zero arrays, inf for a non-finite a)."""
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    if not np.all(np.isfinite(a)):
        return np.inf
    scale = np.max(np.abs(ref))
    return float(np.max(np.abs(a - ref)) / scale) if scale > 0 else float(np.max(np.abs(a)))


def norm_errors(make, shape, mean, std, seed=0):
    """(forward error, dx error) of the float32 layer against the float64 one."""
    rng = np.random.default_rng(seed)
    l32, l64 = _pair(make, rng)
    x = (mean + std * rng.standard_normal(shape)).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    y32, y64 = l32(x), l64(x.astype(np.float64))
    dx32, dx64 = l32.backward(dy), l64.backward(dy.astype(np.float64))
    return rel(y32, y64), rel(dx32, dx64)


def ce_error(z):
    """Element-wise relative error of softmax cross-entropy's float32 gradient, and of p."""
    labels = np.arange(z.shape[0]) % z.shape[1]
    loss = nn.SoftmaxLoss()
    loss(z.astype(np.float32), labels)
    d32 = loss.backward()
    z64 = z.astype(np.float32).astype(np.float64)
    p = np.exp(z64 - z64.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    ref = p.copy()
    ref[np.arange(z.shape[0]), labels] -= 1
    ref /= z.shape[0]
    return float(np.max(np.abs(d32 - ref) / np.abs(ref)))


EXTREME = np.array([3e38, -3e38, 1e38, 0], np.float32)


def extreme_errors(make, shape):
    """The extreme values in one row (group, channel) of a layer's input: (forward error,
    dx error) over the values normalized together with them."""
    rng = np.random.default_rng(5)
    l32, l64 = _pair(make, rng)
    x = np.zeros(shape, np.float32)
    if isinstance(l32, (nn.BatchNorm1d, nn.BatchNorm2d, distributed.SyncBatchNorm)):
        x[:, 0].flat[:4] = EXTREME  # in channel 0
        part = (slice(None), 0)
    elif isinstance(l32, nn.GroupNorm):
        x.flat[:4] = EXTREME  # in sample 0's first group
        part = (0, slice(0, shape[1] // l32.num_groups))
    else:
        x.flat[:4] = EXTREME  # in row 0
        part = (0,)
    dy = rng.standard_normal(shape).astype(np.float32)
    with np.errstate(all="ignore"):
        y32, y64 = l32(x), l64(x.astype(np.float64))
        dx32, dx64 = l32.backward(dy), l64.backward(dy.astype(np.float64))
    return rel(y32[part], y64[part]), rel(dx32[part], dx64[part])


def _fmt(e):
    return "inf/NaN" if not np.isfinite(e) else f"{e:.1e}"


def main():
    print("## Norms, float32 vs float64 on the same input: forward y / backward dx\n")
    cols = [f"mean {m:g}, std {s:g}" for s in STDS for m in MEANS]
    print("| layer | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for name, make, shape in _layers():
        cells = []
        for s in STDS:
            for m in MEANS:
                fe, be = norm_errors(make, shape, m, s)
                cells.append(f"{_fmt(fe)} / {_fmt(be)}")
        print(f"| {name} | " + " | ".join(cells) + " |")

    print("\n## Softmax cross-entropy gradient, float32, element-wise relative error\n")
    rng = np.random.default_rng(0)
    z = rng.standard_normal((64, 10))
    cases = [(f"offset {o:g}", z + o) for o in (0, 1e3, 1e4, 3e4)]
    cases.append(("equal logits -1e4", np.full((64, 3), -1e4)))
    print("| logits | " + " | ".join(c for c, _ in cases) + " |")
    print("|---|" + "---|" * len(cases))
    print("| error | " + " | ".join(_fmt(ce_error(v)) for _, v in cases) + " |")

    print(
        "\n## Extreme finite input [3e38, -3e38, 1e38, 0] (zeros elsewhere), over the row (group,\n"
        "channel) holding it: y / dx\n"
    )
    print("| layer | error |")
    print("|---|---|")
    for name, make, shape in _layers():
        fe, be = extreme_errors(make, shape)
        print(f"| {name} | {_fmt(fe)} / {_fmt(be)} |")


if __name__ == "__main__":
    main()
