"""Build normreg's C extension (normreg._C) against NumPy and OpenBLAS.

BLAS is chosen with the environment variable NORMREG_BLAS:

* ``scipy-openblas`` (default): OpenBLAS from PyPI's ``scipy-openblas32`` build
  requirement. Its shared library is copied into the installed package
  (``normreg/.libs/``) and found through an ``$ORIGIN``-relative rpath, so the
  installed extension needs no LD_LIBRARY_PATH and no runtime dependency but NumPy.
* ``system``: an OpenBLAS found by ``pkg-config`` (package name from
  NORMREG_BLAS_PKG, default ``openblas``). If pkg-config cannot find it, the
  build stops with an error instead of falling back.

NORMREG_SANITIZE=1 builds with AddressSanitizer and UndefinedBehaviorSanitizer.
"""
import glob
import os
import shutil
import subprocess

import numpy
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class BuildError(SystemExit):
    pass


def _scipy_openblas():
    try:
        import scipy_openblas32
    except ImportError as exc:
        raise BuildError(
            "NORMREG_BLAS=scipy-openblas needs the build requirement "
            "'scipy-openblas32' (pip installs it from pyproject.toml; with "
            "--no-build-isolation install it first)") from exc
    lib_dir = scipy_openblas32.get_lib_dir()
    lib_file = os.path.join(lib_dir, "libscipy_openblas.so")
    if not os.path.exists(lib_file):
        raise BuildError(f"scipy-openblas32 has no {lib_file}")
    return {
        "include_dirs": [scipy_openblas32.get_include_dir()],
        "library_dirs": [lib_dir],
        "libraries": ["scipy_openblas"],
        "define_macros": [("NR_BLAS_SCIPY_OPENBLAS", "1")],
        "extra_link_args": ["-Wl,-rpath,$ORIGIN/.libs"],
        "bundle": [lib_file],
    }


def _system_openblas():
    pkg = os.environ.get("NORMREG_BLAS_PKG", "openblas")
    try:
        cflags = subprocess.check_output(["pkg-config", "--cflags", pkg], text=True).split()
        libs = subprocess.check_output(["pkg-config", "--libs", pkg], text=True).split()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BuildError(
            f"NORMREG_BLAS=system: pkg-config could not find '{pkg}' ({exc}). "
            "Install OpenBLAS with its pkg-config file (Debian: libopenblas-dev) "
            "or unset NORMREG_BLAS to use scipy-openblas32.") from exc
    libdirs = [f[2:] for f in libs if f.startswith("-L")]
    return {
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


class build_ext_bundling_blas(build_ext):
    """build_ext that copies the bundled BLAS library next to the extension.

    The build configuration (BLAS choice, sanitizers) is recorded in the build
    directory; when it changes, everything is recompiled and stale bundled
    libraries are removed, so switching NORMREG_BLAS never reuses an old build.
    """

    def run(self):
        stamp = os.path.join(self.build_temp, "normreg-build-config.txt")
        config = repr((sorted(blas.items()), compile_args, link_args))
        old = open(stamp).read() if os.path.exists(stamp) else None
        if old != config:
            self.force = True
        super().run()
        for ext in self.extensions:
            libs_dir = os.path.join(os.path.dirname(self.get_ext_fullpath(ext.name)), ".libs")
            if os.path.isdir(libs_dir):
                for name in os.listdir(libs_dir):
                    if name not in {os.path.basename(lib) for lib in ext.bundle}:
                        os.remove(os.path.join(libs_dir, name))
            for lib in ext.bundle:
                os.makedirs(libs_dir, exist_ok=True)
                shutil.copy2(lib, libs_dir)
        os.makedirs(self.build_temp, exist_ok=True)
        with open(stamp, "w") as f:
            f.write(config)


blas = blas_config()
compile_args = ["-std=c11", "-O3", "-fopenmp", "-fno-math-errno", "-Wall", "-Wno-unknown-pragmas"]
link_args = ["-fopenmp"] + blas["extra_link_args"]
if os.environ.get("NORMREG_SANITIZE") == "1":
    compile_args += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g", "-O1"]
    link_args += ["-fsanitize=address,undefined"]

ext = Extension(
    "normreg._C",
    sources=sorted(glob.glob("csrc/*.c")) + sorted(glob.glob("csrc/kernels/*.c")),
    depends=glob.glob("csrc/*.h") + glob.glob("csrc/kernels/*.h"),
    include_dirs=[numpy.get_include(), "csrc", "csrc/kernels"] + blas["include_dirs"],
    library_dirs=blas["library_dirs"],
    libraries=blas["libraries"],
    define_macros=blas["define_macros"] + [("NPY_NO_DEPRECATED_API", "NPY_1_23_API_VERSION")],
    extra_compile_args=compile_args,
    extra_link_args=link_args,
)
ext.bundle = blas["bundle"]

setup(ext_modules=[ext], cmdclass={"build_ext": build_ext_bundling_blas},
      package_data={"normreg": [".libs/*.so*"]})
