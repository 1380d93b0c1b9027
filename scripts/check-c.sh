#!/usr/bin/env bash
# Static checks of the C sources, fast enough for every CI run:
#
#   scripts/check-c.sh aarch64
#       Cross-compiles every C file for aarch64 with aarch64-linux-gnu-gcc and with clang
#       --target=aarch64-linux-gnu (when clang is installed), warnings as errors: the kernels
#       as the neon tier, the kernels' runtime, and the binding (with this
#       machine's Python and NumPy headers, which describe the same LP64 C ABI; only
#       pyconfig.h is taken by its explicit path, so a multiarch include directory works).
#       The flags mirror setup.py's COMPILE_ARGS.
#   scripts/check-c.sh tiers BUILD_TEMP
#       Inspects the objects of an x86-64 build (setup.py's build_temp directory): every
#       external function of a tier's object carries the tier's suffix (nothing a tier exports
#       can be reached before the CPU check), the baseline tier and the once-compiled files
#       contain no AVX instruction, and the avx2 tier no AVX-512 instruction.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

aarch64() {
    command -v aarch64-linux-gnu-gcc >/dev/null ||
        { echo "check-c: needs aarch64-linux-gnu-gcc (apt-get install gcc-aarch64-linux-gnu)" >&2; exit 1; }
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    cross aarch64-linux-gnu-gcc
    if command -v clang >/dev/null; then
        cross clang --target=aarch64-linux-gnu
    fi
}

# cross COMPILER [ARGS...]: every C file compiled for aarch64
cross() {
    local pyconfig numpy_inc py_inc blas_inc
    pyconfig="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_config_h_filename())')"
    py_inc="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
    numpy_inc="$("$PYTHON" -c 'import numpy; print(numpy.get_include())')"
    blas_inc="$("$PYTHON" -c 'import scipy_openblas32 as s; print(s.get_include_dir())')"
    mkdir -p "$tmp/include"
    printf '#include "%s"\n' "$pyconfig" >"$tmp/include/pyconfig.h"
    local flags=(-std=gnu11 -O3 -fno-math-errno -ffp-contract=off -fvisibility=hidden -fPIC
                 -Wall -Wextra -Wno-unused-parameter -Werror -fopenmp
                 -DNR_BLAS_SCIPY_OPENBLAS=1 -DNPY_NO_DEPRECATED_API=NPY_1_23_API_VERSION
                 -DNPY_TARGET_VERSION=NPY_1_23_API_VERSION
                 -I"$tmp/include" -I"$py_inc" -I"$numpy_inc" -I"$blas_inc" -Icsrc -Icsrc/kernels)
    local n=0 f
    for f in csrc/kernels/*.c csrc/*.c; do
        case "$f" in
            csrc/kernels/nr_*.c) tier=() ;;               # the kernels' runtime: once
            csrc/kernels/*.c) tier=(-DNR_TIER=neon) ;;    # a kernel family: per tier
            *) tier=() ;;                                 # the binding
        esac
        "$@" "${flags[@]}" "${tier[@]}" -c "$f" -o "$tmp/$(basename "$f" .c).o"
        n=$((n + 1))
    done
    echo "check-c: aarch64: $n C files compiled with $* ($("$1" -dumpversion)) -Werror, no warnings"
}

tiers() {
    local temp="$1" bad=0 tier sym
    [ -d "$temp/tier-baseline" ] || { echo "check-c: no tier objects under $temp" >&2; exit 1; }
    for tier in avx512 avx2 baseline; do
        # external functions without the suffix (data such as clang's OpenMP reduction lock,
        # .gomp_critical_user_.reduction.var, runs nothing)
        sym="$(nm -g --defined-only "$temp/tier-$tier"/csrc/kernels/*.o |
               awk 'NF == 3 && $2 ~ /^[TWi]$/ {print $3}' | grep -v "_${tier}\$" || true)"
        if [ -n "$sym" ]; then
            echo "check-c: tier $tier exports symbols without its suffix: $sym" >&2
            bad=1
        fi
    done
    local once
    once="$(find "$temp" -name '*.o' -not -path '*/tier-*')"
    # shellcheck disable=SC2086
    if objdump -d "$temp"/tier-baseline/csrc/kernels/*.o $once | grep -qE '%[yz]mm'; then
        echo "check-c: AVX registers in the baseline tier or the once-compiled files" >&2
        bad=1
    fi
    if objdump -d "$temp"/tier-avx2/csrc/kernels/*.o | grep -qE '%zmm|%k[0-7]'; then
        echo "check-c: AVX-512 instructions in the avx2 tier" >&2
        bad=1
    fi
    [ "$bad" = 0 ] || exit 1
    echo "check-c: tiers: suffixed exports only; no AVX in baseline/once objects, no AVX-512 in avx2"
}

case "${1:-}" in
    aarch64) aarch64 ;;
    tiers) tiers "${2:?build_temp directory}" ;;
    *) echo "usage: $0 aarch64 | tiers BUILD_TEMP" >&2; exit 2 ;;
esac
