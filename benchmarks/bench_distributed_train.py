"""Training throughput of `normreg-train` on Fashion-MNIST: one process against
`mpiexec -n R normreg-train --distributed` (the global batch split across R ranks).

    python benchmarks/bench_distributed_train.py [--epochs 1] [--repeat 1] [-- extra train args]

Runs, for each setting, the training command into a temporary directory and reads its
metrics.json: samples per second = training images / seconds of the training passes of
the epochs (evaluation excluded), and the final test accuracy. Prints a Markdown table.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile


def mpiexec():
    here = os.path.dirname(sys.executable)
    return shutil.which("mpiexec", path=here) or shutil.which("mpiexec")


def run(ranks, threads, epochs, extra, out):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    train = [sys.executable, "-m", "normreg.train", "--epochs", str(epochs), "--no-progress",
             "--threads", str(threads), "--out", out, *extra]
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
    p.add_argument("--repeat", type=int, default=1, help="runs per setting (the best is kept)")
    p.add_argument("extra", nargs="*", help="more normreg-train arguments (after --)")
    args = p.parse_args()
    settings = [(1, 1), (1, 2), (2, 1)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for ranks, threads in settings:
            results = [run(ranks, threads, args.epochs, args.extra, os.path.join(tmp, f"r{ranks}t{threads}i{i}"))
                       for i in range(args.repeat)]
            best = max(results)
            rows.append((ranks, threads, best[0], [r[0] for r in results], best[1]))
            print(f"ranks {ranks} x threads {threads}: {best[0]:,.0f} samples/s "
                  f"(runs: {', '.join(f'{r[0]:,.0f}' for r in results)}), test accuracy {best[1]:.4f}",
                  file=sys.stderr, flush=True)
    base = rows[0][2]
    print("| ranks x threads | samples/s (training) | vs 1 x 1 | test accuracy |")
    print("|---|---:|---:|---:|")
    for ranks, threads, sps, _, acc in rows:
        print(f"| {ranks} x {threads} | {sps:,.0f} | {sps / base:.2f} | {acc:.4f} |")


if __name__ == "__main__":
    main()
