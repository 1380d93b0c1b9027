"""normreg.experiments in --quick mode on a small generated dataset."""

import json
import os

import numpy as np
import pytest
from _synthetic import write_dataset

import normreg
from normreg import experiments
from normreg.data import load_fashion_mnist

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tests check what the experiments write, not speed: one thread keeps them quick
    on a busy shared machine, where two threads fighting for one free core are much slower."""
    before = normreg.get_num_threads()
    normreg.set_num_threads(1)
    yield
    normreg.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny-fmnist")
    write_dataset(directory, n_train=600, n_test=200, seed=0)
    return directory


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return load_fashion_mnist(tiny_dir)


def _check_outputs(result, out, name, n_rows):
    assert len(result["rows"]) == n_rows
    md = (out / f"{name}.md").read_text()
    assert md.startswith("### ") and md == result["markdown"]
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table) >= 3  # header, rule, rows
    saved = json.loads((out / f"{name}.json").read_text())
    assert saved["experiment"] == name and saved["quick"] is True
    assert len(saved["rows"]) == n_rows
    assert result["plots"]
    for png in result["plots"]:
        assert os.path.dirname(png) == str(out)
        with open(png, "rb") as f:
            assert f.read(8) == PNG_MAGIC
    return saved


def test_norm_lr_quick(tiny, tmp_path):
    result = experiments.run("norm-lr", tmp_path, tiny, quick=True, progress=False, log=None)
    saved = _check_outputs(result, tmp_path, "norm-lr", 9)
    lrs = sorted({r["lr"] for r in saved["rows"]})
    assert lrs[-1] / lrs[0] == pytest.approx(100.0)  # two orders of magnitude
    assert {r["norm"] for r in saved["rows"]} == {"none", "batch", "layer"}
    for r in saved["rows"]:
        assert r["diverged"] or 0.0 <= r["test_acc"] <= 1.0


def test_regularization_quick(tiny, tmp_path):
    result = experiments.run("regularization", tmp_path, tiny, quick=True, progress=False, log=None)
    saved = _check_outputs(result, tmp_path, "regularization", 4)
    assert [r["regularization"] for r in saved["rows"]] == [
        "none",
        "dropout",
        "weight decay",
        "dropout + weight decay",
    ]
    for r in saved["rows"]:
        assert r["gap"] == pytest.approx(r["train_acc"] - r["test_acc"])
    assert (saved["rows"][0]["dropout"], saved["rows"][0]["weight_decay"]) == (0.0, 0.0)
    assert saved["rows"][3]["dropout"] > 0 and saved["rows"][3]["weight_decay"] > 0
    # docs/experiments.md says how many epochs --quick runs
    assert {run["config"]["epochs"] for run in saved["runs"].values()} == {8}
    with open(os.path.join(os.path.dirname(__file__), "..", "docs", "experiments.md")) as f:
        doc = f.read()
    assert "or 8 (regularization" in " ".join(doc.split())


def test_init_quick(tiny, tmp_path):
    result = experiments.run("init", tmp_path, tiny, quick=True, progress=False, log=None)
    saved = _check_outputs(result, tmp_path, "init", 9)
    stds = {(r["norm"], r["init_scale"]): np.array(r["activation_std_at_init"]) for r in saved["rows"]}
    # Normalization makes the forward pass independent of the weights' scale (biases are 0):
    # the same seed gives the same activations up to eps.
    for norm in ("batch", "layer"):
        np.testing.assert_allclose(stds[(norm, 0.25)], stds[(norm, 1.0)], rtol=2e-3)
        np.testing.assert_allclose(stds[(norm, 4.0)], stds[(norm, 1.0)], rtol=2e-3)
    # Without it, each ReLU layer multiplies the scale of the activations by the init scale.
    small, good, large = stds[("none", 0.25)], stds[("none", 1.0)], stds[("none", 4.0)]
    np.testing.assert_allclose(small, good * 0.25 ** np.arange(1, len(good) + 1), rtol=1e-4)
    np.testing.assert_allclose(large, good * 4.0 ** np.arange(1, len(good) + 1), rtol=1e-4)


def test_summary_quick_from_the_command_line(tiny_dir, tmp_path, capsys):
    code = experiments.main(
        ["summary", "--quick", "--data-dir", str(tiny_dir), "--out", str(tmp_path), "--no-progress"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "### 4. Different configurations, similar accuracy" in printed
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert len(saved["rows"]) == 5
    assert len({(r["model"], r["norm"], r["optimizer"]) for r in saved["rows"]}) == 5
    assert (tmp_path / "summary.png").read_bytes()[:8] == PNG_MAGIC


def test_batch_size_quick(tiny, tmp_path):
    result = experiments.run("batch-size", tmp_path, tiny, quick=True, progress=False, log=None)
    saved = _check_outputs(result, tmp_path, "batch-size", 2 * 4 * 4)
    rows = {(r["model"], r["norm"], r["batch_size"]): r for r in saved["rows"]}
    assert {m for m, _, _ in rows} == {"mlp", "cnn"}
    assert {n for _, n, _ in rows} == {"batch", "group", "layer", "none"}
    sizes = sorted({b for _, _, b in rows})
    assert sizes[0] == 2 and sizes[-1] == 128
    for (_, norm, b), r in rows.items():
        assert r["lr"] == pytest.approx(0.1 * b / 128)  # the linear scaling rule
        assert 0.0 <= r["test_acc"] <= 1.0
        # BatchNorm rows also evaluate with the exact training-set statistics
        assert ("test_acc_full_data_stats" in r) == (norm == "batch")
    # BatchNorm at batch 2: its test loss is the worst of the three normalizations (its
    # running estimates and its training both see the noise of two-example statistics);
    # LayerNorm and GroupNorm normalize each example alone.
    small = {n: rows[("mlp", n, 2)]["test_loss"] for n in ("batch", "group", "layer")}
    assert small["batch"] > max(small["group"], small["layer"])
    assert rows[("mlp", "batch", 2)]["test_acc"] <= rows[("mlp", "batch", 2)]["test_acc_full_data_stats"]


def test_running_stats_quick(tiny, tmp_path):
    result = experiments.run("running-stats", tmp_path, tiny, quick=True, progress=False, log=None)
    saved = _check_outputs(result, tmp_path, "running-stats", 2 * 9)
    y_test = tiny[3]
    for model in ("mlp", "cnn"):
        # the estimates kept for momentum 0.1 are the layers' own
        own_vs_tracked = saved["runs"][model]["own_vs_tracked"]
        assert max(max(errors) for errors in own_vs_tracked) < 1e-5
        rows = {r["evaluation"]: r for r in saved["rows"] if r["model"] == model}
        own = rows["running estimates, momentum 0.1 (evaluation mode)"]
        tracked = rows["running estimates, momentum 0.1"]
        assert own["test_loss"] == pytest.approx(tracked["test_loss"], rel=1e-5)
        momenta = {r["value"]: r for r in rows.values() if r["kind"] == "momentum"}
        assert sorted(momenta) == [0.001, 0.01, 0.1, 0.5]
        # a short run: the smaller the momentum, the more the estimates still hold their
        # initial 0 and 1 -- the farther from the training-set statistics, the worse the loss
        for key in ("mean_err", "var_err"):
            assert momenta[0.001][key] > momenta[0.01][key] > momenta[0.1][key]
        assert momenta[0.001]["test_loss"] > rows["full training-set statistics"]["test_loss"]
        whole = rows["batch statistics, the whole test set as one batch"]
        assert whole["value"] == len(y_test)
    # BatchNorm1d with evaluation batches of one: every image gets the same class
    one = next(r for r in saved["rows"] if r["model"] == "mlp" and r["kind"] == "batch" and r["value"] == 1)
    assert one["test_acc"] in set(np.bincount(y_test) / len(y_test))


def test_dropout_scaling_quick(tiny, tmp_path):
    result = experiments.run("dropout-scaling", tmp_path, tiny, quick=True, progress=False, log=None)
    saved = _check_outputs(result, tmp_path, "dropout-scaling", 4)
    rows = {r["variant"]: r for r in saved["rows"]}
    assert list(rows) == ["off", "train", "test", "none"]
    p = rows["none"]["p"]
    assert rows["off"]["p"] == 0.0 and 0.0 < p < 1.0
    assert rows["off"]["eval_over_train"] == pytest.approx([1.0] * 3)
    # The input of the first layer after a dropout: its mean in evaluation over training is
    # 1 for inverted dropout and for the rescale at test time, 1 / (1 - p) without a rescale.
    assert rows["train"]["eval_over_train"][0] == pytest.approx(1.0, rel=0.05)
    assert rows["test"]["eval_over_train"][0] == pytest.approx(1.0, rel=0.05)
    assert rows["none"]["eval_over_train"][0] == pytest.approx(1 / (1 - p), rel=0.05)
    # "test" and "none" train identically (same masks, same updates) and differ in evaluation
    # only, by the factor 1 - p at the first site
    runs = saved["runs"]
    labels = {r["variant"]: r["label"] for r in saved["rows"]}
    assert runs[labels["test"]]["steps"] == runs[labels["none"]]["steps"]
    assert rows["test"]["mean_input_train"] == rows["none"]["mean_input_train"]
    assert rows["test"]["mean_input_eval"][0] == pytest.approx((1 - p) * rows["none"]["mean_input_eval"][0])


def test_unknown_experiment(tiny, tmp_path):
    with pytest.raises(ValueError, match="unknown experiment"):
        experiments.run("nope", tmp_path, tiny)
    with pytest.raises(SystemExit):
        experiments.main(["nope"])


def _command_error(argv, capsys):
    """``normreg-experiments argv``: its exit status and its stderr lines."""
    try:
        code = experiments.main([str(a) for a in argv])
    except SystemExit as exit:
        code = exit.code
    captured = capsys.readouterr()
    assert captured.out == ""
    return code, captured.err.splitlines()


def test_command_line_mistakes_are_one_line_before_anything_is_written(tiny_dir, tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    new = tmp_path / "new" / "out"
    ok = ["summary", "--quick", "--no-progress", "--data-dir", tiny_dir]
    cases = [
        (["--out", a_file], f"--out {a_file} exists and is not a directory"),
        (["--out", a_file / "sub"], f"--out {a_file / 'sub'}: cannot write there (Not a directory)"),
        (["--out", "/proc/normreg-out"], "--out /proc/normreg-out: cannot write there"),
        (["--out", new, "--threads", "0"], "argument --threads: must be in [1, 1024], got 0 "),
        (["--out", new, "--threads", "-3"], "argument --threads: must be in [1, 1024], got -3 "),
        (["--out", new, "--threads", "100000"], "argument --threads: must be in [1, 1024], got 100000 "),
        (["--out", new, "--seed", "-1"], "argument --seed: must be in [0, 18446744073709551615], got -1 "),
        (["--out", new, "--seed", str(2**64)], "argument --seed: must be in [0, "),
        (
            ["--out", new, "--data-dir", "/nonexistent"],
            "--data-dir: Fashion-MNIST data directory /nonexistent",
        ),
        (["--out", new, "--data-dir", a_file], f"--data-dir: Fashion-MNIST data directory {a_file} is not a"),
    ]
    before = normreg.get_num_threads()
    for argv, message in cases:
        code, lines = _command_error(ok + argv, capsys)
        assert code == 2, (argv, lines)
        assert len(lines) == 1 and lines[0].startswith("normreg-experiments: error: "), (argv, lines)
        assert message in lines[0], (argv, lines)
        assert not (tmp_path / "new").exists(), argv
    assert normreg.get_num_threads() == before
    assert sorted(os.listdir(tmp_path)) == ["a-file"]


def test_bad_data_leaves_no_output_directory(tmp_path, capsys):
    """Data that cannot be loaded: one line, status 2, and the --out made for it is removed."""
    write_dataset(tmp_path / "data", n_train=20, n_test=5)
    (tmp_path / "data" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8bnot gzip")
    out = tmp_path / "made" / "out"
    code, lines = _command_error(
        ["summary", "--quick", "--data-dir", tmp_path / "data", "--out", out], capsys
    )
    assert code == 2 and len(lines) == 1 and "t10k-labels-idx1-ubyte.gz: corrupted gzip data" in lines[0]
    assert not (tmp_path / "made").exists()


def test_ctrl_c_is_one_line_and_status_130(tiny_dir, tmp_path, capsys, monkeypatch):
    ran = []

    def interrupted_second(name, out_dir, data, **kwargs):
        if ran:
            raise KeyboardInterrupt
        ran.append(name)
        with open(os.path.join(out_dir, f"{name}.md"), "w") as f:
            f.write("done")
        return {"markdown": "done", "markdown_path": "m", "json": "j", "plots": [], "seconds": 0.0}

    monkeypatch.setattr(experiments, "run", interrupted_second)
    out = tmp_path / "out"
    argv = ["init", "summary", "--quick", "--data-dir", str(tiny_dir), "--out", str(out)]
    assert experiments.main(argv) == 130
    assert capsys.readouterr().err.splitlines() == [
        f"normreg-experiments: interrupted during summary; finished init (in {out})"
    ]

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiments, "load_fashion_mnist", interrupt)
    assert experiments.main(["init", "--data-dir", str(tiny_dir), "--out", str(tmp_path / "early")]) == 130
    assert capsys.readouterr().err.splitlines() == [
        "normreg-experiments: interrupted before the first experiment started"
    ]
    assert not (tmp_path / "early").exists()
