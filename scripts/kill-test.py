#!/usr/bin/env python3
"""Kill normreg-train with SIGKILL at random moments and check that nothing is lost.

    scripts/kill-test.py --kills 100            # the documented long run (RELIABILITY.md)
    scripts/kill-test.py --kills 5 --seed 3     # a short one

A small synthetic dataset in Fashion-MNIST's file format is written first, and each of two
configurations (an MLP with BatchNorm, Dropout, SGD and a warm-up then cosine schedule; a
residual MLP with LayerNorm, AdamW and a step schedule) is trained once uninterrupted: the
reference. Then runs are started, killed with SIGKILL and continued with
``normreg-train --resume`` again and again until they finish (1 to 6 kills per run). Every
third kill is aimed inside a checkpoint write (the children write checkpoints slowly, in chunks, and mark
the write with a file the driver watches); the others land at a uniformly random moment of
the run (start-up, data loading, an epoch, a write). After every kill the last checkpoint
must load and be a complete training checkpoint; every finished run must end bit for bit
in the reference's state (parameters, buffers, optimizer and scheduler state, every
generator, the history but its timings) with only its three files in its directory.

The children are ``normreg-train`` itself (``normreg.train.main``) with one change: the
checkpoint's bytes are written in chunks with pauses (``--write-seconds`` per checkpoint),
so that kills can land inside a write. Prints one JSON line of figures; exit status 1 if
anything was lost.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

CONFIGS = {
    "mlp-batchnorm-sgd": [
        "--width", "128,64", "--dropout", "0.2", "--warmup-epochs", "1", "--batch-size", "64",
        "--seed", "1",
    ],
    "resnet-layernorm-adamw": [
        "--model", "resnet", "--width", "64", "--depth", "2", "--norm", "layer", "--optimizer", "adamw",
        "--schedule", "step", "--batch-size", "50", "--seed", "2",
    ],
}  # fmt: skip
COMMON = ["--threads", "1", "--no-progress"]
WRITING = ".kill-test-writing"  # present in the run's directory while a checkpoint is written
FILES = ["checkpoint.npz", "curves.png", "metrics.json"]
TIMES = ("seconds", "train_seconds")


# ---- the child: normreg-train with slow checkpoint writes --------------------------------------


def child(write_seconds: float, argv: list[str]) -> int:
    import normreg.serialization as serialization
    from normreg.train import main

    real = serialization._write_archive
    marker = os.path.join(argv[argv.index("--out") + 1], WRITING)

    def slow_write(f, arrays, structure):
        buffer = io.BytesIO()
        real(buffer, arrays, structure)
        data = buffer.getvalue()
        open(marker, "w").close()
        chunks = 8
        step = -(-len(data) // chunks)
        for start in range(0, len(data), step):
            f.write(data[start : start + step])
            f.flush()
            time.sleep(write_seconds / chunks)
        os.remove(marker)

    serialization._write_archive = slow_write
    return main(argv)


# ---- the driver ---------------------------------------------------------------------------------


def write_dataset(directory: str, n_train: int = 3000, n_test: int = 500, seed: int = 0) -> None:
    """Four gzipped IDX files of 28x28 images of 10 classes (a fixed pattern per class plus
    noise), learnable in a few epochs."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    prototypes = rng.uniform(0, 255, (10, 28, 28))
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = np.clip(prototypes[labels] * 0.7 + rng.normal(0, 60, (n, 28, 28)) + 30, 0, 255).astype(
            np.uint8
        )
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            with open(os.path.join(directory, f"{split}-{kind}-ubyte.gz"), "wb") as f:
                f.write(gzip.compress(header + array.tobytes(), mtime=0))


def same(a, b, where: str = "checkpoint") -> str | None:
    """None if the two loaded checkpoints are equal bit for bit (but for timings), else
    where they first differ."""
    if type(a) is not type(b):
        return f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"{where}: keys differ"
        for k in a:
            if k not in TIMES and (d := same(a[k], b[k], f"{where}[{k!r}]")):
                return d
        return None
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            if d := same(x, y, f"{where}[{i}]"):
                return d
        return None
    if isinstance(a, (np.ndarray, np.generic)):
        ok = (
            a.dtype == b.dtype
            and np.shape(a) == np.shape(b)
            and np.asarray(a).tobytes() == np.asarray(b).tobytes()
        )
        return None if ok else f"{where}: arrays differ"
    if isinstance(a, float) and a != a and b != b:
        return None
    return None if a == b else f"{where}: {a!r} vs {b!r}"


class Driver:
    def __init__(
        self, workdir: str, seed: int, write_seconds: float, epochs: int, aim_every: int, log=print
    ) -> None:
        self.workdir, self.write_seconds, self.log = workdir, write_seconds, log
        self.epochs, self.aim_every = epochs, aim_every
        self.rng = random.Random(seed)
        self.data = os.path.join(workdir, "data")
        write_dataset(self.data)
        self.references: dict[str, object] = {}
        self.run_seconds: dict[str, float] = {}
        counts = [
            "kills", "kills_aimed_at_a_write", "kills_inside_a_write", "kills_before_a_checkpoint",
            "checkpoints_loaded", "checkpoints_lost", "runs_finished", "runs_identical", "runs_different",
            "resumes",
        ]  # fmt: skip
        self.figures: dict = {**dict.fromkeys(counts, 0), "differences": []}

    def command(self, out: str, config: str, resume: bool) -> list[str]:
        argv = [sys.executable, os.path.abspath(__file__), "--child", str(self.write_seconds), "--"]
        argv += ["--data-dir", self.data, "--out", out, *COMMON]
        return argv + (["--resume", out] if resume else [*CONFIGS[config], "--epochs", str(self.epochs)])

    def reference(self, config: str) -> None:
        out = os.path.join(self.workdir, f"reference-{config}")
        t = time.monotonic()
        proc = subprocess.run(self.command(out, config, False), capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"the reference run of {config} failed:\n{proc.stderr}")
        self.run_seconds[config] = time.monotonic() - t
        import normreg

        self.references[config] = normreg.load(os.path.join(out, "checkpoint.npz"))

    def check_checkpoint(self, out: str) -> int | None:
        """The epoch of the run's last checkpoint (None if there is none yet); a checkpoint
        that does not load or is incomplete counts as lost."""
        import normreg
        from normreg.train import checkpoint

        path = os.path.join(out, "checkpoint.npz")
        if not os.path.exists(path):
            return None
        try:
            state = normreg.load(path)
            checkpoint.check(state)
        except Exception as exc:  # anything at all: the checkpoint is lost
            self.figures["checkpoints_lost"] += 1
            self.figures["differences"].append(f"{path}: {type(exc).__name__}: {exc}")
            return None
        self.figures["checkpoints_loaded"] += 1
        return int(state["epoch"])

    def one_run(self, index: int, kills_left: int) -> None:
        """Start a run and kill and resume it until it finishes (or a checkpoint is lost)."""
        import normreg

        config = list(CONFIGS)[index % len(CONFIGS)]
        out = os.path.join(self.workdir, f"run{index:03d}-{config}")
        started = False
        while True:
            resume = started and os.path.exists(os.path.join(out, "checkpoint.npz"))
            self.figures["resumes"] += int(resume)
            proc = subprocess.Popen(
                self.command(out, config, resume), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            started = True
            if kills_left <= 0:
                _, err = proc.communicate()
                break
            aimed = self.figures["kills"] % self.aim_every == 0
            killed = self.kill_at_a_write(proc, out) if aimed else self.kill_at_random(proc, config)
            if not killed:
                _, err = proc.communicate()
                break
            kills_left -= 1
            self.figures["kills"] += 1
            self.figures["kills_aimed_at_a_write"] += int(aimed)
            inside = os.path.exists(os.path.join(out, WRITING))
            self.figures["kills_inside_a_write"] += int(inside)
            if inside:
                os.remove(os.path.join(out, WRITING))  # the driver's marker, not the run's
            epoch = self.check_checkpoint(out) if os.path.isdir(out) else None
            self.figures["kills_before_a_checkpoint"] += int(epoch is None)
            where = " inside a write" if inside else ""
            self.log(f"  killed {os.path.basename(out)}{where}: last checkpoint epoch {epoch}")
        if proc.returncode != 0:
            self.figures["runs_different"] += 1
            self.figures["differences"].append(f"{out}: exit status {proc.returncode}: {err.decode()[-500:]}")
            return
        self.figures["runs_finished"] += 1
        diff = same(self.references[config], normreg.load(os.path.join(out, "checkpoint.npz")))
        extra = sorted(set(os.listdir(out)) - set(FILES))
        if diff is None and not extra:
            self.figures["runs_identical"] += 1
        else:
            self.figures["runs_different"] += 1
            self.figures["differences"].append(
                f"{out}: {diff or ''} {'files ' + str(extra) if extra else ''}"
            )
        self.log(f"  {os.path.basename(out)} finished: {'identical' if diff is None else diff}")

    def kill_at_random(self, proc: subprocess.Popen, config: str) -> bool:
        """SIGKILL at a uniformly random moment of a run's expected length; False if it
        finished first."""
        try:
            proc.wait(timeout=self.rng.uniform(0, self.run_seconds[config]))
            return False
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True

    def kill_at_a_write(self, proc: subprocess.Popen, out: str) -> bool:
        """SIGKILL at a random moment inside the next checkpoint write (skipping a random
        number of writes); False if the run finished first."""
        marker = os.path.join(out, WRITING)
        for _ in range(self.rng.randrange(3)):  # let 0 to 2 writes go
            while not os.path.exists(marker):
                if proc.poll() is not None:
                    return False
                time.sleep(0.002)
            while os.path.exists(marker) and proc.poll() is None:
                time.sleep(0.002)
        while not os.path.exists(marker):
            if proc.poll() is not None:
                return False
            time.sleep(0.002)
        time.sleep(self.rng.uniform(0, self.write_seconds))
        if proc.poll() is not None:
            return False
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


def run(
    kills: int,
    seed: int = 0,
    workdir: str | None = None,
    write_seconds: float = 0.2,
    epochs: int = 6,
    aim_every: int = 3,
    log=print,
) -> dict:
    """Kill runs of ``epochs`` epochs ``kills`` times in all, every ``aim_every``-th kill
    aimed inside a checkpoint write; returns the figures (see the module's docstring)."""
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="normreg-kill-test-") as tmp:
        driver = Driver(workdir or tmp, seed, write_seconds, epochs, aim_every, log)
        for config in CONFIGS:
            driver.reference(config)
        log(f"reference runs: {', '.join(f'{c} {s:.1f} s' for c, s in driver.run_seconds.items())}")
        index = 0
        while driver.figures["kills"] < kills:
            driver.one_run(index, min(kills - driver.figures["kills"], driver.rng.randint(1, 6)))
            index += 1
            if driver.figures["checkpoints_lost"] or driver.figures["runs_different"]:
                break
    figures = driver.figures
    figures["seconds"] = round(time.monotonic() - t0, 1)
    figures["run_seconds"] = {c: round(s, 2) for c, s in driver.run_seconds.items()}
    figures["ok"] = (
        figures["checkpoints_lost"] == 0 and figures["runs_different"] == 0 and figures["kills"] >= kills
    )
    return figures


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(float(sys.argv[2]), sys.argv[4:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=100, help="SIGKILLs in all (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    p.add_argument("--write-seconds", type=float, default=0.2, help="seconds a checkpoint write takes")
    p.add_argument("--epochs", type=int, default=6, help="epochs of each run")
    p.add_argument("--aim-every", type=int, default=3, help="aim every n-th kill inside a checkpoint write")
    p.add_argument("--workdir", default=None, help="keep the runs here (default: a temporary directory)")
    args = p.parse_args()
    figures = run(args.kills, args.seed, args.workdir, args.write_seconds, args.epochs, args.aim_every)
    print(json.dumps(figures))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
