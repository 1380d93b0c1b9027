#!/usr/bin/env bash
# From a fresh checkout to a model trained on Fashion-MNIST, in one command:
#
#     bash scripts/quickstart.sh            # extra arguments go to normreg-train
#
# 1. As root on Debian/Ubuntu, installs what is missing with apt: a C compiler, the Python
#    headers and venv module, and the dataset (package dataset-fashion-mnist).
# 2. Creates a virtual environment (.venv, or $NORMREG_VENV) and pip-installs normreg into it
#    with its training extra (tqdm, matplotlib) from PyPI.
# 3. Runs normreg-train with its defaults (15 epochs, >= 0.90 test accuracy) into
#    runs/quickstart (the next runs: runs/quickstart-2, -3, ...). Without the Debian package, the dataset is downloaded into
#    ~/.cache/normreg/fashion-mnist (checksums checked).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${NORMREG_VENV:-.venv}"

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    need=()
    command -v gcc >/dev/null 2>&1 || need+=(gcc)
    "$PY" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
        || need+=(python3-dev)
    "$PY" -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
    [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need+=(dataset-fashion-mnist)
    if [ "${#need[@]}" -gt 0 ]; then
        echo "quickstart: apt-get install ${need[*]}"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; } \
            || echo "quickstart: apt-get failed; continuing (the dataset will be downloaded)"
    fi
fi

echo "quickstart: installing normreg into $VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet ".[train]"

# a run of its own each time: runs/quickstart, then runs/quickstart-2, -3, ... (an earlier run's
# directory holds its checkpoint, which normreg-train would not overwrite)
OUT=runs/quickstart
n=1
while [ -e "$OUT" ]; do
    n=$((n + 1))
    OUT="runs/quickstart-$n"
done
if [ "$n" -gt 1 ]; then
    echo "quickstart: runs/quickstart holds an earlier run (continue an interrupted one with $VENV/bin/normreg-train --resume DIR)"
fi
echo "quickstart: training (normreg-train --out $OUT $*)"
exec "$VENV/bin/normreg-train" --out "$OUT" "$@"
