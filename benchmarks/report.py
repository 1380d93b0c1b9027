"""Writes BENCHMARKS.md and the roofline plot from the JSON of a benchmark run.

    python benchmarks/run.py --json results.json
    python benchmarks/report.py results.json          # -> BENCHMARKS.md, benchmarks/roofline.png
    python benchmarks/report.py a.json b.json         # sections measured in b replace a's
    python benchmarks/report.py --repeats a.json b.json c.json  # goals: medians of whole runs

The goals of the performance issue are checked against the run's rows; the text of
benchmarks/analysis.md (which bound each unmet goal hit) is appended, after the goals measured
on other machines (benchmarks/goals-*.md, kept as they were written).
"""

import argparse
import glob
import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import benchfmt  # noqa: E402
import goals  # noqa: E402

fmt_ratio = benchfmt.fmt_ratio


def fmt_time(s):
    return benchfmt.fmt_time(s, " ")


def fmt_bytes(b):
    return benchfmt.fmt_bytes(b, " ")


def find(rows, **kw):
    for r in rows:
        if all(r.get(k) == v for k, v in kw.items()):
            return r
    return None


def plot(res, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["layernorm", "batchnorm", "dropout", "relu"]
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.5), sharey=True)
    for ax, name in zip(axes, names):
        for direction, color in (("fwd", "tab:blue"), ("bwd", "tab:orange"), ("f+b", "tab:green")):
            for threads, style in ((1, "--"), (2, "-")):
                rows = sorted(
                    (
                        r
                        for r in res.get("kernels", [])
                        if r["kernel"] == name and r["dir"] == direction and r["threads"] == threads
                    ),
                    key=lambda r: r["N"] * r["D"],
                )
                if not rows:
                    continue
                xs = [r["N"] * r["D"] * 4 for r in rows]
                ax.plot(
                    xs,
                    [min(r["roof_pct"], 199) for r in rows],
                    style,
                    marker="o",
                    ms=3,
                    color=color,
                    label=f"{direction}, {threads} thr",
                )
        ax.axhline(100, color="gray", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_title(name)
        ax.set_xlabel("activation bytes E (float32)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("% of roofline (C copy of the same working set, same threads, same rounds)")
    axes[0].legend(fontsize=8)
    for ax in axes:
        ax.set_ylim(0, 200)  # points above (cache-resident sizes) are drawn at the edge
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def accuracy():
    import normreg.functional as F

    rng = np.random.default_rng(0)
    x = (1e6 + rng.standard_normal((256, 1024))).astype(np.float32)
    _, mean, rstd = F.layer_norm(x, (1024,))
    xd = x.astype(np.float64)
    ref = 1 / np.sqrt(xd.var(1) + 1e-5)
    return {
        "rstd_rel_err": float(np.max(np.abs(rstd / ref - 1))),
        "mean_err_in_std": float(np.max(np.abs(mean - xd.mean(1)) * ref)),
    }


def kernel_table(res):
    lines = [
        "| kernel | dir | N x D | thr | normreg | numpy | torch | torch out= | torch/nr | "
        "torch out=/nr | min bytes | GB/s | copy GB/s | % roofline |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["kernels"]:
        lines.append(
            f"| {r['kernel']} | {r['dir']} | {r['N']}x{r['D']} | {r['threads']} | "
            f"{fmt_time(r['normreg'])} | {fmt_time(r['numpy'])} | {fmt_time(r['torch'])} | "
            f"{fmt_time(r['torch_out'])} | {fmt_ratio(r['ratio_torch'])} | "
            f"{fmt_ratio(r['ratio_torch_out'])} | {fmt_bytes(r['bytes'])} | {r['gbs']:.1f} | "
            f"{r['copy_gbs']:.1f} | {r['roof_pct']:.0f}% |"
        )
    return "\n".join(lines)


def table(title, columns, rows):
    """A markdown section: ``### title``, a table with the ``columns`` and one line per row
    (a list of cells), and a blank line."""
    return (
        [f"### {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        + ["| " + " | ".join(str(c) for c in cells) + " |" for cells in rows]
        + [""]
    )


def other_tables(res):
    parts = []
    if res.get("tiny"):
        t = res["tiny"]
        parts += table(
            "Tiny call: LayerNorm(64) forward on 32 x 64",
            ["path", "median"],
            [
                [k, f"{t[k] * 1e6:.2f} us"]
                for k in ("module", "functional", "binding", "kernel", "binding_share", "np_add", "torch")
                if k in t
            ],
        )
    if res.get("linear"):
        parts += table(
            "Linear forward+backward vs the same three sgemm calls (ratios: normreg beside them)",
            [
                "batch",
                "in->out",
                "thr",
                "normreg",
                "normreg beside sgemm",
                "direct sgemm",
                "normreg/sgemm",
                "sgemm, 1 thread",
                "normreg/1-thread",
                "torch",
                "torch/nr",
            ],
            [
                [
                    r["batch"],
                    f"{r['in']}->{r['out']}",
                    r["threads"],
                    fmt_time(r["normreg"]),
                    fmt_time(r.get("normreg_apart")),
                    f"{goals.beside(r) / r['sgemm']:.2f}x",
                    fmt_time(r.get("sgemm_1thread")),
                    fmt_ratio(goals.beside(r) / r["sgemm_1thread"] if "sgemm_1thread" in r else None),
                    fmt_time(r.get("torch")),
                    fmt_ratio(r["torch"] / r["normreg"] if "torch" in r else None),
                ]
                for r in res["linear"]
            ],
        )
    if res.get("optim"):
        parts += table(
            "Optimizer step over every parameter of the MLP",
            [
                "optimizer",
                "params",
                "thr",
                "normreg",
                "torch step()",
                "torch/nr",
                "min bytes",
                "GB/s",
                "copy GB/s",
                "% roofline",
            ],
            [
                [
                    r["optimizer"],
                    r["params"],
                    r["threads"],
                    fmt_time(r["normreg"]),
                    fmt_time(r.get("torch")),
                    fmt_ratio(r.get("ratio_torch")),
                    fmt_bytes(r["bytes"]),
                    f"{r['gbs']:.1f}",
                    f"{r['copy_gbs']:.1f}",
                    f"{r['roof_pct']:.0f}%",
                ]
                for r in res["optim"]
            ],
        )
    if res.get("mlp"):

        def mib(d, k):
            return "-" if d is None or d.get(k) is None else f"{d[k] / 1024:.1f} MiB"

        parts += table(
            "MLP training step (784-1024-512-10, BatchNorm1d, ReLU, Dropout 0.2, "
            "SGD momentum + weight decay)",
            [
                "batch",
                "thr",
                "normreg",
                "normreg beside floor",
                "GEMM floor",
                "normreg/floor",
                "optimizer",
                "torch",
                "torch/nr",
                "jax.jit",
                "jax/nr",
                "normreg peak extra",
                "torch peak extra",
                "normreg peak RSS",
                "torch peak RSS",
            ],
            [
                [
                    r["batch"],
                    r["threads"],
                    fmt_time(r["normreg"]),
                    fmt_time(r.get("normreg_apart")),
                    fmt_time(r.get("floor")),
                    fmt_ratio(r.get("ratio_floor")),
                    fmt_time(r.get("optim")),
                    fmt_time(r.get("torch")),
                    fmt_ratio(r.get("ratio_torch")),
                    fmt_time(r.get("jax")),
                    fmt_ratio(r.get("ratio_jax")),
                    mib(r["memory"]["normreg"], "peak_extra_kib"),
                    mib(r["memory"].get("torch"), "peak_extra_kib"),
                    mib(r["memory"]["normreg"], "hwm_kib"),
                    mib(r["memory"].get("torch"), "hwm_kib"),
                ]
                for r in res["mlp"]
            ],
        )
    if res.get("conv"):
        parts += table(
            "Conv2d 3x3 pad 1 forward+backward (y, dx, dweight, dbias) vs its sgemm floor (the three "
            "im2col products of the batch as sgemm calls, one per thread on its share of the samples) "
            "and PyTorch",
            [
                "batch",
                "C->O",
                "HxW",
                "thr",
                "normreg",
                "sgemm floor",
                "normreg/sgemm",
                "GFLOP/s",
                "torch",
                "torch/nr",
            ],
            [
                [
                    r["batch"],
                    f"{r['in']}->{r['out']}",
                    f"{r['hw']}x{r['hw']}",
                    r["threads"],
                    fmt_time(r["normreg"]),
                    fmt_time(r["sgemm"]),
                    f"{r['ratio_sgemm']:.2f}x",
                    f"{r['flops'] / r['normreg'] / 1e9:.1f}",
                    fmt_time(r.get("torch")),
                    fmt_ratio(r.get("ratio_torch")),
                ]
                for r in res["conv"]
            ],
        )
    if res.get("cnn"):
        parts += table(
            "CNN training step (models.CNN: 32, 64, 128 channels, BatchNorm2d; SGD Nesterov momentum, "
            "weight decay)",
            ["batch", "thr", "normreg", "torch", "torch/nr"],
            [
                [
                    r["batch"],
                    r["threads"],
                    fmt_time(r["normreg"]),
                    fmt_time(r.get("torch")),
                    fmt_ratio(r.get("ratio_torch")),
                ]
                for r in res["cnn"]
            ],
        )
    return "\n".join(parts)


SECTIONS = ("kernels", "linear", "optim", "mlp", "conv", "cnn", "tiny")


def _by_tier(res):
    """{tier: results} of one JSON file: a ``run.py --tiers`` file, or a single run (whose
    tier is the one its machine record names)."""
    if "tiers" in res:
        return dict(res["tiers"])
    return {res["machine"].get("tier", "(tier not recorded)"): res}


def load(paths):
    """``(runs, {tier: results})``: the first file's results per tier, each section a later
    file measured for the same tier replacing the earlier one; runs: (command, machine)."""
    runs, tiers = [], {}
    for path in paths:
        with open(path) as f:
            res = json.load(f)
        runs.append((res["command"], res["machine"]))
        for tier, more in _by_tier(res).items():
            if tier not in tiers:
                tiers[tier] = more
                continue
            for key in SECTIONS:
                if more.get(key):
                    tiers[tier][key] = more[key]
            tiers[tier]["machine"] = more["machine"]
    return runs, tiers


def run_lines(runs):
    lines = []
    for i, (cmd, m) in enumerate(runs):
        lines += [
            "```bash",
            cmd,
            "```",
            "",
            f"{'Run' if i == 0 else 'Then'} at {m.get('date', '?')}: {m['platform']}, "
            f"{m.get('cpu', '?')}, {m['cpus']} cores"
            + (f", NumPy {m['numpy']}, PyTorch {m['torch']}" if "numpy" in m else "")
            + (f", OpenBLAS kernels {m['blas_core']}" if m.get("blas_core") else "")
            + (f" (OPENBLAS_CORETYPE={m['OPENBLAS_CORETYPE']})" if m.get("OPENBLAS_CORETYPE") else "")
            + (f", OMP_WAIT_POLICY={m['OMP_WAIT_POLICY']}" if "OMP_WAIT_POLICY" in m else "")
            + (f", GOMP_SPINCOUNT={m['GOMP_SPINCOUNT']}" if "GOMP_SPINCOUNT" in m else "")
            + (
                f", load average at start {', '.join(f'{v:.1f}' for v in m['load_average'])}"
                if m.get("load_average")
                else ""
            )
            + ".",
            "",
        ]
    return lines


def tier_title(tier, m):
    """``tier avx2 on <CPU>``, saying when the tier was forced below the CPU's best."""
    supported = m.get("tiers_supported") or []
    forced = supported and tier != supported[0]
    how = f" (forced with NORMREG_CPU_CAPABILITY={tier}; the CPU's best is {supported[0]})" if forced else ""
    return f"Tier {tier} on {m.get('cpu', '?')}{how}"


def main(argv):
    ap = argparse.ArgumentParser(description="BENCHMARKS.md from results of benchmarks/run.py")
    ap.add_argument("results", nargs="+", help="JSON files of run.py --json")
    ap.add_argument(
        "--repeats",
        action="store_true",
        help="the files are whole runs of the same command: the goals are their medians, "
        "each run's value beside it; the tables come from the first",
    )
    args = ap.parse_args(argv)
    argv = args.results
    if args.repeats:
        loaded = [load([path]) for path in argv]
        runs = [r for file_runs, _ in loaded for r in file_runs]
        per_file = [file_tiers for _, file_tiers in loaded]
        tiers = per_file[0]
    else:
        runs, tiers = load(argv)
    best = next(iter(tiers.values()))
    png = os.path.join(HERE, "roofline.png")
    plot(best, png)
    analysis_path = os.path.join(HERE, "analysis.md")
    analysis = Path(analysis_path).read_text() if os.path.exists(analysis_path) else ""
    acc = accuracy()
    lines = [
        "# normreg benchmarks",
        "",
        "Generated by `python benchmarks/report.py "
        + ("--repeats " if args.repeats else "")
        + " ".join(os.path.basename(a) for a in argv)
        + "` from the results of `python benchmarks/run.py --tiers --json results.json` (the "
        "whole suite once per CPU tier the machine supports, each tier in a process of its own "
        "with `NORMREG_CPU_CAPABILITY` set; see docs/performance.md):",
        "",
        *run_lines(runs),
        "## Goals, per CPU tier (2 threads)",
        "",
    ]
    if args.repeats:
        lines += [
            f"Each goal is the median of {len(argv)} runs of the same command (above, in "
            "order): its status is the median run's, every run's value is in brackets, and "
            "the evidence is the median run's. The tables after the analysis are the first "
            "run's.",
            "",
        ]
    printed = []
    for tier, res in tiers.items():
        if args.repeats:
            rows = goals.median_goals([t[tier] for t in per_file if tier in t])
        else:
            rows = goals.goals(res)
        printed.append((tier, rows))
        lines += [f"### {tier_title(tier, res['machine'])}", "", *goals.markdown(rows), ""]
    lines += [
        f"float32 LayerNorm statistics at mean 1e6: relative error of rstd {acc['rstd_rel_err']:.1e} "
        "(about 1e-6 wanted).",
        "",
    ]
    # the goals measured on machines this run was not made on (goals-<machine>.md), kept as is
    for path in sorted(glob.glob(os.path.join(HERE, "goals-*.md"))):
        lines += [Path(path).read_text().strip(), ""]
    lines += [
        analysis.strip(),
        "",
        "## Percent of roofline against size",
        "",
        f"![percent of roofline](benchmarks/roofline.png) (tier {next(iter(tiers))})",
        "",
        "Dashed: 1 thread, solid: 2 threads. Shapes of the same size (e.g. 256 x 4096 and "
        "8192 x 128) share an x position, hence the vertical segments; values above 200% "
        "(cache-resident inputs) are drawn at the edge.",
        "",
    ]
    for tier, res in tiers.items():
        lines += [
            f"## Tables: {tier_title(tier, res['machine'])}",
            "",
            "### Kernels (float32)",
            "",
            "Times are medians per call; `torch` is PyTorch as users run it (tensors that "
            "require grad in the forward, autograd's backward for f+b), `torch out=` its ATen "
            "kernels writing into reused outputs. Bytes are the minimum the kernel must move; "
            "the roofline is a plain C copy of an array of the activation's size with the same "
            "thread count, timed in the same rounds.",
            "",
            kernel_table(res) if res.get("kernels") else "(not measured)",
            "",
            other_tables(res),
            "",
        ]
    # sections measured by other scripts (e.g. the distributed training benchmark), kept as is
    distributed_path = os.path.join(HERE, "distributed.md")
    if os.path.exists(distributed_path):
        lines += ["", Path(distributed_path).read_text().strip()]
    with open(os.path.join(ROOT, "BENCHMARKS.md"), "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")
    for tier, rows in printed:
        print(f"# tier {tier}")
        for goal, measured, status, short, _ in rows:
            print(f"{status:8s} {goal}: {measured} {short}")


if __name__ == "__main__":
    main(sys.argv[1:])
