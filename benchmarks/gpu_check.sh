#!/usr/bin/env bash
# The device machine's entry point for benchmarks/gpu_check.py (issue 17): the `run` tool's
# command is `bash benchmarks/gpu_check.sh`, with carry [".whl"] (see gpu_check.py's
# docstring for the wheel). tim is not installed there: the repository root goes on
# PYTHONPATH. Extra arguments are passed on (e.g. --sections oracles,speed --budget-s 300).
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/gpu_check}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site \
        .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv 2>&1 \
    | tee "$OUT/gpu_check.log"
python3 benchmarks/gpu_check.py --out "$OUT" "$@" 2>&1 | tee -a "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
