#!/usr/bin/env bash
# Installs schemathesis (PyPI, pinned) into a cached virtualenv for the hostile-input test
# (tests/e2e/schemathesis.rs) and prints its environment:
#
#   eval "$(bash .ci/schemathesis.sh)"   # exports NETGPT_SCHEMATHESIS
#
# Logs go to stderr. Idempotent (the venv is reused while it has the pinned version); when
# it cannot be installed nothing is printed and the test prints a skip reason.
set -uo pipefail

version=4.32.5
venv="${NETGPT_CACHE_DIR:-$HOME/.cache/netgpt}/venv-schemathesis"

if [ ! -x "$venv/bin/python" ]; then
  echo "schemathesis.sh: creating $venv" >&2
  python3 -m venv "$venv" >&2 || { echo "schemathesis.sh: cannot create the venv" >&2; exit 1; }
fi
if [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null)" != "$version" ]; then
  echo "schemathesis.sh: installing schemathesis==$version" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$version" >&2 ||
    { echo "schemathesis.sh: cannot install schemathesis" >&2; exit 1; }
fi
if [ -x "$venv/bin/schemathesis" ]; then
  echo "export NETGPT_SCHEMATHESIS=$venv/bin/schemathesis"
fi
