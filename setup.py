"""Build normreg's C extension (normreg._C) against NumPy and OpenBLAS.

CPU tiers: every kernel family file (csrc/kernels/<family>.c) is compiled once per CPU tier
of the target architecture, with that tier's flags (TIERS below), and the extension picks
the best tier the CPU supports when it is imported (csrc/kernels/nr_dispatch.c). The binding
(csrc/*.c) and the kernels' runtime (csrc/kernels/nr_*.c: threads, Philox, the dispatch) are
compiled once with the baseline flags. Never -march=native: one build runs on every CPU of
its architecture.

OpenMP: used when the compiler compiles and links a small OpenMP program with -fopenmp (or
with no extra flag, when CFLAGS/CPPFLAGS and LDFLAGS already enable it, as with Apple's
clang and Homebrew's libomp); otherwise the build goes on without it (kernels on one
thread) and says so in one line.

BLAS is chosen with the environment variable NORMREG_BLAS:

* ``scipy-openblas`` (default): OpenBLAS from PyPI's ``scipy-openblas32`` build
  requirement. Its shared library is copied into the installed package
  (``normreg/.libs/``) and found through an ``$ORIGIN``-relative rpath (``@loader_path``
  on macOS), so the installed extension needs no LD_LIBRARY_PATH and no runtime
  dependency but NumPy.
* ``system``: an OpenBLAS found by ``pkg-config`` (package name from
  NORMREG_BLAS_PKG, default ``openblas``). If pkg-config cannot find it, the
  build stops with an error instead of falling back.

NORMREG_SANITIZE=1 builds with AddressSanitizer and UndefinedBehaviorSanitizer.

How the extension was built (compiler, flags, tiers, OpenMP, BLAS) is written next to it as
normreg/_build_info.py, which normreg.show_config() reports.
"""

import concurrent.futures
import glob
import os
import platform
import pprint
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import numpy
import setuptools
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class BuildError(SystemExit):
    pass


if int(setuptools.__version__.split(".")[0]) < 77:  # pyproject's SPDX license string
    raise BuildError(
        f"normreg needs setuptools >= 77, this is {setuptools.__version__} "
        "(with --no-build-isolation: pip install --upgrade 'setuptools>=77')"
    )

if int(numpy.__version__.split(".")[0]) < 2:
    raise BuildError(
        f"normreg is built against NumPy >= 2, this is {numpy.__version__} (the "
        "extension still runs with NumPy >= 1.23.2: NPY_TARGET_VERSION below)"
    )

from setuptools.modified import newer_group  # noqa: E402 (setuptools >= 69)

# CPU tiers of each target architecture, best first, with their compiler flags.
TIERS = {
    "x86_64": [
        ("avx512", ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx2", "-mfma"]),
        ("avx2", ["-mavx2", "-mfma"]),
        ("baseline", []),
    ],
    "aarch64": [("neon", [])],  # NEON is part of every AArch64 CPU: the baseline
    "other": [("baseline", [])],
}

# -std=gnu11: the kernels use GNU statement expressions (NR_MIN) and __typeof__, which gcc
# and clang both have. -ffp-contract=off: no a * b + c fused behind the code's back, so the
# tiers and the two compilers round alike (gnu11 would otherwise let gcc fuse wherever the
# tier has FMA). -Wno-unused-parameter: the binding's functions take CPython's fixed
# signatures (self, args), as CPython and NumPy build their own modules. -fvisibility=hidden:
# the module exports PyInit__C only, and calls between our files skip the PLT.
COMPILE_ARGS = [
    "-std=gnu11",
    "-O3",
    "-fno-math-errno",
    "-ffp-contract=off",
    "-fvisibility=hidden",
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
]

KERNELS = "csrc/kernels"
ONCE_SOURCES = sorted(glob.glob("csrc/*.c")) + sorted(glob.glob(f"{KERNELS}/nr_*.c"))
TIER_SOURCES = sorted(set(glob.glob(f"{KERNELS}/*.c")) - set(glob.glob(f"{KERNELS}/nr_*.c")))

OPENMP_PROBE = r"""
#include <omp.h>
#ifndef _OPENMP
#error "no OpenMP"
#endif
int main(void)
{
    int n = 0;
#pragma omp parallel reduction(+ : n)
    n += omp_get_thread_num() >= 0;
    return n > 0 ? 0 : 1;
}
"""

NO_OPENMP_NOTE = (
    "normreg: {cc} does not build OpenMP programs (-fopenmp): building without OpenMP, so "
    "the kernels will run on one thread. For threads: Debian/Ubuntu: install the "
    "compiler's OpenMP (gcc: libgomp, part of gcc; clang: libomp-dev); macOS: "
    "`brew install libomp` and the CPPFLAGS and LDFLAGS of docs/building.md (OpenMP)."
)


def _scipy_openblas():
    try:
        import scipy_openblas32
    except ImportError as exc:
        raise BuildError(
            "NORMREG_BLAS=scipy-openblas needs the build requirement "
            "'scipy-openblas32' (pip installs it from pyproject.toml; with "
            "--no-build-isolation install it first)"
        ) from exc
    lib_dir = scipy_openblas32.get_lib_dir()
    names = ["libscipy_openblas.so", "libscipy_openblas.dylib"]
    found = [os.path.join(lib_dir, n) for n in names if os.path.exists(os.path.join(lib_dir, n))]
    if not found:
        raise BuildError(f"scipy-openblas32 has none of {names} in {lib_dir}")
    origin = "@loader_path" if sys.platform == "darwin" else "$ORIGIN"
    return {
        "name": f"scipy-openblas32 {getattr(scipy_openblas32, '__version__', '?')}",
        "include_dirs": [scipy_openblas32.get_include_dir()],
        "library_dirs": [lib_dir],
        "libraries": ["scipy_openblas"],
        "define_macros": [("NR_BLAS_SCIPY_OPENBLAS", "1")],
        "extra_link_args": [f"-Wl,-rpath,{origin}/.libs"],
        "bundle": found[:1],
    }


def _system_openblas():
    pkg = os.environ.get("NORMREG_BLAS_PKG", "openblas")
    try:
        cflags = subprocess.check_output(["pkg-config", "--cflags", pkg], text=True).split()
        libs = subprocess.check_output(["pkg-config", "--libs", pkg], text=True).split()
        version = subprocess.check_output(["pkg-config", "--modversion", pkg], text=True).strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BuildError(
            f"NORMREG_BLAS=system: pkg-config could not find '{pkg}' ({exc}). "
            "Install OpenBLAS with its pkg-config file (Debian: libopenblas-dev) "
            "or unset NORMREG_BLAS to use scipy-openblas32."
        ) from exc
    libdirs = [f[2:] for f in libs if f.startswith("-L")]
    return {
        "name": f"system {pkg} {version} (pkg-config)",
        "include_dirs": [f[2:] for f in cflags if f.startswith("-I")],
        "library_dirs": libdirs,
        "libraries": [f[2:] for f in libs if f.startswith("-l")],
        "define_macros": [("NR_BLAS_SYSTEM", "1")],
        "extra_link_args": [f"-Wl,-rpath,{d}" for d in libdirs],
        "bundle": [],
    }


def blas_config():
    choice = os.environ.get("NORMREG_BLAS", "scipy-openblas")
    if choice == "scipy-openblas":
        return _scipy_openblas()
    if choice == "system":
        return _system_openblas()
    raise BuildError(f"NORMREG_BLAS must be 'scipy-openblas' or 'system', not {choice!r}")


class build_ext_tiers(build_ext):
    """build_ext that compiles the kernel files once per CPU tier, probes OpenMP, copies the
    bundled BLAS library next to the extension and records how it was built.

    The build configuration (BLAS choice, compiler, flags) is recorded in the build
    directory; when it changes, everything is recompiled and stale bundled libraries are
    removed, so switching NORMREG_BLAS or CC never reuses an old build.
    """

    def build_extensions(self):
        # self.compiler exists from here on: probe it before compiling anything
        self.arch = self._probe_arch()
        self.openmp_flags = self._probe_openmp()
        self.tiers = TIERS[self.arch]
        stamp = os.path.join(self.build_temp, "normreg-build-config.txt")
        config = repr(
            (
                sorted((k, v) for k, v in blas.items()),
                self.compiler.compiler_so,
                COMPILE_ARGS,
                extra_args,
                self.openmp_flags,
                self.tiers,
            )
        )
        old = None
        if os.path.exists(stamp):
            with open(stamp) as f:
                old = f.read()
        if old != config:
            self.force = True
        super().build_extensions()
        os.makedirs(self.build_temp, exist_ok=True)
        with open(stamp, "w") as f:
            f.write(config)

    def build_extension(self, ext):
        compile_args = COMPILE_ARGS + self.openmp_flags["compile"] + extra_args["compile"]
        ext.extra_compile_args = compile_args
        ext.extra_link_args = self.openmp_flags["link"] + extra_args["link"] + blas["extra_link_args"]
        ext_path = self.get_ext_fullpath(ext.name)
        if self.force or newer_group(ext.sources + ext.tier_sources + ext.depends, ext_path):
            ext.extra_objects = self._compile_tiers(ext, compile_args)
        super().build_extension(ext)
        self._bundle_blas(ext, ext_path)
        self._write_build_info(ext, ext_path, compile_args)

    def _compile_tiers(self, ext, compile_args):
        """The kernel files compiled for every tier, in parallel: [object paths]."""
        jobs = [(tier, flags, src) for tier, flags in self.tiers for src in ext.tier_sources]

        def compile_one(job):
            tier, flags, src = job
            return self.compiler.compile(
                [src],
                output_dir=os.path.join(self.build_temp, "tier-" + tier),
                macros=ext.define_macros + [("NR_TIER", tier)],
                include_dirs=ext.include_dirs,
                extra_postargs=compile_args + flags,
                depends=ext.depends,
                debug=self.debug,
            )

        workers = (
            self.parallel if isinstance(self.parallel, int) and self.parallel > 0 else (os.cpu_count() or 1)
        )
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            return [obj for objs in pool.map(compile_one, jobs) for obj in objs]

    def _bundle_blas(self, ext, ext_path):
        libs_dir = os.path.join(os.path.dirname(ext_path), ".libs")
        keep = {os.path.basename(lib) for lib in ext.bundle}
        if os.path.isdir(libs_dir):
            for name in os.listdir(libs_dir):
                if name not in keep:
                    os.remove(os.path.join(libs_dir, name))
        for lib in ext.bundle:
            os.makedirs(libs_dir, exist_ok=True)
            shutil.copy2(lib, libs_dir)

    def _write_build_info(self, ext, ext_path, compile_args):
        info = {
            "compiler_command": list(self.compiler.compiler_so),
            "compile_args": compile_args,
            "define_macros": [f"{k}={v}" if v is not None else k for k, v in ext.define_macros],
            "link_args": ext.extra_link_args,
            "arch": self.arch,
            "tiers": {tier: flags for tier, flags in self.tiers},
            "openmp": self.openmp_flags,
            "blas": blas["name"],
            "blas_bundled": [os.path.basename(lib) for lib in ext.bundle],
            "numpy": numpy.__version__,
            "python": platform.python_version(),
            "platform": sysconfig.get_platform(),
        }
        path = os.path.join(os.path.dirname(ext_path), "_build_info.py")
        with open(path, "w") as f:
            f.write('"""How normreg._C was built (written by setup.py; see normreg.show_config())."""\n')
            f.write("BUILD_INFO = " + pprint.pformat(info, width=96, sort_dicts=False) + "\n")

    # ---- compiler probes (quiet: their failures are answers, not build errors) ----------

    def _run_quiet(self, cmd, cwd):
        try:
            return (
                subprocess.run(
                    cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                ).returncode
                == 0
            )
        except OSError:
            return False

    def _try_compile(self, source, flags, link=False):
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write(source)
            obj = os.path.join(tmp, "probe.o")
            if not self._run_quiet(self.compiler.compiler_so + flags + ["-c", src, "-o", obj], tmp):
                return False
            if not link:
                return True
            linker = getattr(self.compiler, "linker_exe", None) or self.compiler.compiler_so[:1]
            ldflags = shlex.split(os.environ.get("LDFLAGS", ""))
            return self._run_quiet(linker + [obj, "-o", os.path.join(tmp, "probe")] + flags + ldflags, tmp)

    def _probe_arch(self):
        for arch in ("x86_64", "aarch64"):
            source = f"#ifndef __{arch}__\n#error not {arch}\n#endif\nint normreg_probe;\n"
            if self._try_compile(source, []):
                return arch
        return "other"

    def _probe_openmp(self):
        """{'compile': [...], 'link': [...], 'enabled': bool, 'simd': bool}"""
        for flags in (["-fopenmp"], []):
            if self._try_compile(OPENMP_PROBE, flags, link=True):
                return {"enabled": True, "compile": flags, "link": flags, "simd": True}
        cc = os.path.basename(self.compiler.compiler_so[0])
        print(NO_OPENMP_NOTE.format(cc=cc), flush=True)
        # `omp simd` hints without the runtime, where the compiler has them
        if self._try_compile("int main(void) { return 0; }\n", ["-fopenmp-simd"]):
            return {"enabled": False, "compile": ["-fopenmp-simd"], "link": [], "simd": True}
        return {"enabled": False, "compile": ["-Wno-unknown-pragmas"], "link": [], "simd": False}


if sys.platform == "darwin":
    # One architecture per build: the tiers and the bundled OpenBLAS are per architecture,
    # so a universal2 Python builds for the machine's own unless ARCHFLAGS says otherwise.
    os.environ.setdefault("ARCHFLAGS", f"-arch {platform.machine()}")

blas = blas_config()
extra_args = {"compile": [], "link": []}
if os.environ.get("NORMREG_SANITIZE") == "1":
    extra_args["compile"] += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g", "-O1"]
    extra_args["link"] += ["-fsanitize=address,undefined"]

ext = Extension(
    "normreg._C",
    sources=ONCE_SOURCES,
    depends=TIER_SOURCES + glob.glob("csrc/*.h") + glob.glob(f"{KERNELS}/*.h"),
    include_dirs=[numpy.get_include(), "csrc", KERNELS] + blas["include_dirs"],
    library_dirs=blas["library_dirs"],
    libraries=blas["libraries"],
    define_macros=blas["define_macros"]
    + [("NPY_NO_DEPRECATED_API", "NPY_1_23_API_VERSION"), ("NPY_TARGET_VERSION", "NPY_1_23_API_VERSION")],
)
ext.tier_sources = TIER_SOURCES
ext.bundle = blas["bundle"]

setup(
    ext_modules=[ext],
    cmdclass={"build_ext": build_ext_tiers},
    package_data={"normreg": [".libs/*.so*", ".libs/*.dylib"]},
)
