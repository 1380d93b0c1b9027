"""The training command (normreg-train / python -m normreg.train) end to end."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from _synthetic import write_dataset

import normreg
from normreg import data as nr_data
from normreg.data import load_fashion_mnist
from normreg.train import TrainConfig, build_model, evaluate, main, train

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small learnable dataset in Fashion-MNIST's file format."""
    directory = tmp_path_factory.mktemp("tiny-fmnist")
    write_dataset(directory, n_train=600, n_test=200, seed=0)
    return directory


def test_main_end_to_end(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "--data-dir",
        str(tiny),
        "--out",
        str(out),
        "--epochs",
        "3",
        "--width",
        "32,16",
        "--batch-size",
        "64",
        "--seed",
        "1",
        "--threads",
        "1",
        "--no-progress",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    epoch_lines = [line for line in printed.splitlines() if line.startswith("epoch")]
    assert len(epoch_lines) == 3
    for line in epoch_lines:
        for field in ("train loss", "acc", "test loss", " s"):
            assert field in line
    assert sorted(os.listdir(out)) == ["checkpoint.npz", "curves.png", "metrics.json"]
    assert (out / "curves.png").read_bytes()[:8] == PNG_MAGIC

    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    assert metrics["config"]["width"] == [32, 16] and metrics["config"]["lr"] == 0.1
    assert metrics["train_size"] == 600 and metrics["test_size"] == 200
    last = metrics["epochs"][-1]
    assert last["test_acc"] > 0.5  # 10 classes: chance is 0.1
    assert metrics["epochs"][0]["train_loss"] > last["train_loss"]
    assert f"test accuracy {last['test_acc']:.4f}" in printed

    # The checkpoint restores a model that scores exactly what metrics.json says.
    state = normreg.load(out / "checkpoint.npz")
    assert int(state["epoch"]) == 3 and "optimizer" in state
    config = TrainConfig(**{**metrics["config"], "width": metrics["config"]["width"]})
    model = build_model(config, 784, 10)
    model.load_state_dict(state["model"])
    _, _, x_test, y_test = load_fashion_mnist(tiny)
    loss, acc = evaluate(model, x_test, y_test)
    assert acc == pytest.approx(last["test_acc"], abs=1e-12)
    assert loss == pytest.approx(last["test_loss"], rel=1e-6)


def test_same_seed_same_run(tiny):
    data = load_fashion_mnist(tiny)
    cfg = TrainConfig(width=[16], epochs=2, batch_size=100, seed=3)
    a = train(cfg, data, log=None, progress=False)
    b = train(cfg, data, log=None, progress=False)
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    c = train(TrainConfig(width=[16], epochs=2, batch_size=100, seed=4), data, log=None, progress=False)
    assert [h["train_loss"] for h in a["history"]] != [h["train_loss"] for h in c["history"]]


@pytest.mark.parametrize(
    "argv",
    [
        ["--model", "resnet", "--width", "32", "--depth", "2", "--optimizer", "adam"],
        ["--norm", "layer", "--dropout", "0", "--optimizer", "adamw", "--schedule", "step"],
        [
            "--norm",
            "none",
            "--optimizer",
            "sgd",
            "--momentum",
            "0",
            "--warmup-epochs",
            "0.5",
            "--train-subset",
            "300",
            "--dtype",
            "float64",
        ],
    ],
)
def test_main_variants(tiny, tmp_path, argv, capsys):
    out = tmp_path / "v"
    base = [
        "--data-dir",
        str(tiny),
        "--out",
        str(out),
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--width",
        "24",
        "--no-progress",
    ]
    assert main(base + argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 2 and not metrics["diverged"]
    assert all(np.isfinite(e["train_loss"]) for e in metrics["epochs"])


def test_main_reports_divergence(tiny, tmp_path, capsys):
    out = tmp_path / "div"
    code = main(
        [
            "--data-dir",
            str(tiny),
            "--out",
            str(out),
            "--epochs",
            "3",
            "--norm",
            "none",
            "--lr",
            "1e8",
            "--momentum",
            "0",
            "--schedule",
            "constant",
            "--width",
            "32",
            "--no-progress",
        ]
    )
    assert code == 1
    assert "diverged" in capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text())["diverged"] is True


def test_main_without_data(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("NORMREG_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(nr_data, "_DEBIAN_DIR", str(tmp_path / "debian"))
    monkeypatch.setenv("NORMREG_FASHION_MNIST_URL", "http://127.0.0.1:9/")
    assert main(["--data-dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "NORMREG_DATA" in err and "apt-get install dataset-fashion-mnist" in err


def test_bad_flags():
    with pytest.raises(SystemExit):
        main(["--width", "0"])
    with pytest.raises(SystemExit):
        main(["--optimizer", "lbfgs"])


def test_module_entry_point(tiny, tmp_path):
    """``python -m normreg.train`` as a separate process."""
    out = tmp_path / "m"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "normreg.train",
            "--data-dir",
            str(tiny),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--width",
            "16",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "epoch   1/1" in proc.stdout and "test accuracy" in proc.stdout
    assert (out / "metrics.json").exists()


@pytest.mark.skipif(
    nr_data.find_fashion_mnist() is None,
    reason="Fashion-MNIST is not on this machine (apt-get install dataset-fashion-mnist)",
)
def test_one_real_epoch_on_fashion_mnist():
    """One short epoch on the real data already reaches > 0.80 test accuracy."""
    data = load_fashion_mnist(download=False)
    assert data[0].shape == (60000, 784) and data[2].shape == (10000, 784)
    cfg = TrainConfig(width=[256], norm="batch", dropout=0.0, epochs=1, batch_size=128, seed=0)
    result = train(cfg, data, log=None, progress=False)
    assert result["history"][0]["test_acc"] > 0.80
