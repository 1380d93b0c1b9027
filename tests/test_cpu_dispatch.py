"""CPU tiers: NORMREG_CPU_CAPABILITY and cpu_capability(), dropout masks bit-identical on
every tier and thread count, the kernel tests (kernel_tests.txt) on every other tier this
CPU supports, and the CPU check itself on emulated CPUs without AVX-512 or AVX2.

The tier is chosen once, at import, so every case runs in a subprocess of its own."""

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from reference import dropout_keep_philox as reference_keep

import normreg
from normreg import _C

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = "NORMREG_CPU_CAPABILITY"
TIERS = _C.cpu_tiers()
SUPPORTED = TIERS["supported"]
COMPILED = TIERS["compiled"]
ACTIVE = normreg.cpu_capability()
X86_64 = COMPILED == ["avx512", "avx2", "baseline"]
QEMU = shutil.which("qemu-x86_64-static") or shutil.which("qemu-x86_64")


def kernel_test_files():
    with open(os.path.join(HERE, "kernel_tests.txt")) as f:
        names = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    return [os.path.join(HERE, name) for name in names]


def run(args, tier=None, prefix=(), cwd=None, timeout=600):
    """`python -W always <args>` with NORMREG_CPU_CAPABILITY=tier (unset for None). Under an
    emulator (a `prefix`) without OPENBLAS_CORETYPE: a kernel set the host's environment forces
    (e.g. Haswell's) is one the emulated CPU may lack, and NumPy's OpenBLAS, loaded before
    normreg, then dies of an illegal instruction on import."""
    drop = (ENV, "OPENBLAS_CORETYPE") if prefix else (ENV,)
    env = {k: v for k, v in os.environ.items() if k not in drop}
    if tier is not None:
        env[ENV] = tier
    return subprocess.run(
        [*prefix, sys.executable, "-W", "always", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def tier_and_warnings(tier=None, prefix=(), tmp_path=None):
    out = run(["-c", "import normreg; print(normreg.cpu_capability())"], tier, prefix, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if "Warning" in line]
    return out.stdout.strip(), warnings


def test_tier_lists_are_consistent():
    assert SUPPORTED and set(SUPPORTED) <= set(COMPILED)
    assert ACTIVE in SUPPORTED
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        assert COMPILED == ["avx512", "avx2", "baseline"]
        assert SUPPORTED[-1] == "baseline"
    elif machine in ("aarch64", "arm64"):
        assert COMPILED == SUPPORTED == ["neon"]


def test_default_is_the_best_supported_tier(tmp_path):
    tier, warnings = tier_and_warnings(None, tmp_path=tmp_path)
    assert tier == SUPPORTED[0]
    assert warnings == []


@pytest.mark.parametrize("tier", SUPPORTED)
def test_each_supported_tier_can_be_chosen(tier, tmp_path):
    got, warnings = tier_and_warnings(tier, tmp_path=tmp_path)
    assert (got, warnings) == (tier, [])


@pytest.mark.skipif("neon" not in COMPILED, reason="aarch64 only")
def test_baseline_names_the_neon_tier_on_aarch64(tmp_path):
    assert tier_and_warnings("baseline", tmp_path=tmp_path) == ("neon", [])


@pytest.mark.parametrize("value", ["avx1024", "AVX2", "avx2 ", "sse2", "default"])
def test_unknown_value_warns_and_uses_the_best_tier(value, tmp_path):
    tier, warnings = tier_and_warnings(value, tmp_path=tmp_path)
    assert tier == SUPPORTED[0]
    assert len(warnings) == 1 and "RuntimeWarning" in warnings[0]
    assert f"{ENV}={value} is not a CPU tier" in warnings[0]
    assert TIERS["choices"] in warnings[0]


def test_tier_of_another_architecture_warns(tmp_path):
    other = "avx2" if "neon" in COMPILED else "neon"
    tier, warnings = tier_and_warnings(other, tmp_path=tmp_path)
    assert tier == SUPPORTED[0] and len(warnings) == 1 and f"{ENV}={other}" in warnings[0]


def test_more_than_the_cpu_has_warns(tmp_path):
    beyond = [t for t in COMPILED if t not in SUPPORTED]
    if not beyond:
        pytest.skip("this CPU runs every tier of the build (see the emulated-CPU tests)")
    tier, warnings = tier_and_warnings(beyond[0], tmp_path=tmp_path)
    assert tier == SUPPORTED[0]
    assert len(warnings) == 1 and "asks for more than this CPU supports" in warnings[0]


def test_warning_turned_into_an_error_fails_the_import_cleanly(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != ENV}
    env[ENV] = "avx1024"
    out = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", "import normreg"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1  # an exception, not a signal
    assert "RuntimeWarning" in out.stderr and f"{ENV}=avx1024" in out.stderr


# Dropout masks: sizes around the 256-element blocks and the threading threshold (a thread
# per 256 KiB of traffic), several p, seeds with high bits, offsets past 2^32.
MASK_CASES = [
    (n, p, seed, offset)
    for n in (1, 31, 255, 256, 257, 4099, 70001, 300000)
    for p, seed, offset in ((0.1, 7, 0), (0.5, (1 << 63) + 12345, (1 << 40) + 7), (0.9, 2**32 - 1, 2**32 + 3))
]

MASK_SCRIPT = """
import hashlib, sys
import numpy as np
import normreg
from normreg import _C
cases = {cases!r}
for threads in (1, 2, 3):
    normreg.set_num_threads(threads)
    digest = hashlib.sha256()
    for n, p, seed, offset in cases:
        x = np.ones(n, dtype=np.float32)
        digest.update(_C.dropout_forward(x, p, seed, offset, None)[1].tobytes())
    print(normreg.cpu_capability(), threads, digest.hexdigest())
"""


def expected_mask_digest():
    digest = hashlib.sha256()
    for n, p, seed, offset in MASK_CASES:
        digest.update(np.packbits(reference_keep(n, p, seed, offset), bitorder="little").tobytes())
    return digest.hexdigest()


def mask_digests(out):
    assert out.returncode == 0, out.stderr
    return [line.split() for line in out.stdout.splitlines()]


def test_dropout_masks_are_identical_on_every_tier_and_thread_count(tmp_path):
    expected = expected_mask_digest()
    script = MASK_SCRIPT.format(cases=MASK_CASES)
    for tier in SUPPORTED:
        lines = mask_digests(run(["-c", script], tier, cwd=tmp_path))
        assert [line[:2] for line in lines] == [[tier, "1"], [tier, "2"], [tier, "3"]]
        assert [line[2] for line in lines] == [expected] * 3, tier


@pytest.mark.other_tiers
@pytest.mark.parametrize("tier", [t for t in SUPPORTED if t != ACTIVE])
def test_kernel_tests_pass_on_the_other_tiers(tier, tmp_path):
    """This run covers the active tier; the other tiers the CPU supports run the kernel
    tests in a subprocess each (marked `other_tiers`: -m "not other_tiers" leaves them out)."""
    files = kernel_test_files()
    missing = [f for f in files if not os.path.exists(f)]
    assert not missing, f"kernel_tests.txt names files that do not exist: {missing}"
    out = run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *files], tier, cwd=tmp_path)
    summary = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    assert out.returncode == 0, f"{ENV}={tier}: {summary}\n{out.stdout[-4000:]}\n{out.stderr[-2000:]}"
    assert " passed" in summary and "failed" not in summary


# The CPU check on CPUs this machine does not have: QEMU's user-mode emulation reports the
# features of the CPU model it is given, and stops with SIGILL at any instruction the model
# lacks, so these runs also show that nothing outside the chosen tier uses AVX-512 (Haswell)
# or AVX at all (Nehalem).
EMULATED_SCRIPT = """
import numpy as np
import normreg
from normreg import _C, functional as F
print("tier", normreg.cpu_capability(), " ".join(_C.cpu_tiers()["supported"]))
rng = np.random.default_rng(0)
for dtype in (np.float32, np.float64):
    x = (3 * rng.standard_normal((37, 64)) + 5).astype(dtype)
    w, b = rng.standard_normal(64).astype(dtype), rng.standard_normal(64).astype(dtype)
    y = F.layer_norm(x, (64,), w, b)[0]
    xd = x.astype(np.float64)
    ref = (xd - xd.mean(1, keepdims=True)) / np.sqrt(xd.var(1, keepdims=True) + 1e-5) * w + b
    print("layer_norm_" + dtype.__name__, float(np.abs(y - ref).max()))
cases = {cases!r}
masks = b"".join(_C.dropout_forward(np.ones(n, np.float32), p, s, o, None)[1].tobytes()
                 for n, p, s, o in cases)
import hashlib
print("masks", hashlib.sha256(masks).hexdigest())
"""


@pytest.mark.skipif(not (X86_64 and QEMU), reason="needs x86-64 and qemu-x86_64(-static)")
@pytest.mark.skipif(
    "libasan" in os.environ.get("LD_PRELOAD", ""),
    reason="AddressSanitizer does not run under QEMU's user-mode emulation",
)
@pytest.mark.parametrize("cpu,best,beyond", [("Haswell", "avx2", "avx512"), ("Nehalem", "baseline", "avx2")])
def test_cpu_check_on_emulated_cpus(cpu, best, beyond, tmp_path):
    cases = MASK_CASES[:12]  # the sizes up to 257: emulation is slow
    expected = hashlib.sha256()
    for n, p, seed, offset in cases:
        expected.update(np.packbits(reference_keep(n, p, seed, offset), bitorder="little").tobytes())
    script = textwrap.dedent(EMULATED_SCRIPT.format(cases=cases))
    for request, warned in ((None, False), (beyond, True)):
        out = run(["-c", script], request, prefix=(QEMU, "-cpu", cpu), cwd=tmp_path)
        assert out.returncode == 0, f"{cpu} {request}: {out.returncode}\n{out.stderr[-3000:]}"
        lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
        assert lines["tier"].split()[0] == best
        assert lines["tier"].split()[1:] == SUPPORTED[SUPPORTED.index(best) :]
        assert lines["masks"] == expected.hexdigest()
        assert float(lines["layer_norm_float32"]) < 1e-4
        assert float(lines["layer_norm_float64"]) < 1e-12
        warning = [line for line in out.stderr.splitlines() if "RuntimeWarning" in line]
        assert bool(warning) == warned, out.stderr
        if warned:
            assert f"{ENV}={beyond} asks for more than this CPU supports: using {best}" in warning[0]
