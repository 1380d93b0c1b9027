"""OpenMP's wait policy: normreg sets OMP_WAIT_POLICY=PASSIVE with a short spin before its
runtime loads, and says so in show_config(); when a runtime loaded earlier (as ``import torch``
loads its libgomp.so.1) serves normreg's kernels, show_config() names that, and importing
normreg says nothing. Each case runs in a fresh interpreter: the policy only acts when a
runtime loads."""

import json
import os
import subprocess
import sys

import pytest

import normreg

RUNTIME = normreg.show_config(mode="dicts")["OpenMP"]["runtime"]
pytestmark = pytest.mark.skipif(not RUNTIME, reason="built without OpenMP")

PROBE = """
import ctypes, json, os, sys, warnings
if sys.argv[1] != "-":
    ctypes.CDLL(sys.argv[1], mode=os.RTLD_GLOBAL)  # another library's runtime, loaded first
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import normreg
openmp = normreg.show_config(mode="dicts")["OpenMP"]
print(json.dumps({"policy": openmp["wait_policy"], "env": os.environ.get("OMP_WAIT_POLICY"),
                  "spin": [os.environ.get("GOMP_SPINCOUNT"), os.environ.get("KMP_BLOCKTIME")],
                  "warnings": [str(w.message) for w in caught if w.category is RuntimeWarning]}))
"""


SPIN_VARS = ("GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def _probe(first, policy=None, **spin):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", *SPIN_VARS)}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    env.update(spin)
    res = subprocess.run(
        [sys.executable, "-c", PROBE, first or "-"], env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_normreg_first_sets_passive_and_stays_quiet():
    out = _probe(None)
    assert out["env"] == "PASSIVE" and out["warnings"] == []
    assert out["policy"].startswith("PASSIVE (set by normreg")
    # with a short spin before sleeping, for both runtimes, named in show_config()
    assert out["spin"] == ["30000", "1"]
    assert "GOMP_SPINCOUNT=30000" in out["policy"] and "KMP_BLOCKTIME=1" in out["policy"]


def test_a_spin_the_user_set_is_kept():
    out = _probe(None, GOMP_SPINCOUNT="0")
    assert out["spin"] == ["0", "1"]
    assert "GOMP_SPINCOUNT" not in out["policy"] and "KMP_BLOCKTIME=1" in out["policy"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_a_runtime_loaded_first_is_named_and_nothing_is_said():
    out = _probe(RUNTIME)
    assert out["policy"].startswith("the runtime's defaults: it loaded before normreg")
    assert out["warnings"] == []


def test_the_users_policy_is_kept_and_nothing_is_said():
    out = _probe(RUNTIME, policy="active")
    assert out["env"] == "active" and out["warnings"] == [] and out["spin"] == [None, None]
    assert out["policy"] == "active (from the environment)"


def test_a_default_beyond_the_limit_is_cut_to_what_set_num_threads_takes():
    """OMP_NUM_THREADS=2000 gave get_num_threads() 2000, which set_num_threads refused
    (its limit is 1024): the default is cut to the limit, so the pair round-trips."""
    code = (
        "import normreg; n = normreg.get_num_threads(); normreg.set_num_threads(n); "
        "print(n, normreg.get_num_threads())"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "2000"}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["1024", "1024"]
