"""The benchmark suite runs (quick mode, one thread, without PyTorch) so it does not rot."""

import json
import os
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


@pytest.fixture
def run_module(monkeypatch):
    monkeypatch.syspath_prepend(BENCH)
    for name in ("run", "common", "kernels", "training", "conv", "tiers", "machine", "goals", "report"):
        sys.modules.pop(name, None)
    import run

    yield run
    for name in ("run", "common", "kernels", "training", "conv", "tiers", "machine", "goals", "report"):
        sys.modules.pop(name, None)


def test_quick_suite_produces_every_section(run_module, tmp_path, capsys):
    import normreg

    old = normreg.get_num_threads()
    try:
        out = run_module.main(["--quick", "--no-torch", "--threads", "1", "--json", str(tmp_path / "r.json")])
    finally:
        normreg.set_num_threads(old)
    text = capsys.readouterr().out
    for section in (
        "## Kernels",
        "## Tiny call",
        "## Linear",
        "## Optimizer",
        "## MLP",
        "## Conv2d",
        "## CNN training step",
    ):
        assert section in text
    kernels = {(r["kernel"], r["dir"]) for r in out["kernels"]}
    assert kernels == {
        (k, d) for k in ("layernorm", "batchnorm", "dropout", "relu") for d in ("fwd", "bwd", "f+b")
    }
    assert all(r["normreg"] > 0 and r["copy_gbs"] > 0 and r["bytes"] > 0 for r in out["kernels"])
    assert {r["optimizer"] for r in out["optim"]} == {"SGD", "AdamW"}
    assert [(r["in"], r["out"]) for r in out["conv"]] == [(1, 32), (32, 64), (64, 128)]
    assert all(r["normreg"] > 0 and r["sgemm"] > 0 for r in out["conv"])
    assert out["cnn"][0]["normreg"] > 0
    mem = out["mlp"][0]["memory"]["normreg"]
    assert mem["hwm_kib"] > 0
    assert (tmp_path / "r.json").stat().st_size > 0
    tiny = out["tiny"]
    assert tiny["np_add"] > 0 and tiny["module"] > 0
    assert all(r["floor"] > 0 and r["optim"] > 0 for r in out["mlp"])
    # the ratios to the products come from normreg timed in their phase
    assert all(r["normreg_apart"] > 0 for r in out["mlp"] + out["linear"])
    assert all(r["ratio_floor"] == r["normreg_apart"] / r["floor"] for r in out["mlp"])
    skinny = [r for r in out["linear"] if r["out"] < 64]
    assert skinny and all(r["sgemm_1thread"] > 0 for r in skinny)
    assert out["machine"]["tier"] in out["machine"]["tiers_supported"]

    # report.py's goal table per tier, from a results file in the format of run.py --tiers
    sys.modules.pop("goals", None)
    import goals
    import report

    tiers_json = tmp_path / "tiers.json"
    tiers_json.write_text(
        json.dumps({"command": out["command"], "machine": out["machine"], "tiers": {"x": out}})
    )
    runs, tiers = report.load([str(tiers_json)])
    assert list(tiers) == ["x"] and runs[0][0] == out["command"]
    rows = goals.goals(tiers["x"], threads=1)
    by_goal = {r[0]: r for r in rows}
    tiny_goal = by_goal["Tiny LayerNorm(64) Module call on 32x64: <= 2x np.add(x, 1.0)"]
    assert tiny_goal[2] in ("met", "NOT met") and "np.add" in tiny_goal[4]
    assert any(r[0].startswith("Linear f+b batch 32 512->10: within 1.10x of the 1-thread") for r in rows)
    assert all(len(r) == 5 for r in rows)

    # report.py --repeats: each goal is its median run's; three runs whose tiny-call ratio is
    # r, 4 r and r / 4 (np.add's time scaled) give the first run's value and verdict
    import copy

    runs3 = []
    for scale in (1.0, 0.25, 4.0):
        res = copy.deepcopy(tiers["x"])
        res["tiny"]["np_add"] *= scale
        runs3.append(res)
    med = {r[0]: r for r in goals.median_goals(runs3, threads=1)}
    name = "Tiny LayerNorm(64) Module call on 32x64: <= 2x np.add(x, 1.0)"
    ratio = tiny["module"] / tiny["np_add"]
    assert med[name][1].startswith(f"{ratio:.2f}x (")
    assert med[name][2] == tiny_goal[2] and med[name][4].endswith("(run 1)")
    assert med[name][1].count(",") == 2
    assert [r[0] for r in goals.median_goals(runs3, threads=1)] == [r[0] for r in rows]


def test_tiers_option_selects_the_supported_tiers_and_strips_its_own_arguments(run_module):
    import tiers

    assert tiers.selected("all", ["avx512", "avx2", "baseline"]) == ["avx512", "avx2", "baseline"]
    assert tiers.selected("baseline,avx2,neon", ["avx2", "baseline"]) == ["avx2", "baseline"]
    argv = ["--quick", "--tiers", "--json", "r.json", "--threads", "2"]
    assert tiers._without(tiers._without(argv, "--tiers", "optional"), "--json", True) == [
        "--quick",
        "--threads",
        "2",
    ]
    assert tiers._without(["--tiers", "avx2", "--quick"], "--tiers", "optional") == ["--quick"]
    assert tiers._without(["--tiers=avx2", "--quick"], "--tiers", "optional") == ["--quick"]


def test_mlp_parts_names_every_part(tmp_path):
    """benchmarks/mlp_parts.py (the step taken apart) runs and times each module, the loss and
    the optimizer, and with --again each forward but Linear's a second time."""
    import subprocess

    res = subprocess.run(
        [
            sys.executable,
            os.path.join(BENCH, "mlp_parts.py"),
            "--batch",
            "8",
            "--threads",
            "1",
            "--steps",
            "2",
            "--again",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "Linear forward again" not in res.stdout, res.stdout
    for part in (
        "GEMM floor",
        "0 Linear forward",
        "1 BatchNorm1d backward",
        "1 BatchNorm1d forward again",
        "3 Dropout forward",
        "optimizer step",
    ):
        assert part in res.stdout, res.stdout


def test_wake_times_a_kernel_and_the_step_after_each_pause():
    """benchmarks/wake.py times a kernel after each idle gap, then the MLP step after each pause."""
    import subprocess

    script = os.path.join(BENCH, "wake.py")
    argv = [sys.executable, script, "--threads", "1", "--calls", "2", "--batch", "8", "--steps", "2"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert sum(line.startswith("after") and "first call" in line for line in lines) == 6, res.stdout
    steps = [line for line in lines if " step " in line and line.rstrip().endswith("ms")]
    assert len(steps) == 5 and steps[0].startswith("back to back"), res.stdout
    assert all(float(line.split()[-2]) > 0 for line in steps), res.stdout


def test_conv_bind_times_each_shape_with_and_without_binding():
    """benchmarks/conv_bind.py times Conv2d f+b on one sample without and with OMP_PROC_BIND."""
    import subprocess

    argv = [sys.executable, os.path.join(BENCH, "conv_bind.py"), "--reps", "1"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rows = [line.split() for line in res.stdout.splitlines() if line[:1].isdigit() and "->" in line]
    assert len(rows) == 3, res.stdout
    for row in rows:
        default, bound = float(row[-3]), float(row[-2])
        assert default > 0 and bound > 0 and row[-1].endswith("x"), res.stdout


def test_beside_numpy_times_the_step_after_each_call():
    """benchmarks/beside_numpy.py runs the step after each kind of call, in both import orders."""
    import subprocess

    script = os.path.join(BENCH, "beside_numpy.py")
    argv = [sys.executable, script, "--batch", "8", "--threads", "1", "--steps", "2"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rows = [line.split() for line in res.stdout.splitlines() if line.startswith(("numpy ", "normreg "))]
    assert len(rows) == 8
    assert {r[0] for r in rows} == {"numpy", "normreg"}
    assert sum("NumPy's" in " ".join(r) for r in rows) == 2


def test_layernorm_cache_times_both_kernels_and_the_copy():
    """benchmarks/layernorm_cache.py prints, for each shape, the forward's, the backward's and
    the copy's nanoseconds per element and the forward's ratio to the copy."""
    import subprocess

    script = os.path.join(BENCH, "layernorm_cache.py")
    argv = [sys.executable, script, "--reps", "5", "--shapes", "16x128,64x64,3x1000"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rows = [line.split() for line in res.stdout.splitlines() if "x" in line and line.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["16x128", "64x64", "3x1000"], res.stdout
    for row in rows:
        fwd, bwd, copy = (float(v) for v in row[2:5])
        assert fwd > 0 and bwd > 0 and copy > 0, res.stdout
        assert row[5].endswith("x") and abs(float(row[5][:-1]) - fwd / copy) < 0.1, res.stdout


def test_layers_vs_torch_times_the_layers_it_is_asked_for():
    """benchmarks/layers_vs_torch.py prints one row per shape of the layers named, with the
    f+b times, PyTorch's and their ratio (and the evaluation forward's for BatchNorm)."""
    import subprocess

    pytest.importorskip("torch")
    script = os.path.join(BENCH, "layers_vs_torch.py")
    argv = [sys.executable, script, "--threads", "1", "--only", "ReLU,BatchNorm2d"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    rows = [line.split() for line in res.stdout.splitlines() if line.startswith(("ReLU", "BatchNorm2d"))]
    assert sum(r[0] == "BatchNorm2d" for r in rows) == 4 and sum(r[0] == "ReLU" for r in rows) == 7
    for r in rows:
        ratios = [float(v) for v in r[-3:]] if r[0] == "ReLU" else [float(r[-4]), float(r[-1])]
        assert all(v > 0 for v in ratios), res.stdout
