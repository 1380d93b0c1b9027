"""OpenBLAS's idle threads: normreg asks its OpenBLAS for a short spin before they sleep
(OPENBLAS_THREAD_TIMEOUT=20, about 0.3 ms, instead of OpenBLAS's 2**28 cycles, about 0.1 s),
unless the environment chose one, and says so in show_config(). Each case runs in a fresh
interpreter: OpenBLAS reads the setting once, when it loads."""

import json
import os
import subprocess
import sys

import pytest

# normreg first: NumPy's OpenBLAS, loaded after it, then reads the same setting (its threads
# spin from the moment it loads, and would be counted too)
PROBE = """
import normreg
import json, os, resource, sys, time
import numpy as np
from normreg import _C
blas = normreg.show_config(mode="dicts")["BLAS"]
normreg.set_num_threads(2)
rng = np.random.default_rng(0)
a, b = (rng.standard_normal((512, 512), dtype=np.float32) for _ in range(2))
c = np.empty((512, 512), np.float32)
for _ in range(3):
    _C.sgemm(False, False, a, b, c, 0.0)  # OpenBLAS's own threads
# the CPU time the process spends while its main thread sleeps: OpenBLAS's idle threads
before = resource.getrusage(resource.RUSAGE_SELF)
time.sleep(0.3)
after = resource.getrusage(resource.RUSAGE_SELF)
spent = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
print(json.dumps({"timeout": blas["thread_timeout"], "env": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
                  "spent": spent}))
"""


def _run(code, *args, timeout=None):
    """The JSON that ``code`` prints last, run in a fresh interpreter with ``args``, without
    OpenBLAS's settings from this environment (``OPENBLAS_THREAD_TIMEOUT=timeout`` if given)."""
    unset = ("OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    if timeout is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = timeout
    cmd = [sys.executable, "-c", code, *args]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def _probe(timeout=None):
    return _run(PROBE, timeout=timeout)


def test_normreg_sets_a_short_spin_and_says_so():
    out = _probe()
    assert out["env"] == "20"
    assert out["timeout"].startswith("OPENBLAS_THREAD_TIMEOUT=20 (set by normreg")


def test_the_users_timeout_is_kept():
    out = _probe("25")
    assert out["env"] == "25"
    assert out["timeout"] == "OPENBLAS_THREAD_TIMEOUT=25 (from the environment)"


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="OpenBLAS runs one thread on one core")
def test_idle_blas_threads_sleep_soon():
    default = _probe("28")  # OpenBLAS's own default: 2**28 cycles of spinning
    if default["spent"] < 0.02:
        pytest.skip(f"OpenBLAS's threads did not spin here by default ({default['spent']:.3f} s)")
    ours = _probe()
    # a short spin: well under the 0.3 s sleep (2**20 cycles is about 0.3 ms)
    assert ours["spent"] < 0.02, (ours, default)


EARLIER = """
import ctypes, json, sys
ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)  # loaded before normreg, as another module's
import normreg
blas = normreg.show_config(mode="dicts")["BLAS"]
print(json.dumps({"timeout": blas["thread_timeout"], "path": blas["path"]}))
"""


def test_an_openblas_loaded_before_normreg_keeps_its_default_and_show_config_says_so():
    """A system OpenBLAS shared with a NumPy that loaded it first read the environment before
    normreg could set it: show_config() must not claim normreg's setting for it."""
    path = _run("import json, normreg; print(json.dumps(normreg.show_config(mode='dicts')['BLAS']['path']))")
    if not path:
        pytest.skip("the OpenBLAS library's path is unknown here")
    assert os.path.isfile(path)
    out = _run(EARLIER, path)
    assert os.path.realpath(out["path"]) == os.path.realpath(path)
    assert out["timeout"].startswith("OpenBLAS's default"), out
