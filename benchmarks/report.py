"""Writes BENCHMARKS.md and the roofline plot from the JSON of a benchmark run.

    python benchmarks/run.py --json results.json
    python benchmarks/report.py results.json          # -> BENCHMARKS.md, benchmarks/roofline.png
    python benchmarks/report.py a.json b.json         # sections measured in b replace a's

The goals of the performance issue are checked against the run's rows; the text of
benchmarks/analysis.md (which bound each unmet goal hit) is appended.
"""

import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import benchfmt  # noqa: E402

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
                        for r in res["kernels"]
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
    axes[0].set_ylabel("% of roofline (C copy of E bytes, same threads, same rounds)")
    axes[0].legend(fontsize=8)
    for ax in axes:
        ax.set_ylim(0, 200)  # points above (cache-resident sizes) are drawn at the edge
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def goals(res):
    """(goal, measured, met, margin) rows."""
    K, out = res["kernels"], []

    def kr(name, N, D, direction="f+b", threads=2):
        return find(K, kernel=name, N=N, D=D, dir=direction, threads=threads)

    def add(goal, value, target, higher=True, unit="", fmt="{:.2f}"):
        if value is None:
            out.append((goal, "not measured", "-", ""))
            return
        met = value >= target if higher else value <= target
        margin = value / target if higher else target / value
        out.append(
            (
                goal,
                fmt.format(value) + unit,
                "met" if met else "NOT met",
                "" if met else f"{(1 - margin) * 100:.0f}% short",
            )
        )

    for D, tgt in ((1024, 80), (4096, 70), (64, 70), (128, 70)):
        r = kr("layernorm", 8192, D)
        add(
            f"LayerNorm f+b 8192x{D}, 2 thr: >= {tgt}% of roofline",
            r and r["roof_pct"],
            tgt,
            unit="%",
            fmt="{:.0f}",
        )
    r = kr("layernorm", 8192, 1024)
    add("LayerNorm f+b 8192x1024: >= 3x faster than torch as run", r and r["ratio_torch"], 3, unit="x")
    add(
        "LayerNorm f+b 8192x1024: >= 1.5x faster than torch kernels (outputs reused)",
        r and r["ratio_torch_out"],
        1.5,
        unit="x",
    )
    r = kr("batchnorm", 8192, 1024)
    add("BatchNorm1d f+b 8192x1024: >= 80% of roofline", r and r["roof_pct"], 80, unit="%", fmt="{:.0f}")
    add("BatchNorm1d f+b 8192x1024: >= 3x faster than torch as run", r and r["ratio_torch"], 3, unit="x")
    r = kr("dropout", 8192, 1024)
    add("Dropout f+b 8192x1024: >= 85% of roofline", r and r["roof_pct"], 85, unit="%", fmt="{:.0f}")
    add("Dropout f+b 8192x1024: >= 20x faster than torch as run", r and r["ratio_torch"], 20, unit="x")
    out.append(("Dropout mask at most 1 bit per element", "1 bit (packed uint8)", "met", ""))
    for name, tgt in (("SGD", 2), ("AdamW", 8)):
        r = find(res["optim"], optimizer=name, threads=2)
        add(
            f"{name} step over the MLP's parameters: >= {tgt}x faster than torch step()",
            r and r.get("ratio_torch"),
            tgt,
            unit="x",
        )
    for row in res["linear"]:
        if row["threads"] == 2:
            add(
                f"Linear f+b batch {row['batch']} {row['in']}->{row['out']}, 2 thr: within 5% "
                "of direct sgemm (normreg/sgemm)",
                row["normreg"] / row["sgemm"],
                1.05,
                higher=False,
                unit="x",
            )
    for B in (128, 512):
        r1 = find(res["linear"], batch=B, **{"in": 512, "out": 10}, threads=1)
        r2 = find(res["linear"], batch=B, **{"in": 512, "out": 10}, threads=2)
        if r1 and r2:
            add(
                f"Linear 512->10 batch {B}: 2 threads not slower than 1 (t1/t2, 5% timing noise allowed)",
                r1["normreg"] / r2["normreg"],
                0.95,
                unit="x",
            )
    t = res.get("tiny")
    if t:
        add(
            "Tiny LayerNorm 32x64 through the Module: <= 1.5 us median",
            t["module"] * 1e6,
            1.5,
            higher=False,
            unit=" us",
        )
        add("Tiny call: >= 4x faster than torch", t.get("torch") and t["torch"] / t["module"], 4, unit="x")
        add(
            "Tiny call: binding's own share <= 0.3 us",
            max(t["binding_share"], 1e-9) * 1e6,
            0.3,
            higher=False,
            unit=" us",
        )
    for B, tgt in ((128, 2), (512, 1.5)):
        r = find(res["mlp"], batch=B, threads=2)
        add(
            f"MLP step batch {B}, 2 thr: >= {tgt}x faster than torch eager",
            r and r.get("ratio_torch"),
            tgt,
            unit="x",
        )
        if r and "torch" in r["memory"]:
            nr, th = r["memory"]["normreg"]["peak_extra_kib"], r["memory"]["torch"]["peak_extra_kib"]
            out.append(
                (
                    f"MLP step batch {B}: lower peak memory than torch (extra over setup)",
                    f"{nr / 1024:.1f} MiB vs {th / 1024:.1f} MiB",
                    "met" if nr < th else "NOT met",
                    "",
                )
            )
    for row in res.get("conv", []):
        if row["threads"] == 2:
            add(
                f"Conv2d f+b batch {row['batch']} {row['in']}->{row['out']} {row['hw']}x{row['hw']}, "
                "2 thr: within 1.3x of its sgemm floor (normreg/sgemm)",
                row["ratio_sgemm"],
                1.3,
                higher=False,
                unit="x",
            )
    for row in res.get("cnn", []):
        if row["threads"] == 2:
            add(
                f"CNN training step batch {row['batch']}, 2 thr: at least as fast as torch (torch/normreg)",
                row.get("ratio_torch"),
                1.0,
                unit="x",
            )
    acc = res.get("accuracy")
    if acc:
        add(
            "float32 LayerNorm statistics at mean 1e6: relative error of rstd about 1e-6",
            acc["rstd_rel_err"],
            1e-5,
            higher=False,
            fmt="{:.1e}",
        )
    return out


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
                for k in ("module", "functional", "binding", "kernel", "binding_share", "torch")
                if k in t
            ],
        )
    if res["linear"]:
        parts += table(
            "Linear forward+backward vs the same three sgemm calls",
            ["batch", "in->out", "thr", "normreg", "direct sgemm", "normreg/sgemm", "torch", "torch/nr"],
            [
                [
                    r["batch"],
                    f"{r['in']}->{r['out']}",
                    r["threads"],
                    fmt_time(r["normreg"]),
                    fmt_time(r["sgemm"]),
                    f"{r['normreg'] / r['sgemm']:.2f}x",
                    fmt_time(r.get("torch")),
                    fmt_ratio(r["torch"] / r["normreg"] if "torch" in r else None),
                ]
                for r in res["linear"]
            ],
        )
    if res["optim"]:
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
    if res["mlp"]:

        def mib(d, k):
            return "-" if d is None or d.get(k) is None else f"{d[k] / 1024:.1f} MiB"

        parts += table(
            "MLP training step (784-1024-512-10, BatchNorm1d, ReLU, Dropout 0.2, "
            "SGD momentum + weight decay)",
            [
                "batch",
                "thr",
                "normreg",
                "torch",
                "torch/nr",
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
                    fmt_time(r.get("torch")),
                    fmt_ratio(r.get("ratio_torch")),
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


def load(paths):
    """The first run's results, with every section a later run measured replacing it."""
    with open(paths[0]) as f:
        res = json.load(f)
    res["runs"] = [(res["command"], res["machine"])]
    for path in paths[1:]:
        with open(path) as f:
            more = json.load(f)
        for key in ("kernels", "linear", "optim", "mlp", "conv", "cnn"):
            if more.get(key):
                res[key] = more[key]
        if more.get("tiny"):
            res["tiny"] = more["tiny"]
        res["runs"].append((more["command"], more["machine"]))
    return res


def main(argv):
    res = load(argv)
    res["accuracy"] = accuracy()
    png = os.path.join(HERE, "roofline.png")
    plot(res, png)
    analysis_path = os.path.join(HERE, "analysis.md")
    analysis = Path(analysis_path).read_text() if os.path.exists(analysis_path) else ""
    g = goals(res)
    runs = []
    for i, (cmd, m) in enumerate(res["runs"]):
        runs += [
            "```bash",
            cmd,
            "```",
            "",
            f"{'Run' if i == 0 else 'Then'} at {m['date']}: {m['platform']}, "
            f"{m['cpu'] + ', ' if 'cpu' in m else ''}{m['cpus']} cores, NumPy {m['numpy']}, "
            f"PyTorch {m['torch']}, OMP_WAIT_POLICY="
            f"{m.get('OMP_WAIT_POLICY', '?')}, load average at start "
            f"{', '.join(f'{v:.1f}' for v in m.get('load_average', []))}.",
            "",
        ]
    lines = [
        "# normreg benchmarks",
        "",
        "Generated by `python benchmarks/report.py "
        + " ".join(os.path.basename(a) for a in argv)
        + "` from "
        + (
            "the run"
            if len(res["runs"]) == 1
            else "these runs (the sections a later run measured replace the earlier ones)"
        ),
        "",
        *runs,
        "## Goals",
        "",
        "| goal | measured | status | shortfall |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in g]
    lines += [
        "",
        analysis.strip(),
        "",
        "## Percent of roofline against size",
        "",
        "![percent of roofline](benchmarks/roofline.png)",
        "",
        "Dashed: 1 thread, solid: 2 threads. Shapes of the same size (e.g. 256 x 4096 and "
        "8192 x 128) share an x position, hence the vertical segments; values above 200% "
        "(cache-resident inputs) are drawn at the edge.",
        "",
        "## Kernels (float32)",
        "",
        "Times are medians per call; `torch` is PyTorch as users run it (tensors that "
        "require grad in the forward, autograd's backward for f+b), `torch out=` its ATen "
        "kernels writing into reused outputs. Bytes are the minimum the kernel must move; "
        "the roofline is a plain C copy of an array of the activation's size with the same "
        "thread count, timed in the same rounds.",
        "",
        kernel_table(res),
        "",
        "## Other sections",
        "",
        other_tables(res),
    ]
    # sections measured by other scripts (e.g. the distributed training benchmark), kept as is
    distributed_path = os.path.join(HERE, "distributed.md")
    if os.path.exists(distributed_path):
        lines += ["", Path(distributed_path).read_text().strip()]
    with open(os.path.join(ROOT, "BENCHMARKS.md"), "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")
    for a, b, c, d in g:
        print(f"{c:8s} {a}: {b} {d}")


if __name__ == "__main__":
    main(sys.argv[1:])
