"""How the extension was built and what it runs with: show_config(), the OpenMP switch of
set_num_threads, and the installed package (bundled OpenBLAS, import from any directory)."""

import json
import os
import platform
import subprocess
import sys
import warnings

import numpy as np
import pytest

import normreg
from normreg import _C

SECTIONS = ["normreg", "CPU", "Compiler", "OpenMP", "BLAS", "Python"]


@pytest.fixture
def config():
    return normreg.show_config(mode="dicts")


def test_show_config_dicts(config):
    assert list(config) == SECTIONS
    assert config["normreg"]["version"] == normreg.__version__
    cpu = config["CPU"]
    assert cpu["capability"] == normreg.cpu_capability() == _C.cpu_capability()
    assert cpu["capability"] in cpu["supported"]
    assert set(cpu["supported"]) <= set(cpu["compiled"])
    assert cpu["NORMREG_CPU_CAPABILITY"] == (os.environ.get("NORMREG_CPU_CAPABILITY") or None)
    compiler = config["Compiler"]
    assert compiler["name"] in ("gcc", "clang")
    assert compiler["version"] and compiler["version"][0].isdigit()
    assert "-std=gnu11" in compiler["flags"] and "-O3" in compiler["flags"]
    assert "-march=native" not in " ".join(compiler["flags"] + compiler["command"])
    assert "-ffast-math" not in " ".join(compiler["flags"] + compiler["command"])
    assert set(compiler["tier_flags"]) == set(cpu["compiled"])
    if "avx2" in compiler["tier_flags"]:
        assert compiler["tier_flags"]["avx2"] == ["-mavx2", "-mfma"]
        assert compiler["tier_flags"]["baseline"] == []
    openmp = config["OpenMP"]
    assert openmp["enabled"] == (_C.build_info()["openmp_version"] > 0)
    if openmp["enabled"]:
        assert openmp["version"] >= 200805  # OpenMP 3.0 or later
        assert openmp["runtime"] and "omp" in os.path.basename(openmp["runtime"])
    else:
        assert openmp["version"] is None and openmp["runtime"] is None
    blas = config["BLAS"]
    assert blas["config"].startswith("OpenBLAS ")
    assert blas["version"] == blas["config"].split()[1]
    assert blas["threads"] == normreg.get_num_threads()
    assert config["Python"]["numpy"] == np.__version__


def test_show_config_prints_every_section(capsys, config):
    assert normreg.show_config() is None
    out = capsys.readouterr().out
    for section in SECTIONS:
        assert f"\n{section}:\n" in "\n" + out
    assert f"capability: {normreg.cpu_capability()}\n" in out
    assert f"enabled: {'yes' if config['OpenMP']['enabled'] else 'no'}\n" in out
    assert f"threads: {normreg.get_num_threads()}\n" in out


def test_show_config_bad_mode():
    with pytest.raises(ValueError, match="mode must be one of 'stdout', 'dicts'"):
        normreg.show_config(mode="yaml")
    with pytest.raises(TypeError, match="mode"):
        normreg.show_config(mode=None)


def test_blas_threads_follow_set_num_threads():
    old = normreg.get_num_threads()
    try:
        for n in (1, 2, 1):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # no-OpenMP builds warn
                normreg.set_num_threads(n)
            assert normreg.show_config(mode="dicts")["BLAS"]["threads"] == n
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            normreg.set_num_threads(old)


def test_set_num_threads_warns_once_without_openmp(monkeypatch):
    """The warning of a build without OpenMP, exercised in any build; an OpenMP build itself
    never warns."""
    old = normreg.get_num_threads()
    try:
        if normreg._HAS_OPENMP:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                normreg.set_num_threads(2)
        monkeypatch.setattr(normreg, "_HAS_OPENMP", False)
        monkeypatch.setattr(normreg, "_warned_no_openmp", False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            normreg.set_num_threads(1)  # one thread: nothing to say
            normreg.set_num_threads(3)
            normreg.set_num_threads(2)  # once only
        assert [str(w.message) for w in caught] == [
            "set_num_threads(3): normreg was built without OpenMP, so its kernels run on one "
            "thread (OpenBLAS uses 3); README's 'Install' section tells how to build with "
            "OpenMP"
        ]
        assert caught[0].category is RuntimeWarning and caught[0].filename == __file__
    finally:
        monkeypatch.undo()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            normreg.set_num_threads(old)


def test_kernels_have_one_thread_without_openmp():
    if normreg._HAS_OPENMP:
        pytest.skip("an OpenMP build")
    old = normreg.get_num_threads()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        normreg.set_num_threads(4)
    try:
        assert normreg.get_num_threads() == 4  # the setting (OpenBLAS uses it)
        x = np.random.default_rng(0).standard_normal((4096, 256)).astype(np.float32)
        y = normreg.functional.relu(x)  # a threaded kernel in an OpenMP build
        np.testing.assert_array_equal(y, np.maximum(x, 0))
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            normreg.set_num_threads(old)


@pytest.mark.parametrize("coretype", [None, "Haswell"])
def test_show_config_says_when_the_environment_chose_openblas_kernels(coretype):
    """OpenBLAS picks its kernels for the CPU when it loads, unless OPENBLAS_CORETYPE names
    a set (on x86-64 it then runs that set): show_config() names the set it runs and the
    variable as it was at import."""
    if platform.machine() not in ("x86_64", "AMD64") or "avx2" not in _C.cpu_tiers()["supported"]:
        pytest.skip("the Haswell kernel set needs an x86-64 CPU with AVX2")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    code = (
        "import json, normreg\n"
        "blas = normreg.show_config(mode='dicts')['BLAS']\n"
        "print(json.dumps([blas['core'], blas['OPENBLAS_CORETYPE']]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    core, shown = json.loads(out.stdout.splitlines()[-1])
    assert shown == coretype
    if coretype and "DYNAMIC_ARCH" in normreg.show_config(mode="dicts")["BLAS"]["config"]:
        assert core == coretype


def test_imports_from_any_directory_with_its_bundled_blas(tmp_path):
    """The installed package runs from any working directory, with no LD_LIBRARY_PATH, and
    loads the OpenBLAS it carries in normreg/.libs (when the build bundled one)."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "PYTHONPATH")}
    if "libasan" in os.environ.get("LD_PRELOAD", ""):
        pytest.skip("the sanitizer run imports the build through PYTHONPATH")
    code = (
        "import os, normreg; import numpy as np\n"
        "from normreg import functional as F\n"
        "x = np.ones((3, 4), np.float32); w = np.ones((4, 2), np.float32)\n"
        "assert (F.linear(x, w)[0] == 4).all()\n"
        "print(os.path.dirname(normreg.__file__))\n"
        "maps = open('/proc/self/maps').read() if os.path.exists('/proc/self/maps') else ''\n"
        "print(sorted({l.split()[-1] for l in maps.splitlines() if 'openblas' in l}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    package_dir, libs = out.stdout.splitlines()
    assert package_dir == os.path.dirname(normreg.__file__)
    bundled = normreg.show_config(mode="dicts")["BLAS"]["bundled"] or []
    if bundled and os.path.exists("/proc/self/maps"):
        # NumPy may load an OpenBLAS of its own (numpy.libs); ours is the bundled file
        ours = [lib for lib in eval(libs) if os.path.basename(lib) == bundled[0]]
        assert ours == [os.path.join(package_dir, ".libs", bundled[0])]
