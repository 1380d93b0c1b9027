"""The training command (normreg-train / python -m normreg.train) end to end."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from _synthetic import write_dataset
from helpers import train_argv

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
    assert main(train_argv(tiny, out, epochs=3, width="32,16", batch_size=64, seed=1, threads=1)) == 0
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
    assert main(train_argv(tiny, out, *argv, epochs=2, batch_size=64, width=24)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 2 and not metrics["diverged"]
    assert all(np.isfinite(e["train_loss"]) for e in metrics["epochs"])


def test_main_reports_divergence(tiny, tmp_path, capsys):
    out = tmp_path / "div"
    code = main(
        train_argv(tiny, out, epochs=3, norm="none", lr="1e8", momentum=0, schedule="constant", width=32)
    )
    assert code == 1
    assert "diverged" in capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text())["diverged"] is True


def test_main_without_data(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("NORMREG_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(nr_data, "_DEBIAN_DIR", str(tmp_path / "debian"))
    monkeypatch.setenv("NORMREG_FASHION_MNIST_URL", "http://127.0.0.1:9/")
    assert main(["--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("normreg-train: error: Fashion-MNIST not found")
    assert "NORMREG_DATA" in err and "apt-get install dataset-fashion-mnist" in err
    assert not (tmp_path / "o").exists()  # the output directory made for the run is removed


def test_bad_flags():
    with pytest.raises(SystemExit):
        main(["--width", "0"])
    with pytest.raises(SystemExit):
        main(["--optimizer", "lbfgs"])


def test_module_entry_point(tiny, tmp_path):
    """``python -m normreg.train`` as a separate process."""
    out = tmp_path / "m"
    proc = subprocess.run(
        [sys.executable, "-m", "normreg.train", *train_argv(tiny, out, epochs=1, width=16)],
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


# ---- resuming --------------------------------------------------------------------------------------

TIMES = ("seconds", "train_seconds")


def assert_same_state(a, b, where="checkpoint"):
    """Two checkpoint trees are equal bit for bit (arrays: dtype, shape and bytes; floats:
    exactly, NaN equal to NaN), but for the seconds each epoch took."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} vs {list(b)}"
        for k in a:
            if k not in TIMES:
                assert_same_state(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b), where
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), f"{where} differs"
    elif isinstance(a, float):
        assert a == b or (a != a and b != b), f"{where}: {a!r} vs {b!r}"
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


class _StopAfter:
    """A log callback that interrupts training after the line of epoch ``epoch``."""

    def __init__(self, epoch):
        self.epoch = epoch

    def __call__(self, line):
        if line.startswith(f"epoch {self.epoch:3d}/"):
            raise KeyboardInterrupt


def _dropout_model(config, generator_seed):
    """The MLP of ``config`` with one more Dropout drawing from its own generator."""
    own = normreg.nn.Dropout(0.3, generator=normreg.Generator(generator_seed))
    return normreg.nn.Sequential(own, build_model(config, 784, 10))


@pytest.mark.parametrize(
    "config, own_generator",
    [
        (TrainConfig(width=[32, 16], dropout=0.2, warmup_epochs=1, epochs=4, batch_size=64, seed=5), True),
        (
            TrainConfig(
                model="resnet",
                width=24,
                depth=2,
                norm="layer",
                optimizer="adamw",
                schedule="step",
                epochs=4,
                batch_size=50,
                seed=2,
                train_subset=450,
            ),
            False,
        ),
    ],
    ids=["mlp-batchnorm-sgd-warmup", "resnet-layernorm-adamw-step"],
)
def test_resume_reaches_the_uninterrupted_state(tiny, tmp_path, config, own_generator, set_threads):
    """Stopped after epoch 2 and resumed from its checkpoint (with every random state
    scrambled in between), a run ends bit for bit where the uninterrupted one ends:
    parameters, buffers, optimizer and scheduler state, every generator, history."""
    set_threads(1)
    data = load_fashion_mnist(tiny)

    def run(out, stop=None, resume=None):
        model = _dropout_model(config, 11) if own_generator else None
        return train(config, data, out_dir=str(out), progress=False, log=stop, model=model, resume=resume)

    run(tmp_path / "full")
    after_full = normreg.default_generator.get_state()
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", stop=_StopAfter(2))
    state = normreg.load(tmp_path / "cut" / "checkpoint.npz")
    assert int(state["epoch"]) == 2
    if own_generator:
        assert list(state["rng"]["modules"]) == ["0.generator"]
    normreg.manual_seed(12345)  # whatever happened in between
    np.random.seed(1)
    run(tmp_path / "cut", resume=state)
    np.testing.assert_array_equal(normreg.default_generator.get_state(), after_full)
    full = normreg.load(tmp_path / "full" / "checkpoint.npz")
    resumed = normreg.load(tmp_path / "cut" / "checkpoint.npz")
    assert int(full["epoch"]) == 4
    assert_same_state(full, resumed)
    metrics = [json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("full", "cut")]
    assert_same_state(metrics[0]["epochs"], metrics[1]["epochs"], "metrics")
    assert metrics[0]["steps"] == metrics[1]["steps"]


def test_resume_refuses_another_run(tiny, tmp_path):
    data = load_fashion_mnist(tiny)
    config = TrainConfig(width=[16], epochs=2, batch_size=100, seed=3)
    train(config, data, out_dir=str(tmp_path), progress=False, log=None)
    state = normreg.load(tmp_path / "checkpoint.npz")
    other = TrainConfig(width=[16], epochs=2, batch_size=100, seed=3, lr=0.05)
    with pytest.raises(ValueError, match=r"another configuration: lr=0.1 \(here 0.05\)"):
        train(other, data, progress=False, log=None, resume=state)
    del state["rng"]
    with pytest.raises(ValueError, match="not a normreg-train checkpoint: no 'rng'"):
        train(config, data, progress=False, log=None, resume=state)


def test_batch_norm_needs_two_examples_per_batch(tiny):
    data = load_fashion_mnist(tiny)
    with pytest.raises(ValueError, match=r"norm='batch' needs at least 2 examples .* 1 training example"):
        train(TrainConfig(width=[8], epochs=1, train_subset=1), data, progress=False, log=None)
    with pytest.raises(ValueError, match="batch_size=1 gives batches of 1"):
        train(TrainConfig(width=[8], epochs=1, batch_size=1), data, progress=False, log=None)
    result = train(
        TrainConfig(width=[8], epochs=1, train_subset=1, norm="layer"), data, progress=False, log=None
    )
    assert len(result["history"]) == 1
