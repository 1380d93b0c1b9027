"""Training throughput of `normreg-train` on Fashion-MNIST: one process against
`mpiexec -n R normreg-train --distributed` (the global batch split across R ranks).

    python benchmarks/bench_distributed_train.py [--epochs 1] [--repeat 1] [-- extra train args]

Runs, for each setting (ranks x threads per rank), the training command into a
temporary directory and reads its metrics.json: samples per second = training images /
seconds of the training passes of the epochs (evaluation excluded), and the final test
accuracy. The settings take turns (``--repeat`` rounds) so that a change in the machine's
load hits them alike; the table gives the median and the range. The 1-minute load
average before and after is printed too: on a shared machine it decides the figures.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np


def mpiexec():
    here = os.path.dirname(sys.executable)
    return shutil.which("mpiexec", path=here) or shutil.which("mpiexec")


def run(ranks, threads, epochs, extra, out):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    train = [
        sys.executable,
        "-m",
        "normreg.train",
        "--epochs",
        str(epochs),
        "--no-progress",
        "--threads",
        str(threads),
        "--out",
        out,
        *extra,
    ]
    cmd = train if ranks == 1 else [mpiexec(), "-n", str(ranks), *train, "--distributed"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    seconds = sum(e["train_seconds"] for e in metrics["epochs"])
    return metrics["train_size"] * len(metrics["epochs"]) / seconds, metrics["epochs"][-1]["test_acc"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--repeat", type=int, default=1, help="rounds over the settings")
    p.add_argument(
        "--settings",
        default="1x1,2x1,1x2",
        help="comma-separated RANKSxTHREADS settings (the first is the baseline)",
    )
    p.add_argument("extra", nargs="*", help="more normreg-train arguments (after --)")
    args = p.parse_args()
    settings = [tuple(int(v) for v in s.split("x")) for s in args.settings.split(",")]
    results = {s: [] for s in settings}
    print(f"load average before: {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            for ranks, threads in settings:
                sps, acc = run(
                    ranks, threads, args.epochs, args.extra, os.path.join(tmp, f"r{ranks}t{threads}i{i}")
                )
                results[(ranks, threads)].append((sps, acc))
                print(
                    f"round {i + 1}: ranks {ranks} x threads {threads}: {sps:,.0f} samples/s, "
                    f"test accuracy {acc:.4f} (load {os.getloadavg()[0]:.2f})",
                    file=sys.stderr,
                    flush=True,
                )
    print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    median = {s: float(np.median([r[0] for r in rs])) for s, rs in results.items()}
    base = median[settings[0]]
    print(
        "| ranks x threads/rank | samples/s (training, median) | range | vs "
        f"{settings[0][0]} x {settings[0][1]} | test accuracy (runs) |"
    )
    print("|---|---:|---:|---:|---|")
    for s in settings:
        sps = [r[0] for r in results[s]]
        accs = ", ".join(f"{r[1]:.4f}" for r in results[s])
        print(
            f"| {s[0]} x {s[1]} | {median[s]:,.0f} | {min(sps):,.0f}-{max(sps):,.0f} | "
            f"{median[s] / base:.2f} | {accs} |"
        )


if __name__ == "__main__":
    main()
