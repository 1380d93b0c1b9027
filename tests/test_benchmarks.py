"""The benchmark suite runs (quick mode, one thread, without PyTorch) so it does not rot."""

import os
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


@pytest.fixture
def run_module(monkeypatch):
    monkeypatch.syspath_prepend(BENCH)
    for name in ("run", "common", "kernels", "training", "conv"):
        sys.modules.pop(name, None)
    import run

    yield run
    for name in ("run", "common", "kernels", "training", "conv"):
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
