#!/usr/bin/env bash
# Build normreg for aarch64 and run its kernel tests (tests/kernel_tests.txt) and CPU-tier
# tests (tests/test_cpu_dispatch.py) under emulation: a Debian bookworm arm64 system made with debootstrap, run through
# qemu-user-static, with Python, NumPy, pytest, gcc and OpenBLAS from Debian's arm64
# packages; the build requirements (setuptools >= 77, NumPy >= 2) come from PyPI as wheels
# fetched by the host's pip. The extension is built inside it with Debian's aarch64 gcc and
# OpenBLAS (NORMREG_BLAS=system), so the build probes, the NEON tier and the kernels all run
# as on an arm64 machine, and tested with Debian's NumPy 1.24. Prints the pytest summary and
# the time taken.
#
#   sudo bash scripts/test-aarch64.sh                 # the kernel tests
#   sudo bash scripts/test-aarch64.sh -k layer_norm   # extra pytest arguments
#
# Needs root (debootstrap, chroot, mounting /proc), and the Debian packages
# qemu-user-static, binfmt-support and debootstrap. The arm64 system is cached in
# $NORMREG_AARCH64_ROOT (default: $XDG_CACHE_HOME/normreg/aarch64-bookworm, or
# ~/.cache/...), outside the repository: the first run downloads and installs it (minutes),
# later runs reuse it. Delete that directory to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

root="${NORMREG_AARCH64_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/normreg/aarch64-bookworm}"
mirror="${NORMREG_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages="python3,python3-dev,python3-venv,python3-numpy,python3-pytest,libopenblas-dev"
packages="$packages,pkg-config,gcc,libc6-dev"
PYTHON="${PYTHON:-python3}"

say() { echo "test-aarch64: $*"; }
die() { echo "test-aarch64: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot)"
for tool in qemu-aarch64-static debootstrap update-binfmts; do
    command -v "$tool" >/dev/null || die "needs $tool (apt-get install qemu-user-static binfmt-support debootstrap)"
done
start=$(date +%s)

# arm64 executables run through qemu-aarch64-static; Debian registers it with the F flag, so
# it also works inside the chroot without a copy of qemu there.
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    [ -e /proc/sys/fs/binfmt_misc/status ] ||
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    update-binfmts --enable qemu-aarch64
fi

if [ ! -e "$root/.normreg-ready" ]; then
    say "creating the arm64 Debian bookworm system in $root (once; a few minutes)"
    rm -rf "$root"
    mkdir -p "$root"
    debootstrap --arch=arm64 --variant=minbase --include="$packages" bookworm "$root" "$mirror" \
        >"$root.debootstrap.log" 2>&1 || { tail -20 "$root.debootstrap.log"; die "debootstrap failed"; }
    touch "$root/.normreg-ready"
fi
# The build requirements (setuptools >= 77, NumPy >= 2, scipy-openblas32) as PyPI's aarch64
# wheels, fetched by the host's pip, for pip's isolated build environment; the tests then run
# with Debian's NumPy (1.24) and pytest, seen through a venv with the system site packages,
# and hypothesis from PyPI.
reqs="numpy>=2 scipy-openblas32>=0.3.27 | setuptools>=77 packaging>=24.2 | hypothesis"
if [ "$(cat "$root/opt/venv/.normreg-ready" 2>/dev/null)" != "$reqs" ]; then
    rm -rf "$root/opt/wheels" "$root/opt/test-wheels" "$root/opt/venv"
    mkdir -p "$root/opt/wheels" "$root/opt/test-wheels"
    "$PYTHON" -m pip download --quiet --only-binary=:all: --no-deps -d "$root/opt/wheels" \
        --platform manylinux2014_aarch64 --python-version 3.11 --implementation cp --abi cp311 \
        "numpy>=2" "scipy-openblas32>=0.3.27"
    "$PYTHON" -m pip download --quiet --only-binary=:all: --no-deps -d "$root/opt/wheels" \
        "setuptools>=77" "packaging>=24.2"
    # hypothesis (the exactness tests draw their cases with it), its aarch64 wheel
    "$PYTHON" -m pip download --quiet --only-binary=:all: -d "$root/opt/test-wheels" \
        --platform manylinux2014_aarch64 --python-version 3.11 --implementation cp --abi cp311 \
        hypothesis
    chroot "$root" /usr/bin/python3 -m venv --system-site-packages /opt/venv
    chroot "$root" /opt/venv/bin/pip install --quiet --no-index --find-links /opt/test-wheels hypothesis
    echo "$reqs" >"$root/opt/venv/.normreg-ready"
fi
ready=$(date +%s)

cleanup() {
    umount "$root/proc" 2>/dev/null || true
    umount "$root/dev" 2>/dev/null || true
}
trap cleanup EXIT
mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
mountpoint -q "$root/dev" || mount --bind /dev "$root/dev"

# this working tree (committed or not), without build products
src=/opt/normreg-src
rm -rf "${root:?}$src"
mkdir -p "$root$src"
tar -C "$repo" --exclude=./build --exclude=./.git --exclude='*.so' --exclude=__pycache__ \
    --exclude=./.venv --exclude=./dist -cf - . | tar -C "$root$src" -xf -

say "building for $(chroot "$root" uname -m) with $(chroot "$root" gcc --version | head -1)"
if ! chroot "$root" /usr/bin/env -i PATH=/opt/venv/bin:/usr/bin:/bin HOME=/root \
        NORMREG_BLAS=system sh -c "cd $src && pip install -v --no-index --find-links /opt/wheels --no-deps ." \
        >"$root/opt/build.log" 2>&1; then
    tail -40 "$root/opt/build.log"
    die "build failed (log: $root/opt/build.log)"
fi
warnings=$(grep -c "csrc/.*warning:" "$root/opt/build.log" || true)
built=$(date +%s)
say "built in $((built - ready)) s ($warnings compiler warnings; log: $root/opt/build.log)"

# the kernel tests, and the CPU-tier tests (NORMREG_CPU_CAPABILITY=neon or baseline)
tests="$(grep -v '^#' tests/kernel_tests.txt | sed "s|^|$src/tests/|" | tr '\n' ' ')"
tests="$tests $src/tests/test_cpu_dispatch.py"
chroot "$root" /usr/bin/env -i PATH=/opt/venv/bin:/usr/bin:/bin HOME=/root \
    python -c "import normreg; print('test-aarch64: tier', normreg.cpu_capability()); normreg.show_config()"
status=0
# shellcheck disable=SC2086
chroot "$root" /usr/bin/env -i PATH=/opt/venv/bin:/usr/bin:/bin HOME=/root \
    sh -c "cd /tmp && python -m pytest -q -p no:cacheprovider $tests $*" | tail -15 || status=$?
end=$(date +%s)
say "machine setup $((ready - start)) s, build $((built - ready)) s, tests $((end - built)) s, total $((end - start)) s"
exit "$status"
