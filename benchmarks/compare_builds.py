"""Time the kernels of two builds of normreg side by side, in one process.

    python benchmarks/compare_builds.py OTHER_SITE [--threads 1,2] [--rounds 7] [--shapes ...]

OTHER_SITE is a directory holding another build's package (e.g. one made with
``pip install --target OTHER_SITE .`` from another checkout). Its extension is loaded next to
the installed normreg's, and each case (forward + backward through ``normreg._C`` of
LayerNorm, BatchNorm1d/2d, RMSNorm, GroupNorm, softmax cross-entropy, Dropout; BatchNorm's
evaluation forward alone) runs on both in alternation: the ratios of the medians and of the
minima are "this build's time / the other's" (below 1: this build is faster). On a machine
shared with other work, read the ratios, not the absolute times; the minimum is the less
disturbed of the two.
"""

import argparse
import glob
import importlib.util
import os
import statistics
import time

import numpy as np

import normreg._C as this_C


def load_other(site):
    paths = glob.glob(os.path.join(site, "normreg", "_C*.so"))
    if not paths:
        raise SystemExit(f"no normreg/_C*.so under {site}")
    spec = importlib.util.spec_from_file_location("other_normreg._C", paths[0])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def cases(shapes, rng):
    """(name, function of a _C module running forward + backward)."""
    out = []
    for M, D in shapes:
        x = rng.standard_normal((M, D)).astype(np.float32)
        dy = rng.standard_normal((M, D)).astype(np.float32)
        w = rng.uniform(0.5, 1.5, D).astype(np.float32)
        b = np.zeros(D, np.float32)
        dw, db = np.zeros(D, np.float32), np.zeros(D, np.float32)

        def ln(C, x=x, dy=dy, w=w, b=b, dw=dw, db=db):
            _, mean, rstd = C.layer_norm_forward(x, w, b, 1e-5, None)
            C.layer_norm_backward(dy, x, mean, rstd, w, dw, db, None)

        out.append((f"LayerNorm {M}x{D}", ln))

        x3, dy3 = x.reshape(M, D, 1), dy.reshape(M, D, 1)
        rm, rv = np.zeros(D, np.float32), np.ones(D, np.float32)

        def bn(C, x3=x3, dy3=dy3, w=w, b=b, rm=rm, rv=rv, dw=dw, db=db):
            _, mean, rstd = C.batch_norm_forward(x3, w, b, rm, rv, True, 0.1, 1e-5, None)
            C.batch_norm_backward(dy3, x3, mean, rstd, w, dw, db, True, None)

        out.append((f"BatchNorm1d {M}x{D}", bn))

        def rms(C, x=x, dy=dy, w=w, dw=dw):
            _, rstd = C.rms_norm_forward(x, w, 1e-6, None)
            C.rms_norm_backward(dy, x, rstd, w, dw, None)

        out.append((f"RMSNorm {M}x{D}", rms))

    x4 = rng.standard_normal((32, 64, 32 * 32)).astype(np.float32)
    dy4 = rng.standard_normal(x4.shape).astype(np.float32)
    w4, b4 = np.ones(64, np.float32), np.zeros(64, np.float32)
    rm4, rv4 = np.zeros(64, np.float32), np.ones(64, np.float32)
    dw4, db4 = np.zeros(64, np.float32), np.zeros(64, np.float32)

    def bn2d(C):
        _, mean, rstd = C.batch_norm_forward(x4, w4, b4, rm4, rv4, True, 0.1, 1e-5, None)
        C.batch_norm_backward(dy4, x4, mean, rstd, w4, dw4, db4, True, None)

    out.append(("BatchNorm2d 32x64x32x32", bn2d))

    # small feature maps (4 and 16 positions: the same bytes as 8192 x 64; 7 x 7 maps of a
    # batch of 128, few rows of many columns)
    for shape in ((2048, 64, 4), (512, 64, 16), (128, 128, 49)):
        xs = rng.standard_normal(shape).astype(np.float32)
        dys = rng.standard_normal(shape).astype(np.float32)
        ws, bs = np.ones(shape[1], np.float32), np.zeros(shape[1], np.float32)
        dws, dbs = np.zeros(shape[1], np.float32), np.zeros(shape[1], np.float32)
        rms, rvs = np.zeros(shape[1], np.float32), np.ones(shape[1], np.float32)

        def bn_small(C, xs=xs, dys=dys, ws=ws, bs=bs, dws=dws, dbs=dbs, rms=rms, rvs=rvs):
            _, mean, rstd = C.batch_norm_forward(xs, ws, bs, rms, rvs, True, 0.1, 1e-5, None)
            C.batch_norm_backward(dys, xs, mean, rstd, ws, dws, dbs, True, None)

        out.append((f"BatchNorm {'x'.join(map(str, shape))} (N, C, L)", bn_small))

    # evaluation (the running estimates): forward alone, (N, C) and a small map
    for shape in ((8192, 64, 1), (2048, 64, 4)):
        xe = rng.standard_normal(shape).astype(np.float32)

        def bn_eval(C, xe=xe):
            C.batch_norm_forward(xe, w4, b4, rm4, rv4, False, 0.1, 1e-5, None)

        out.append((f"BatchNorm eval forward {'x'.join(map(str, shape))}", bn_eval))

    def gn(C):
        _, mean, rstd = C.group_norm_forward(x4, w4, b4, 8, 1e-5, None)
        C.group_norm_backward(dy4, x4, mean, rstd, w4, dw4, db4, 8, None)

    out.append(("GroupNorm 32x64x32x32, 8 groups", gn))

    # short groups (at most 256 values): a small feature map, and (N, C) input
    for shape, G in (((512, 64, 16), 32), ((8192, 64, 1), 8)):
        xg = rng.standard_normal(shape).astype(np.float32)
        dyg = rng.standard_normal(shape).astype(np.float32)

        def gn_short(C, xg=xg, dyg=dyg, G=G):
            _, mean, rstd = C.group_norm_forward(xg, w4, b4, G, 1e-5, None)
            C.group_norm_backward(dyg, xg, mean, rstd, w4, dw4, db4, G, None)

        out.append((f"GroupNorm {'x'.join(map(str, shape))}, {G} groups", gn_short))

    for B, K in ((128, 10), (8192, 10), (8192, 1000)):
        z = rng.standard_normal((B, K)).astype(np.float32)
        labels = rng.integers(0, K, B).astype(np.int64)

        def ce(C, z=z, labels=labels):
            _, lse = C.cross_entropy_forward(z, labels)
            C.cross_entropy_backward(z, labels, lse, 1.0, None)

        out.append((f"softmax CE {B}x{K}", ce))

    xd = rng.standard_normal((8192, 1024)).astype(np.float32)
    yd, dxd = np.empty_like(xd), np.empty_like(xd)

    def drop(C):
        _, mask = C.dropout_forward(xd, 0.2, 1234, 0, yd)
        C.dropout_backward(xd, mask, 0.2, dxd)

    out.append(("Dropout 8192x1024", drop))
    return out


def time_once(fn, C, inner):
    t0 = time.perf_counter()
    for _ in range(inner):
        fn(C)
    return (time.perf_counter() - t0) / inner


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("other_site")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=7, help="alternating rounds (medians)")
    ap.add_argument("--shapes", default="8192x64,8192x128,8192x1024,8192x4096")
    args = ap.parse_args()
    other_C = load_other(args.other_site)
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    rng = np.random.default_rng(0)
    print(
        "| case | threads | this build (us, median) | other build (us, median) "
        "| ratio of medians | ratio of minima |"
    )
    print("|---|---|---|---|---|---|")
    for nt in (int(t) for t in args.threads.split(",")):
        this_C.set_num_threads(nt)
        other_C.set_num_threads(nt)
        for name, fn in cases(shapes, rng):
            for C in (this_C, other_C):  # warm-up, and the inner count for ~20 ms a sample
                fn(C)
            inner = max(1, int(0.02 / max(time_once(fn, this_C, 1), 1e-7)))
            a, b = [], []
            for r in range(args.rounds):
                order = (this_C, other_C) if r % 2 == 0 else (other_C, this_C)
                for C in order:
                    (a if C is this_C else b).append(time_once(fn, C, inner))
            ma, mb = statistics.median(a), statistics.median(b)
            print(
                f"| {name} | {nt} | {ma * 1e6:.1f} | {mb * 1e6:.1f} | {ma / mb:.3f} | "
                f"{min(a) / min(b):.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
