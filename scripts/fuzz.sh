#!/usr/bin/env bash
# Coverage-guided fuzzing of normreg's input boundaries with atheris (libFuzzer for Python
# and native extensions), on an instrumented build of the extension.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   # each target for SECONDS (default 60)
#   scripts/fuzz.sh 600                     # the long run RELIABILITY.md gives figures of
#   scripts/fuzz.sh 60 binding              # one target
#
# Targets (tests/fuzz/targets.py): binding (every function of normreg._C, arguments decoded
# from the fuzzer's bytes), load (normreg.load on arbitrary bytes), idx (the IDX reader).
#
# The extension is compiled by clang with -fsanitize=fuzzer-no-link,address,undefined into
# build/fuzz/lib (NORMREG_FUZZ_BUILD to change it), not over the normal build; the flags go
# in through CC/CFLAGS and setup.py's NORMREG_SANITIZE=1, so setup.py has no fuzzing mode.
# libFuzzer and the AddressSanitizer runtime come preloaded from atheris
# (asan_with_fuzzer.so, which holds UBSan's handlers too).
#
# Each target starts from its committed corpus, tests/fuzz/corpus/<target>/ (read only),
# plus build/fuzz/corpus/<target>/, where new inputs go and which later runs reuse.
# Findings: a crash, a sanitizer report, an exception the target does not expect, an input
# that runs over 3 s (-timeout=3) or resident memory over 2.5 GB stop the target and leave
# the input in build/fuzz/findings/<target>/; the summary lists them and the script exits 1.
# (The slowest valid inputs, 2**18-element norms, run about 0.25 s instrumented on a quiet
# machine; 3 s leaves room for a busy host and still stops anything unbounded.)
# To reproduce one: scripts/fuzz.sh --replay build/fuzz/findings/binding/crash-...
# Any other run of a target on the instrumented build: scripts/fuzz.sh --run TARGET [libFuzzer
# options] [corpus...] (e.g. -runs=0 -print_coverage=1 to list what the corpus covers).
# Needs clang (Debian: clang, libomp-dev) and `pip install atheris` in the running Python.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python}"
out="${NORMREG_FUZZ_BUILD:-build/fuzz}"
all_targets=(binding load idx)
die() { echo "fuzz: $*" >&2; exit 2; }

replay=()
run=()
if [ "${1:-}" = "--replay" ]; then
    shift
    replay=("$@")
    set --
elif [ "${1:-}" = "--run" ]; then
    shift
    run=("$@")
    set --
fi
seconds="${1:-60}"
[ "$#" -gt 0 ] && shift
case "$seconds" in '' | *[!0-9]*) die "SECONDS must be a whole number, got '$seconds'" ;; esac
targets=("$@")
[ "${#targets[@]}" -eq 0 ] && targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
    case " ${all_targets[*]} " in *" $t "*) ;; *) die "unknown target '$t' (targets: ${all_targets[*]})" ;; esac
done

command -v "${CC:-clang}" >/dev/null || die "needs clang (apt-get install clang libomp-dev)"
rt="$("$PYTHON" -c 'import atheris, os; print(os.path.join(atheris.path(), "asan_with_fuzzer.so"))' 2>/dev/null)" ||
    die "needs atheris in $PYTHON (pip install atheris)"
[ -e "$rt" ] || die "atheris has no $rt (build it from source: CLANG_BIN=clang pip install --no-binary atheris atheris)"

# ---- the instrumented build (setup.py rebuilds only what changed) ----------------------------
mkdir -p "$out/lib" "$out/tmp"
echo "fuzz: building with clang -fsanitize=fuzzer-no-link,address,undefined into $out/lib"
if ! NORMREG_SANITIZE=1 CC="${CC:-clang}" CFLAGS="-fsanitize=fuzzer-no-link -fno-sanitize-recover=all" \
        "$PYTHON" setup.py -q build_ext --build-lib "$out/lib" --build-temp "$out/tmp" >"$out/build.log" 2>&1; then
    cat "$out/build.log"
    die "build failed"
fi
lib="$(cd "$out/lib" && pwd)"
(cd python && find normreg -name '*.py' -exec cp --parents {} "$lib" \;)
so="$(find "$lib/normreg" -maxdepth 1 -name '_C*.so' | head -1)"
nm -D "$so" | grep __sanitizer_cov_8bit_counters_init >/dev/null || die "$so is not instrumented for coverage"

export LD_PRELOAD="$rt"
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:max_allocation_size_mb=1024:detect_stack_use_after_return=0:symbolize=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export ASAN_SYMBOLIZER_PATH="${ASAN_SYMBOLIZER_PATH:-$(command -v llvm-symbolizer || true)}"
export PYTHONMALLOC=malloc  # Python's objects through ASan's allocator too
export PYTHONPATH="$lib"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"

if [ "${#run[@]}" -gt 0 ]; then
    exec "$PYTHON" tests/fuzz/run.py "${run[@]}"
fi
if [ "${#replay[@]}" -gt 0 ]; then
    # each file once through its target (the directory name says which), with the full report
    for f in "${replay[@]}"; do
        t="$(basename "$(dirname "$f")")"
        echo "fuzz: replaying $f through target $t"
        "$PYTHON" tests/fuzz/run.py "$t" -runs=1 "$f"
    done
    exit 0
fi

# ---- each target for $seconds --------------------------------------------------------------
echo "fuzz: load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
summary=()
found=0
for t in "${targets[@]}"; do
    mkdir -p "$out/corpus/$t" "$out/findings/$t" "$out/logs"
    log="$out/logs/$t.log"
    stamp="$out/logs/$t.start"
    touch "$stamp"
    opts=(-max_total_time="$seconds" -timeout=3 -rss_limit_mb=2560 -print_final_stats=1
        -artifact_prefix="$out/findings/$t/")
    [ -f "tests/fuzz/$t.dict" ] && opts+=(-dict="tests/fuzz/$t.dict")
    [ "$t" != binding ] && opts+=(-max_len=16384)
    echo "fuzz: $t for $seconds s (log: $log)"
    status=0
    "$PYTHON" tests/fuzz/run.py "$t" "${opts[@]}" "$out/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1 || status=$?
    final_stat() { grep -m1 "^stat::$1:" "$log" | awk '{print $2}'; }
    last="$(grep -E '^#[0-9]+' "$log" | grep ' cov: ' | tail -1 || true)"
    cov="$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")"
    ft="$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")"
    corp="$(sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p' <<<"$last")"
    new="$(find "$out/findings/$t" -type f -newer "$stamp" | sort)"
    n_new="$(grep -c . <<<"$new" || true)"
    line="$(printf '%-8s %6s s  %10s runs  %7s exec/s  cov %6s  ft %6s  corpus %5s  findings %s' \
        "$t" "$seconds" "$(final_stat number_of_executed_units)" "$(final_stat average_exec_per_sec)" \
        "${cov:-?}" "${ft:-?}" "${corp:-?}" "$n_new")"
    summary+=("$line")
    if [ "$n_new" -gt 0 ] || [ "$status" -ne 0 ]; then
        found=1
        echo "fuzz: $t: FINDING (exit status $status); the end of $log:"
        tail -60 "$log"
        echo "$new"
    fi
done
echo "fuzz: summary (load average $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%s\n' "${summary[@]}"
if [ "$found" -ne 0 ]; then
    echo "fuzz: FAILED: findings above (inputs under $out/findings/)" >&2
    exit 1
fi
echo "fuzz: no findings"
