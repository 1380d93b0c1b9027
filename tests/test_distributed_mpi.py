"""2-rank tests: each runs a script under `mpiexec -n 2` (MPI from `pip install .[mpi]`,
part of the `test` extra). Skipped when mpi4py or mpiexec is missing."""

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpi_scripts")


def _mpiexec():
    try:
        from mpi4py import MPI  # noqa: F401
    except Exception as exc:  # ImportError, or no MPI library for mpi4py to load
        pytest.skip(f"mpi4py is not usable: {exc}")
    # the launcher installed beside this Python (the mpich wheel) matches its MPI library
    here = os.path.dirname(sys.executable)
    found = shutil.which("mpiexec", path=here) or shutil.which("mpiexec")
    if found is None:
        pytest.skip("no mpiexec found beside the Python interpreter or on PATH")
    return found


def run_ranks(script, *args, n=2, timeout=60):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"  # two ranks share the cores
    # the children import the same normreg as this test process
    import normreg

    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(normreg.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [pkg_parent, env.get("PYTHONPATH")]))
    cmd = [_mpiexec(), "-n", str(n), sys.executable, os.path.join(SCRIPTS, script), *args]
    start = time.monotonic()
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    return proc, time.monotonic() - start


def assert_ok(proc, n=2):
    msg = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, msg
    for rank in range(n):
        assert f"rank {rank}: OK" in proc.stdout, msg


def test_sync_batchnorm_split_batch_equals_whole_batch():
    proc, _ = run_ranks("check_sync_batchnorm.py")
    assert_ok(proc)


def test_training_steps_equal_single_process_with_uneven_shards():
    proc, _ = run_ranks("check_training.py")
    assert_ok(proc)


@pytest.mark.parametrize("mode, status", [("raise", 1), ("exit", 3), ("kill", None), ("hang", None)])
def test_failing_rank_ends_the_job(mode, status):
    proc, seconds = run_ranks("check_failure.py", mode, timeout=60)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    if status is not None:
        assert proc.returncode == status, proc.stdout + proc.stderr
    assert "should not get here" not in proc.stdout
    assert seconds < 30
    if mode == "raise":
        assert "[rank 1] RuntimeError: rank 1 failed on purpose" in proc.stderr
        assert "aborting all 2 ranks" in proc.stderr
    if mode == "exit":
        assert "[rank 1] normreg.distributed: exit status 3, aborting all 2 ranks" in proc.stderr
    if mode == "hang":
        assert "[rank 0] normreg.distributed: an all-reduce did not complete within 2 s" in proc.stderr


def _docs_example(tmp_path):
    """The example of docs/distributed.md (its first python block), as a script."""
    import re

    path = os.path.join(os.path.dirname(SCRIPTS), os.pardir, "docs", "distributed.md")
    if not os.path.isfile(path):
        pytest.skip("docs/distributed.md not found (tests run from an installed copy)")
    with open(path, encoding="utf-8") as f:
        block = re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)[0]
    script = tmp_path / "docs_distributed.py"
    script.write_text(block)
    return str(script)


def _losses(out):
    import re

    return [float(v) for v in re.findall(r"epoch \d+ loss ([0-9.]+)", out)]


def test_docs_example_gives_the_same_losses_on_one_and_two_ranks(tmp_path):
    _mpiexec()  # skip early without MPI
    script = _docs_example(tmp_path)
    import normreg

    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(
        filter(
            None, [os.path.dirname(os.path.dirname(os.path.abspath(normreg.__file__))), env.get("PYTHONPATH")]
        )
    )
    one = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True, timeout=120)
    assert one.returncode == 0, one.stderr
    two, _ = run_ranks(script, timeout=120)
    assert two.returncode == 0, two.stderr
    l1, l2 = _losses(one.stdout), _losses(two.stdout)
    assert len(l1) == len(l2) == 5, (one.stdout, two.stdout)  # rank 0 alone prints
    assert l1[-1] < 0.5 * l1[0]
    # the same global batches and the same steps: equal up to float32 rounding
    np.testing.assert_allclose(l2, l1, rtol=2e-3, atol=2e-4)


def test_train_command_distributed_matches_one_process(tmp_path):
    """`mpiexec -n 2 normreg-train --distributed` on a small synthetic Fashion-MNIST: rank 0
    alone prints and writes, and without dropout the run follows the single-process run (the
    same global batches, split across the ranks; equal up to float32 rounding)."""
    import json

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _synthetic import write_dataset

    data = tmp_path / "data"
    write_dataset(str(data), n_train=600, n_test=200)
    common = [
        "-m",
        "normreg.train",
        "--data-dir",
        str(data),
        "--epochs",
        "2",
        "--width",
        "64,32",
        "--dropout",
        "0",
        "--batch-size",
        "100",
        "--threads",
        "1",
        "--no-progress",
    ]
    import normreg

    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(
        filter(
            None, [os.path.dirname(os.path.dirname(os.path.abspath(normreg.__file__))), env.get("PYTHONPATH")]
        )
    )
    _mpiexec()
    one = subprocess.run(
        [sys.executable, *common, "--out", str(tmp_path / "one")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert one.returncode == 0, one.stdout + one.stderr
    cmd = [_mpiexec(), "-n", "2", sys.executable, *common, "--out", str(tmp_path / "two"), "--distributed"]
    two = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert two.returncode == 0, two.stdout + two.stderr
    assert two.stdout.count("epoch   2/2") == 1 and two.stdout.count("test accuracy") == 1, two.stdout
    assert "2 ranks" in two.stdout
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert m2["world_size"] == 2 and (tmp_path / "two" / "checkpoint.npz").exists()
    for e1, e2 in zip(m1["epochs"], m2["epochs"]):
        for key in ("train_loss", "test_loss"):
            assert abs(e1[key] - e2[key]) < 1e-3 * max(1.0, abs(e1[key])), (key, e1, e2)
        for key in ("train_acc", "test_acc"):
            assert abs(e1[key] - e2[key]) <= 0.01, (key, e1, e2)
    assert m2["epochs"][-1]["test_acc"] > 0.5
