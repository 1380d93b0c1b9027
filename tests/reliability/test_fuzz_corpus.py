"""The coverage-guided fuzzing corpus, replayed without a fuzzer.

Every committed input of ``tests/fuzz/corpus/<target>/`` (the hand-made seeds, the inputs
the fuzzing runs of ``scripts/fuzz.sh`` kept for their coverage, and the inputs of past
findings, named ``regress-*``) goes through the same target and decoders as under the
fuzzer (``tests/fuzz/targets.py``), on whatever build is installed: a plain one here, the
gcc AddressSanitizer build under ``scripts/sanitize.sh``. The inputs run in child
processes: one that dies (a signal, a sanitizer report) or hangs fails the input it was
running, and the replay resumes after it.
"""

import glob
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
FUZZ = os.path.join(os.path.dirname(HERE), "fuzz")
sys.path.insert(0, FUZZ)

TARGETS = ("binding", "load", "idx")
TIMEOUT = float(os.environ.get("NORMREG_FUZZ_TIMEOUT", "600"))
SLOW = 10.0  # seconds for one input: the fuzzer allows 1 s on an instrumented build

pytestmark = pytest.mark.sanitize


def _env(extra=None):
    env = dict(os.environ)
    package = os.path.dirname(os.path.dirname(__import__("normreg").__file__))
    env["PYTHONPATH"] = os.pathsep.join(p for p in [package, env.get("PYTHONPATH", "")] if p)
    env.setdefault("OMP_NUM_THREADS", "2")
    if "asan" in env.get("LD_PRELOAD", ""):  # sizes the fuzzer's build refuses are refused here too
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":max_allocation_size_mb=1024"
    env.update(extra or {})
    return env


def replay(target, files, extra_env=None):
    """Runs ``files`` through ``target`` in children; returns the failures as strings."""
    failures = []
    rest = list(files)
    while rest:
        proc = subprocess.Popen(
            [sys.executable, os.path.join(FUZZ, "replay.py"), target, *rest],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(extra_env),
        )
        try:
            out, err = proc.communicate(timeout=TIMEOUT)
            what = f"exit status {proc.returncode}" if proc.returncode >= 0 else f"signal {-proc.returncode}"
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            what = f"hung ({TIMEOUT:.0f} s)"
        running, done = None, set()
        for line in out.splitlines():
            status, _, tail = line.partition("\t")
            path, _, detail = tail.partition("\t")
            if status == "START":
                running = path
            elif status in ("OK", "FINDING"):
                done.add(path)
                running = None
                if status == "FINDING":
                    failures.append(f"{os.path.basename(path)}: {detail}")
                elif float(detail) > SLOW:
                    failures.append(f"{os.path.basename(path)}: took {detail} s")
        if "DONE" in out.splitlines() and proc.returncode == 0:
            break
        if running is None:  # died before its first input, or after its last
            failures.append(f"the replay process: {what}; stderr: {err[-3000:]}")
            break
        failures.append(f"{os.path.basename(running)}: the process {what}; stderr: {err[-3000:]}")
        rest = rest[rest.index(running) + 1 :]
    return failures


def corpus(target):
    return sorted(glob.glob(os.path.join(FUZZ, "corpus", target, "*")))


@pytest.mark.parametrize("target", TARGETS)
def test_corpus_replays_clean(target):
    files = corpus(target)
    assert len(files) >= 20, f"tests/fuzz/corpus/{target} has {len(files)} inputs"
    failures = replay(target, files)
    assert not failures, f"{len(failures)} of {len(files)} inputs of {target}:\n" + "\n".join(failures[:30])


def test_every_binding_function_has_a_decoder_and_inputs():
    """A function added to normreg._C needs a decoder in tests/fuzz/binding_specs.py (the
    fuzzer refuses to start without one) and seeds in the corpus (tests/fuzz/seeds.py)."""
    from binding_specs import SPECS, check_complete

    check_complete()
    seen = set()
    for path in corpus("binding"):
        with open(path, "rb") as f:
            first = f.read(1)
        if first and first[0] < len(SPECS):
            seen.add(SPECS[first[0]].name)
    missing = sorted({spec.name for spec in SPECS} - seen)
    assert not missing, f"no corpus input calls {missing}: run python tests/fuzz/seeds.py binding"


def test_regression_inputs_are_listed_and_still_decode_to_their_call():
    """Each regress-* input (a past finding) has its line in tests/fuzz/regressions.txt, and a
    binding input still decodes to the call it was found with (a decoder change that alters
    what old inputs mean must not silently turn them into other tests)."""
    from targets import decode_binding

    listed = {}
    with open(os.path.join(FUZZ, "regressions.txt")) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                name, call, _ = line.rstrip("\n").split("\t")
                listed[name] = call
    present = {
        f"{t}/{os.path.basename(p)}"
        for t in TARGETS
        for p in corpus(t)
        if os.path.basename(p).startswith("regress-")
    }
    assert present == set(listed), (sorted(present - set(listed)), sorted(set(listed) - present))
    for name, call in listed.items():
        if name.startswith("binding/"):
            with open(os.path.join(FUZZ, "corpus", name), "rb") as f:
                assert repr(decode_binding(f.read())[0]) == call, name


def test_replay_reports_findings_crashes_and_resumes(tmp_path):
    files = []
    for name, data in [
        ("a", b"\x00\x00\x00\x00"),
        ("b", b"not a checkpoint"),
        ("c", b"\x00\x00\x08\x01\x00"),
    ]:
        path = tmp_path / name
        path.write_bytes(data)
        files.append(str(path))
    assert replay("idx", files) == []  # each a ValueError or an array: all fine
    crash = tmp_path / "crash"
    crash.write_bytes(b"segfault")
    # under scripts/sanitize.sh this intended crash must not count as a sanitizer report, and
    # stays a signal (AddressSanitizer's own SEGV handler would exit with status 1 instead)
    asan = [
        o
        for o in os.environ.get("ASAN_OPTIONS", "").split(":")
        if o and not o.startswith(("log_path", "handle_segv"))
    ]
    failures = replay(
        "selftest",
        [str(crash), files[0]],
        {"ASAN_OPTIONS": ":".join(asan + ["log_path=stderr", "handle_segv=0"])},
    )
    assert len(failures) == 2 and failures[0].startswith("crash: the process signal"), failures
    assert failures[1].startswith("a: RuntimeError"), failures
