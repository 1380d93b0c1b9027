#!/usr/bin/env bash
# The kernel tests (tests/kernel_tests.txt) with the oldest NumPy normreg supports (the
# lower bound of `numpy>=` in pyproject.toml's dependencies), on an extension built against
# NumPy 2 as every normal build is: NumPy 2 headers with NPY_TARGET_VERSION 1.23 make
# extensions that run on 1.23 and later.
#
#   scripts/test-oldest-numpy.sh               # builds a wheel (pip, build isolation)
#   scripts/test-oldest-numpy.sh dist/*.whl    # or tests a wheel built before
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
PYTHON="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

oldest="$("$PYTHON" - <<'EOF'
import re, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print(next(re.fullmatch(r"numpy>=([0-9.]+)", d).group(1) for d in deps if d.startswith("numpy")))
EOF
)"

if [ "$#" -gt 0 ]; then
    wheel="$1"
else
    echo "test-oldest-numpy: building a wheel against NumPy 2"
    "$PYTHON" -m pip wheel --quiet --no-deps -w "$work/dist" .
    wheel="$(ls "$work"/dist/normreg-*.whl)"
fi

"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
"$work/venv/bin/python" -m pip install --quiet --only-binary=:all: "numpy==$oldest" pytest hypothesis
"$work/venv/bin/python" -m pip install --quiet --no-deps "$wheel"
"$work/venv/bin/python" -c "import numpy, normreg; print('test-oldest-numpy: NumPy', numpy.__version__, '| built against', normreg.show_config('dicts')['Python']['numpy_at_build'])"

tests=()
while read -r name; do
    case "$name" in "" | "#"*) ;; *) tests+=("$repo/tests/$name") ;; esac
done <tests/kernel_tests.txt
cd "$work"
"$work/venv/bin/python" -m pytest -q -p no:cacheprovider "${tests[@]}"
