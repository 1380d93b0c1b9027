#!/usr/bin/env bash
# Build normreg's extension with AddressSanitizer and UndefinedBehaviorSanitizer
# (NORMREG_SANITIZE=1) and run the tests under it; fail on any sanitizer report.
#
#   scripts/sanitize.sh                      # the whole test suite (what CI runs)
#   scripts/sanitize.sh -m sanitize tests    # the quick subset marked `sanitize`
#   scripts/sanitize.sh -k layer_norm tests  # any pytest arguments
#
# The sanitized build goes to build/sanitize/lib (NORMREG_SANITIZE_BUILD to change it), not
# over the normal in-place build, and the tests import it from there. Needs gcc and the
# build requirements (numpy, setuptools, scipy-openblas32) in the running Python; no apt.
# Python itself is not instrumented, so libasan is preloaded; leak detection is off
# because the interpreter keeps memory until exit by design (tests/reliability/test_leaks.py
# covers leaks).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python}"
out="${NORMREG_SANITIZE_BUILD:-build/sanitize}"
rm -rf "$out"
mkdir -p "$out/lib" "$out/reports"

echo "sanitize: building with -fsanitize=address,undefined into $out/lib"
if ! NORMREG_SANITIZE=1 "$PYTHON" setup.py -q build_ext --force --build-lib "$out/lib" \
        --build-temp "$out/tmp" >"$out/build.log" 2>&1; then
    cat "$out/build.log"
    echo "sanitize: build failed" >&2
    exit 1
fi
lib="$(cd "$out/lib" && pwd)"
(cd python && find normreg \( -name '*.py' -o -name '*.pyi' -o -name py.typed \) -exec cp --parents {} "$lib" \;)

asan="$(gcc -print-file-name=libasan.so)"
ubsan="$(gcc -print-file-name=libubsan.so)"
for so in "$asan" "$ubsan"; do
    if [ ! -e "$so" ]; then
        echo "sanitize: gcc has no $so" >&2
        exit 1
    fi
done

if [ "$#" -eq 0 ]; then
    set -- tests
fi
reports="$(cd "$out/reports" && pwd)"
status=0
env LD_PRELOAD="$asan $ubsan" \
    ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:allocator_may_return_null=1:log_path=$reports/asan" \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan" \
    PYTHONPATH="$lib" \
    "$PYTHON" -m pytest -q -p no:cacheprovider "$@" || status=$?

# Reports of child processes (the fuzz tests run cases in subprocesses) land here too.
# "failed to allocate" warnings are the expected MemoryErrors of terabyte-sized requests
# (allocator_may_return_null=1 lets NumPy raise them as in a normal build).
bad=0
for f in "$reports"/*; do
    [ -e "$f" ] || continue
    if grep -qE "ERROR: |runtime error|SUMMARY: " "$f"; then
        echo "=== sanitizer report $f"
        cat "$f"
        bad=1
    fi
done
if [ "$bad" -ne 0 ]; then
    echo "sanitize: FAILED: sanitizer reports above" >&2
    exit 1
fi
if [ "$status" -ne 0 ]; then
    echo "sanitize: FAILED: pytest exit status $status" >&2
    exit "$status"
fi
echo "sanitize: clean (no AddressSanitizer or UndefinedBehaviorSanitizer report)"
