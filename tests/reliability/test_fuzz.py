"""Fuzzing the binding, the functional API and the modules with hostile arguments.

The cases (``fuzz_cases.py``) run in child processes, in batches: a child that dies by a
signal, is stopped by a sanitizer or hangs fails the case it was running, and the run
resumes after that case so one crash does not hide the others.
"""

import os
import subprocess
import sys

import fuzz_binding
import fuzz_cases
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BATCH = 2500
TIMEOUT = float(os.environ.get("NORMREG_FUZZ_TIMEOUT", "300"))

pytestmark = pytest.mark.sanitize


def _child(start, stop, extra_env=None):
    """Runs cases [start, stop) in a child; returns (results {i: (status, detail)},
    index of the case that killed or hung the child or None, what happened)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p
        for p in [os.path.dirname(os.path.dirname(__import__("normreg").__file__)), env.get("PYTHONPATH", "")]
        if p
    )
    env.setdefault("OMP_NUM_THREADS", "2")
    env.update(extra_env or {})
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "fuzz_cases.py"), str(start), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
        hung = False
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        hung = True
    results, running, done = {}, None, False
    for line in out.splitlines():
        if line == "DONE":
            done = True
            continue
        parts = line.split("\t")
        i = int(parts[0])
        if parts[1] == "START":
            running = i
        else:
            results[i] = (parts[1], parts[2] if len(parts) > 2 else "")
            running = None
    if done and proc.returncode == 0:
        return results, None, ""
    what = (
        f"hung (timeout {TIMEOUT:.0f} s)"
        if hung
        else f"killed by signal {-proc.returncode}"
        if proc.returncode < 0
        else f"exit status {proc.returncode}"
    )
    return results, running, f"{what}; stderr tail: {err[-2000:]}"


def test_fuzz_every_function_in_subprocesses():
    cases = fuzz_cases.all_cases()
    n = len(cases)
    assert n > 5000
    # every binding function is fuzzed, including ones added after this test was written
    labels = " ".join(label for label, _, _ in cases)
    for name in fuzz_binding.c_functions():
        assert f"_C.{name} " in labels, name
    failures = []
    start = 0
    while start < n:
        stop = min(start + BATCH, n)
        results, crashed, what = _child(start, stop)
        for i, (status, detail) in sorted(results.items()):
            if status != "OK":
                failures.append(f"{cases[i][0]}: {detail}")
        if crashed is None and what:
            crashed = max(results, default=start - 1) + 1
        if crashed is not None:
            failures.append(f"{cases[crashed][0]}: the process {what}")
            start = crashed + 1
        else:
            start = stop
    assert not failures, f"{len(failures)} of {n} fuzz cases failed:\n" + "\n".join(failures[:50])


def test_harness_reports_a_segfault_and_resumes(monkeypatch):
    monkeypatch.setenv("NORMREG_FUZZ_SELFTEST", "1")
    n = len(fuzz_cases.all_cases())
    # under scripts/sanitize.sh this intended crash must not count as a sanitizer report
    asan = [o for o in os.environ.get("ASAN_OPTIONS", "").split(":") if o and not o.startswith("log_path")]
    results, crashed, what = _child(n - 3, n, {"ASAN_OPTIONS": ":".join(asan + ["log_path=stderr"])})
    assert crashed == n - 2 and ("signal" in what or "exit status" in what), (crashed, what)
    assert results == {n - 3: results[n - 3]}
    results, crashed, what = _child(n - 1, n)
    assert crashed is None and results[n - 1][0] == "OK"
