#!/bin/sh
# The accelerator check (benchmarks/accelerator_check.py): bench.json in ${1:-accelerator_check}.
# Extra arguments pass through, e.g. --smoke. Runs from any directory.
set -e
cd "$(dirname "$0")/.."
out="${1:-accelerator_check}"
[ $# -gt 0 ] && shift
exec "${PYTHON:-python}" benchmarks/accelerator_check.py --out "$out" "$@"
