"""normreg's benchmark suite: every kernel against NumPy, PyTorch and the memory roofline.

    python benchmarks/run.py            # the full table (several minutes)
    python benchmarks/run.py --quick    # a smoke test of every section (seconds)
    python benchmarks/run.py --tiers --json results.json   # once per CPU tier (what
                                        # BENCHMARKS.md is made from, by report.py)

Options: --threads 1,2  --json results.json  --no-torch  --no-jax  --tiers [avx2,baseline]
         --sections kernels,tiny,linear,optim,mlp,conv,cnn
         --shapes 8192x1024,256x64
(OpenMP's settings are normreg's, as a user's process gets them: normreg/_openmp.py; set
OMP_WAIT_POLICY in the environment to measure another policy.)

Every time is the median of interleaved repetitions after warm-up (see common.measure):
all implementations compared in a row, and the roofline copy of the same working set, are timed in
the same rounds, so their ratios hold while the machine's speed drifts.

Columns of the kernel table: time per call of normreg, the NumPy reference, PyTorch as
users run it, PyTorch with its outputs reused (``.out`` kernels); the ratio torch/normreg
for both; the minimum bytes the kernel must move; normreg's effective GB/s (those bytes
over its time); and that as a percentage of the roofline: the bandwidth of a plain C copy
between two arrays as large together as the arrays the kernel touches (its working set, so
both meet the same level of the memory hierarchy), with the same number of threads, timed in
the same rounds.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common
import kernels
import machine
import tiers

import normreg
from normreg import _C

FULL_SHAPES = [(32, 64)] + [(n, d) for n in (256, 8192, 65536) for d in (64, 128, 1024, 4096)]
QUICK_SHAPES = [(32, 64), (256, 128)]
MAX_BYTES = 256 << 20  # skip shapes whose activation exceeds this (65536 x 4096 = 1 GiB)


set_threads = common.set_threads
fmt_time, fmt_ratio, fmt_bytes = common.fmt_time, common.fmt_ratio, common.fmt_bytes


# ---- kernels ------------------------------------------------------------------------------


def bench_kernels(args, shapes, threads_list, out):
    rng = np.random.default_rng(0)
    header = (
        f"{'kernel':<10}{'dir':<5}{'N x D':>12}{'thr':>4}{'normreg':>10}{'numpy':>10}"
        f"{'torch':>10}{'t.out':>10}{'t/nr':>7}{'t.out/nr':>9}{'bytes':>9}{'GB/s':>7}"
        f"{'copyGB/s':>9}{'%roof':>7}"
    )
    print("\n## Kernels (float32)\n")
    print(header)
    for name, make in kernels.KERNELS.items():
        for N, D in shapes:
            E = N * D * 4
            if E > MAX_BYTES:
                continue
            cases = make(N, D, rng)
            rooflines = {}  # the copy of each direction's working set, by its size in E
            for threads in threads_list:
                set_threads(threads)
                for direction in ("fwd", "bwd", "f+b"):
                    fb, bb = kernels.BYTES[name]
                    nbytes = {"fwd": fb, "bwd": bb, "f+b": fb + bb}[direction] * E
                    ws = kernels.working_set(name, direction)
                    if ws not in rooflines:
                        rooflines[ws] = common.Roofline.of_working_set(ws * E)
                    roof = rooflines[ws]
                    roof.threads = threads
                    fns = dict(cases[direction])
                    fns["copy"] = roof
                    t = common.measure_run(fns, args, budget=2 if direction == "f+b" else 1)
                    row = {
                        "kernel": name,
                        "dir": direction,
                        "N": N,
                        "D": D,
                        "threads": threads,
                        "normreg": t["normreg"],
                        "numpy": t.get("numpy"),
                        "torch": t.get("torch"),
                        "torch_out": t.get("torch_out"),
                        **roof.columns(nbytes, t),
                        "ratio_torch": common.ratio(t, "torch"),
                        "ratio_torch_out": common.ratio(t, "torch_out"),
                    }
                    out["kernels"].append(row)
                    print(
                        f"{name:<10}{direction:<5}{f'{N}x{D}':>12}{threads:>4}"
                        f"{fmt_time(row['normreg']):>10}{fmt_time(row['numpy']):>10}"
                        f"{fmt_time(row['torch']):>10}{fmt_time(row['torch_out']):>10}"
                        f"{fmt_ratio(row['ratio_torch']):>7}{fmt_ratio(row['ratio_torch_out']):>9}"
                        f"{fmt_bytes(nbytes):>9}{row['gbs']:>7.1f}{row['copy_gbs']:>9.1f}"
                        f"{row['roof_pct']:>6.0f}%",
                        flush=True,
                    )
            del cases, rooflines, roof


# ---- the tiny call ----------------------------------------------------------------------


def bench_tiny(args, out):
    """LayerNorm forward on 32 x 64 through the Module: Python-path overhead."""
    from normreg import nn

    print("\n## Tiny call: LayerNorm(64) forward on 32 x 64 through the Module\n")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 64), dtype=np.float32)
    set_threads(2)
    ln = nn.LayerNorm(64)
    w, b = ln.weight.data, ln.bias.data
    fns = {
        "module": lambda: ln(x),
        "functional": lambda: normreg.functional.layer_norm(x, (64,), w, b, 1e-5),
        "binding": lambda: _C.layer_norm_forward(x, w, b, 1e-5, None),
        # the machine-independent yardstick of the goal: the cheapest NumPy call on x
        "np_add": lambda: np.add(x, 1.0),
    }
    if kernels.torch is not None:
        torch = kernels.torch
        tln = torch.nn.LayerNorm(64)
        xt = torch.from_numpy(x)
        fns["torch"] = lambda: tln(xt)
    # PyTorch apart: its pool's threads, spinning after its calls, slowed the single-threaded
    # calls timed beside it (np.add 1.3 -> 1.7 us)
    t = common.measure_run(fns, args, budget=2, apart=("torch",))
    reps = 20000 if not args.quick else 200
    kernel = min(_C.layer_norm_kernel_time(x, w, b, reps) for _ in range(5))
    t["kernel"] = kernel
    t["binding_share"] = t["binding"] - kernel
    for k, v in t.items():
        print(f"{k:<15}{v * 1e6:8.2f} us")
    print(f"{'module/np_add':<15}{t['module'] / t['np_add']:8.2f} x")
    if "torch" in t:
        print(f"{'torch/module':<15}{t['torch'] / t['module']:8.2f} x")
    out["tiny"] = t


# ---- linear -----------------------------------------------------------------------------


def bench_linear(args, threads_list, out):
    """Linear forward+backward against the same three products through OpenBLAS directly.
    Columns: normreg timed with PyTorch, then beside the products (in their phase, the
    ratios to them taken there: see common.measure_apart)."""
    print("\n## Linear forward+backward vs direct sgemm (float32)\n")
    print(
        f"{'batch':>6}{'in->out':>12}{'thr':>4}{'normreg':>10}{'beside':>10}{'sgemm':>10}{'nr/sgemm':>9}"
        f"{'sgemm 1t':>10}{'nr/1t':>7}{'torch':>10}{'t/nr':>7}"
    )
    F = normreg.functional
    rng = np.random.default_rng(0)
    layers = [(784, 1024), (1024, 512), (512, 10)]
    batches = (128, 512) if not args.quick else (32,)
    for B in batches:
        for K, N in layers:
            x = rng.standard_normal((B, K), dtype=np.float32)
            w = rng.standard_normal((K, N), dtype=np.float32) * 0.03
            b = rng.standard_normal(N, dtype=np.float32)
            dy = rng.standard_normal((B, N), dtype=np.float32)
            gw, gb = np.zeros_like(w), np.zeros_like(b)
            y_o, dx_o = np.empty((B, N), np.float32), np.empty((B, K), np.float32)

            def nr():
                F.linear(x, w, b)
                F.linear_backward(dy, x, w, dweight=gw, dbias=gb)

            def direct():
                _C.sgemm(False, False, x, w, y_o, 0.0)
                _C.sgemm(False, True, dy, w, dx_o, 0.0)
                _C.sgemm(True, False, x, dy, gw, 1.0)

            def direct_1thread():
                # the skinny product's yardstick: the same calls on one OpenBLAS thread (the
                # count switched and restored around them, as normreg does for such products)
                threads = normreg.get_num_threads()
                _C.set_num_threads(1)
                direct()
                _C.set_num_threads(threads)

            fns = {"normreg": nr, "sgemm": direct}
            if N < 64:
                fns["sgemm_1thread"] = direct_1thread
            if kernels.torch is not None:
                torch = kernels.torch
                fns["torch"] = common.torch_layer_fwd_bwd(torch, torch.nn.Linear(K, N), x, dy)
            for threads in threads_list:
                set_threads(threads)
                # normreg against the products: both in the products' phase (normreg_apart)
                t = common.measure_run(fns, args, apart=("sgemm", "sgemm_1thread"), against="normreg")
                row = {"batch": B, "in": K, "out": N, "threads": threads, **t}
                out["linear"].append(row)
                print(
                    f"{B:>6}{f'{K}->{N}':>12}{threads:>4}{fmt_time(t['normreg']):>10}"
                    f"{fmt_time(t['normreg_apart']):>10}{fmt_time(t['sgemm']):>10}"
                    f"{t['normreg_apart'] / t['sgemm']:>8.2f}x"
                    f"{fmt_time(t.get('sgemm_1thread')):>10}"
                    f"{fmt_ratio(common.ratio(t, 'normreg_apart', 'sgemm_1thread')):>7}"
                    f"{fmt_time(t.get('torch')):>10}{fmt_ratio(common.ratio(t, 'torch')):>7}"
                )


# ---- main -------------------------------------------------------------------------------


SECTIONS = ("kernels", "tiny", "linear", "optim", "mlp", "conv", "cnn")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny shapes, few repetitions: a smoke test")
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated (default 1,2)")
    ap.add_argument("--json", help="write every measured row to this file")
    ap.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if importable")
    ap.add_argument("--no-jax", action="store_true", help="leave JAX (the MLP step's XLA column) out")
    ap.add_argument(
        "--tiers",
        nargs="?",
        const="all",
        help="run the suite once per CPU tier, each in a subprocess with NORMREG_CPU_CAPABILITY "
        "set: a comma-separated list, or every tier the CPU supports when no list is given",
    )
    ap.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    ap.add_argument("--shapes", help="N x D list for the kernels, e.g. 8192x1024,256x64")
    args = ap.parse_args(argv)
    if args.tiers:
        return tiers.run_tiers(args.tiers, sys.argv[1:] if argv is None else argv, args.json)
    kernels.torch = None if args.no_torch else kernels.load_torch()
    args.sample_time = 2e-4 if args.quick else 3e-3
    args.budget = 0.02 if args.quick else 0.6
    args.min_rounds = 1 if args.quick else 5
    threads_list = [int(t) for t in args.threads.split(",")]
    if args.quick:
        threads_list = threads_list[-1:]
    sections = args.sections.split(",")
    shapes = QUICK_SHAPES if args.quick else FULL_SHAPES
    if args.shapes:
        shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    out = {
        "kernels": [],
        "linear": [],
        "optim": [],
        "mlp": [],
        "conv": [],
        "cnn": [],
        "machine": {
            **machine.describe(),
            "numpy": np.__version__,
            "normreg": normreg.__version__,
            "torch": kernels.torch.__version__ if kernels.torch else None,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(default)"),
            "GOMP_SPINCOUNT": os.environ.get("GOMP_SPINCOUNT", "(default)"),
            "load_average": os.getloadavg(),
        },
        "command": tiers.command(sys.argv[1:] if argv is None else argv),
    }
    print(f"# normreg benchmarks: {out['machine']}")
    t0 = time.time()
    if "kernels" in sections:
        bench_kernels(args, shapes, threads_list, out)
    if "tiny" in sections:
        bench_tiny(args, out)
    if "linear" in sections:
        bench_linear(args, threads_list, out)
    if "optim" in sections or "mlp" in sections:
        import training

        if "optim" in sections:
            training.bench_optim(args, threads_list, out)
        if "mlp" in sections:
            training.bench_mlp(args, out)
    if "conv" in sections or "cnn" in sections:
        import conv

        if "conv" in sections:
            conv.bench_conv(args, threads_list, out)
        if "cnn" in sections:
            conv.bench_cnn(args, threads_list, out)
    print(f"\n(total {time.time() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
