"""normreg-train as a user runs it, in child processes: every mistake on the command line
is one ``normreg-train: error: ...`` line and exit status 2, found before any data is
loaded; Ctrl-C is one line saying where the last checkpoint is, and exit status 130;
``--resume`` continues that checkpoint to the uninterrupted run's result."""

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from _synthetic import FILES, write_dataset, write_idx
from test_train import assert_same_state

import normreg
from normreg.train import cli

SMALL = ["--width", "32,16", "--batch-size", "64", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny-fmnist")
    write_dataset(directory, n_train=600, n_test=200, seed=0)
    return directory


def command(*argv):
    return [sys.executable, "-m", "normreg.train", *map(str, argv)]


def _one_line_errors(runs):
    """Run the commands concurrently; each must exit 2 with exactly one stderr line starting
    with ``normreg-train: error:`` that matches its pattern, having printed nothing else
    (the banner comes after the data is loaded)."""
    procs = [
        (subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), pattern)
        for argv, pattern in runs
    ]
    for proc, pattern in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (proc.args, out, err)
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("normreg-train: error: "), (proc.args, err)
        assert pattern in lines[0], (pattern, lines[0])
        assert out == "", (proc.args, out)


def test_user_errors_are_one_line_before_loading_data(tiny, tmp_path):
    existing = tmp_path / "a-file"
    existing.write_text("x")
    empty = tmp_path / "empty"
    empty.mkdir()
    other_run = tmp_path / "other-run"
    other_run.mkdir()
    normreg.save({"epoch": 1}, other_run / "checkpoint.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\0" * 100)
    ok = ["--data-dir", tiny, "--out", tmp_path / "never"]
    runs = [
        (command("--data-dir", tiny, "--out", existing), f"--out {existing} exists and is not a directory"),
        (
            command("--data-dir", tiny, "--out", "/proc/normreg-out"),
            "--out /proc/normreg-out: cannot write there",
        ),
        (
            command("--data-dir", tiny, "--out", other_run),
            f"--out {other_run} holds the checkpoint of another run",
        ),
        (command("--data-dir", "/nonexistent", "--out", tmp_path / "o"), "/nonexistent does not exist"),
        (
            command("--data-dir", empty, "--out", tmp_path / "o"),
            f"{empty} lacks train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz",
        ),
        (command(*ok, "--train-subset", "1"), "--train-subset 1 is too small for --norm batch"),
        (command(*ok, "--batch-size", "1"), "--norm batch needs batches of at least 2 examples"),
        (
            command(*ok, "--warmup-epochs", "5", "--epochs", "2"),
            "warmup_epochs (--warmup-epochs) 5 must be less than epochs (--epochs) 2",
        ),
        (command(*ok, "--resume", tmp_path / "missing"), f"--resume {tmp_path / 'missing'}: "),
        (command(*ok, "--resume", empty), "holds no checkpoint.npz"),
        (command(*ok, "--resume", garbage), "not a normreg checkpoint"),
        (command(*ok, "--resume", other_run), "not a normreg-train checkpoint: no 'config'"),
        (command(*ok, "--width", "0"), "argument --width: widths must be positive"),
        (command(*ok, "--dropout", "1.5"), "argument --dropout: must be in [0, 1), got 1.5"),
        (command(*ok, "--lr", "nan"), "argument --lr: must be a finite number, got nan"),
        (command(*ok, "--threads", "1025"), "argument --threads: must be in [1, 1024], got 1025"),
        (command(*ok, "--threads", "0"), "argument --threads: must be in [1, 1024], got 0"),
        (command(*ok, "--model", "resnet", "--width", "32,16"), "the resnet model takes one int width"),
        (
            command(*ok, "--model", "cnn", "--norm", "group", "--width", "8,12"),
            "--width 8,12: --norm group uses GroupNorm(min(8, C), C), so a width above 8 must be a multiple",
        ),
        (command(*ok, "--init-gain", "nan"), "argument --init-gain: must be a finite number, got nan"),
        (command(*ok, "--lr", "inf"), "argument --lr: must be a finite number, got inf"),
        (
            command(*ok, "--norm", "group"),
            "--norm group is for --model cnn; the mlp model takes --norm batch, layer",
        ),
        (
            command(*ok, "--width", "100,,50"),
            "argument --width: widths must be a comma-separated list of ints, ",
        ),
        (command(*ok, "--seed", "-1"), "argument --seed: must be in [0, 18446744073709551615], got -1"),
        (
            command(*ok, "--model", "cnn", "--width", "8,8,8,8,8,8"),
            "--width 8,8,8,8,8,8: 6 stages for --model cnn, whose 5 2x2 max-poolings would reduce",
        ),
    ]
    _one_line_errors(runs)
    assert not (tmp_path / "never").exists() and not (tmp_path / "o").exists()


def test_data_of_the_wrong_image_size_is_one_line_and_leaves_nothing(tmp_path):
    """Test images of 20x20 pixels: refused when the data is loaded, naming the file, not
    after an epoch of training; the --out directory made for the run is removed."""
    bad = tmp_path / "data"
    write_dataset(bad, n_train=100, n_test=20)
    write_idx(bad / FILES[2], np.zeros((20, 20, 20), np.uint8))
    out = tmp_path / "out"
    done = subprocess.run(
        command("--data-dir", bad, "--out", out, "--epochs", "1", *SMALL), capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"normreg-train: error: {bad / FILES[2]}: images of 20x20 pixels (shape (20, 20, 20)); "
        "Fashion-MNIST's are 28x28"
    ]
    assert "epoch" not in done.stdout and not out.exists()


def test_help_gives_each_default_once():
    text = cli.parser().format_help()
    flat = " ".join(text.split())
    assert "(default: None)" not in flat and "(default: True)" not in flat and "(default: False)" not in flat
    assert "(default: 1024,512,256; cnn: 32,64,128)" in flat and "(default: Nesterov)" in flat
    assert "(default: 0.9)" in flat  # --momentum's, added by the formatter
    assert not re.search(r"\(default[^)]*\) \(default", flat)  # never two in a row


def test_resume_flags_must_agree_with_the_run(tiny, tmp_path):
    out = tmp_path / "run"
    done = subprocess.run(
        command("--data-dir", tiny, "--out", out, "--epochs", "1", *SMALL), capture_output=True
    )
    assert done.returncode == 0, done.stderr
    _one_line_errors(
        [
            (command("--resume", out, "--lr", "0.5"), "these flags differ: --lr 0.5 (the run has 0.1)"),
            (
                command("--resume", out, "--epochs", "3", "--seed", "1"),
                "--epochs 3 (the run has 1); --seed 1",
            ),
        ]
    )
    # the flags of the original command agree: the run is complete, nothing more to do
    again = subprocess.run(
        command("--resume", out, "--data-dir", tiny, "--epochs", "1", *SMALL), capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    assert "resuming after epoch 1 of 1" in again.stdout
    # into another directory: the checkpoint it says it wrote is there, the run's own
    copy = tmp_path / "copy"
    copied = subprocess.run(
        command("--resume", out, "--out", copy, "--data-dir", tiny, "--no-progress"),
        capture_output=True,
        text=True,
    )
    assert copied.returncode == 0, copied.stderr
    assert f"wrote {copy}/checkpoint.npz, metrics.json, curves.png" in copied.stdout
    assert_same_state(normreg.load(out / "checkpoint.npz"), normreg.load(copy / "checkpoint.npz"))
    assert sorted(os.listdir(copy)) == ["checkpoint.npz", "curves.png", "metrics.json"]


def _tampered(run, directory, **changes):
    """A copy of ``run``'s checkpoint in ``directory`` with ``changes``: top-level keys, and
    ``config_<field>`` for a field of its configuration."""
    state = normreg.load(run / "checkpoint.npz")
    for key, value in changes.items():
        if key.startswith("config_"):
            state["config"][key[len("config_") :]] = value
        else:
            state[key] = value
    directory.mkdir()
    normreg.save(state, directory / "checkpoint.npz")
    return directory


def test_resume_refuses_an_inconsistent_checkpoint_before_loading_data(tiny, tmp_path):
    run = tmp_path / "run"
    done = subprocess.run(
        command("--data-dir", tiny, "--out", run, "--epochs", "1", *SMALL), capture_output=True
    )
    assert done.returncode == 0, done.stderr
    fit = "the checkpoint's model weights do not fit the model its configuration builds: "
    cases = {
        "cnn-config": (
            dict(config_model="cnn", config_dropout=0.0),
            "the checkpoint's model weights do not fit the model",
        ),
        "cnn-dropout": (dict(config_model="cnn"), "the cnn model has no dropout"),
        "width": (
            dict(config_width=[10]),
            fit + "unexpected 5.weight, 5.bias, 5.running_mean, ...; shapes 0.weight (784, 32) (expected",
        ),
        "epochs-abc": (
            dict(config_epochs="abc"),
            "the checkpoint's configuration has epochs='abc', not an int >= 1",
        ),
        "epochs-neg": (
            dict(config_epochs=-3),
            "the checkpoint's configuration has epochs=-3, not an int >= 1",
        ),
        "norm": (
            dict(config_norm="bogus"),
            "the checkpoint's configuration has norm='bogus', not one of batch, ",
        ),
        "epoch": (dict(epoch=10**6), "the checkpoint is of epoch 1000000, not one of the run's 1 to 1"),
        "threads": (dict(threads=0), "the checkpoint's threads is 0, not an int >= 1"),
    }
    runs = []
    for name, (changes, message) in cases.items():
        bad = _tampered(run, tmp_path / name, **changes)
        # --data-dir names a directory without data: the error comes before any is looked for
        runs.append(
            (command("--resume", bad, "--data-dir", tmp_path / "no-data"), f"--resume {bad}: {message}")
        )
    _one_line_errors(runs)


def test_resume_a_checkpoint_recorded_with_more_threads_than_the_limit(tiny, tmp_path):
    """set_num_threads takes 1 to 1024: a checkpoint's 1100 (OMP_NUM_THREADS=1100 when it was
    recorded) resumes with 1024 (the thread count is not part of the result)."""
    run = tmp_path / "run"
    done = subprocess.run(
        command("--data-dir", tiny, "--out", run, "--epochs", "1", *SMALL), capture_output=True
    )
    assert done.returncode == 0, done.stderr
    bad = _tampered(run, tmp_path / "many", threads=1100)
    resumed = subprocess.run(
        command("--resume", bad, "--data-dir", tiny, "--no-progress"), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "1024 threads" in resumed.stdout


def test_a_full_disk_is_one_line_naming_the_file(tiny, tmp_path, monkeypatch, capsys, set_threads):
    """normreg.save failing with ENOSPC (on its temporary file): one line naming the
    checkpoint, exit status 1, no traceback."""

    def full(state, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"{path}.123.tmp")

    monkeypatch.setattr(normreg, "save", full)
    out = tmp_path / "run"
    argv = ["--data-dir", tiny, "--out", out, "--epochs", "1", *SMALL]
    assert cli.main([str(a) for a in argv]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"normreg-train: error: cannot write {out / 'checkpoint.npz'} (No space left on device)"
    ]


def test_a_non_finite_test_loss_is_a_divergence(tiny, tmp_path):
    """--weight-decay 1e30 over one step: the training loss of that batch is finite, the
    weights after the step are not, so the test loss is NaN: diverged, exit status 1."""
    out = tmp_path / "run"
    argv = ["--data-dir", tiny, "--out", out, "--epochs", "2", "--train-subset", "100", *SMALL]
    done = subprocess.run(command(*argv, "--weight-decay", "1e30"), capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    assert "test loss nan" in done.stdout and "the test loss is NaN/Inf: stopped" in done.stdout
    assert "normreg-train: training diverged (loss NaN/Inf)" in done.stderr
    assert "epoch   2/2" not in done.stdout and not (out / "checkpoint.npz").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["diverged"] is True and len(metrics["epochs"]) == 1


def _wait_for(proc, text, timeout=60):
    """Read the child's stdout until a line holds ``text``; returns the lines read."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"no line with {text!r} in {lines}")


def test_ctrl_c_says_where_the_checkpoint_is_and_resume_finishes_the_run(tiny, tmp_path):
    # enough epochs after the second that Ctrl-C lands during training even when this
    # process is slow to send it (an epoch here takes a few milliseconds)
    epochs = 100
    argv = ["--data-dir", tiny, "--epochs", epochs, "--seed", "3", *SMALL]
    full = subprocess.run(
        command(*argv, "--out", tmp_path / "full"), capture_output=True, text=True, timeout=120
    )
    assert full.returncode == 0, full.stderr
    out = tmp_path / "cut"
    proc = subprocess.Popen(
        command(*argv, "--out", out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_for(proc, f"epoch   2/{epochs}")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = err.splitlines()
    assert len(lines) == 1, err  # no traceback
    epoch = int(normreg.load(out / "checkpoint.npz")["epoch"])  # the last checkpoint loads
    assert epoch >= 2
    assert lines[0] == (
        f"normreg-train: interrupted; the last checkpoint is {out / 'checkpoint.npz'} (epoch {epoch}): "
        f"continue with normreg-train --resume {out}"
    )
    resumed = subprocess.run(
        command("--resume", out, "--data-dir", tiny, "--no-progress"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after epoch {epoch} of {epochs}" in resumed.stdout
    assert_same_state(
        normreg.load(tmp_path / "full" / "checkpoint.npz"), normreg.load(out / "checkpoint.npz")
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == list(range(1, epochs + 1))
    assert sorted(os.listdir(out)) == ["checkpoint.npz", "curves.png", "metrics.json"]


def test_a_ctrl_c_in_a_finalizer_stops_the_run_without_a_traceback(monkeypatch):
    """Python drops an exception raised in a __del__ (a progress bar's, collected when the
    signal lands), printing "Exception ignored" and a traceback: the training's handler
    raises nothing there, remembers the Ctrl-C, and the run stops at its next check instead
    of running to the end."""
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)

    class Finalizer:
        def __del__(self):
            self.close()

        def close(self):
            os.kill(os.getpid(), signal.SIGINT)  # the handler runs here, under __del__

    with cli._Interrupts() as interrupts:
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        interrupts.check()  # nothing seen yet
        Finalizer()
        assert unraisable == []
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
        with pytest.raises(KeyboardInterrupt):  # outside a finalizer: at once
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_before_the_first_checkpoint(tiny, tmp_path):
    out = tmp_path / "early"
    proc = subprocess.Popen(
        command(
            "--data-dir",
            tiny,
            "--out",
            out,
            "--epochs",
            "50",
            "--width",
            "256,256",
            "--batch-size",
            "8",
            "--threads",
            "1",
            "--no-progress",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(proc, "normreg-train: mlp")  # the banner: data loaded, the first epoch starting
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.splitlines() in (
        ["normreg-train: interrupted before the first epoch finished: no checkpoint was written"],
        [
            f"normreg-train: interrupted; the last checkpoint is {out / 'checkpoint.npz'} (epoch 1): "
            f"continue with normreg-train --resume {out}"
        ],
    )
