"""Killed training loses nothing: ``scripts/kill-test.py`` in short (the documented long run
is ``scripts/kill-test.py --kills 100``, see RELIABILITY.md).

normreg-train is started on a small synthetic dataset, killed with SIGKILL (every other kill
aimed inside a checkpoint write, the others at random moments) and resumed with ``--resume``
until it finishes: the last checkpoint must load after every kill, and every run must end
bit for bit in the state of an uninterrupted run of the same seed and thread count.
"""

import importlib.util
import os

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(os.path.dirname(os.path.dirname(HERE)), "scripts", "kill-test.py")


def _kill_test():
    spec = importlib.util.spec_from_file_location("kill_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_killed_runs_resume_to_the_uninterrupted_state(tmp_path):
    lines = []
    figures = _kill_test().run(
        kills=4, seed=7, workdir=str(tmp_path), write_seconds=0.3, epochs=3, aim_every=2, log=lines.append
    )
    report = "\n".join(lines) + f"\n{figures}"
    assert figures["ok"], report
    assert figures["kills"] == 4 and figures["checkpoints_lost"] == 0, report
    assert figures["kills_aimed_at_a_write"] == 2, report
    assert figures["kills_inside_a_write"] >= 1, report
    assert figures["runs_finished"] == figures["runs_identical"] >= 1, report
    assert figures["differences"] == [], report
