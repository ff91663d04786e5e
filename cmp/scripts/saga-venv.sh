#!/usr/bin/env bash
# Creates (once) a Python venv with the PyPI package anrg-saga, used by cmp/tests/sched_saga.rs
# to cross-check our HEFT against saga's HeftScheduler, and prints the venv's interpreter path.
# Usage: export NETGPT_SAGA_PYTHON="$(cmp/scripts/saga-venv.sh)"
set -euo pipefail
VENV="${NETGPT_SAGA_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/netgpt/saga-venv}"
PY="$VENV/bin/python"
if ! "$PY" -c 'import saga.schedulers' >/dev/null 2>&1; then
    python3 -m venv "$VENV" >&2
    "$PY" -m pip install --quiet --upgrade pip >&2
    "$PY" -m pip install --quiet anrg-saga >&2
    "$PY" -c 'import saga.schedulers' >&2
fi
echo "$PY"
