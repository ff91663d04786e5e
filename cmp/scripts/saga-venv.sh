#!/usr/bin/env bash
# Creates (once) a Python venv with the PyPI package anrg-saga, which
# cmp/tests/sched_saga.rs uses to cross-check our HEFT against saga's HeftScheduler,
# and prints the venv's interpreter path on stdout (progress goes to stderr).
# Usage: export NETGPT_SAGA_PYTHON="$(bash cmp/scripts/saga-venv.sh)"
# The version is pinned: cmp/scripts/saga_heft.py uses saga 2.x's Network/TaskGraph API.
set -euo pipefail
SAGA_VERSION=2.0.2
VENV="${NETGPT_SAGA_VENV:-${NETGPT_CACHE_DIR:-$HOME/.cache/netgpt}/venv-saga}"
PY="$VENV/bin/python"
have() {
    "$PY" -c "from importlib.metadata import version; import saga.schedulers; \
assert version('anrg-saga') == '$SAGA_VERSION'" >/dev/null 2>&1
}
if ! have; then
    [ -x "$PY" ] || python3 -m venv "$VENV" >&2
    "$PY" -m pip install -q --disable-pip-version-check "anrg-saga==$SAGA_VERSION" >&2
    have || { echo "saga-venv.sh: anrg-saga $SAGA_VERSION not importable in $VENV" >&2; exit 1; }
fi
echo "$PY"
