#!/usr/bin/env bash
# Installs Debian's Chromium for the testbed console test (cmp/tests/console.rs: headless
# --dump-dom and --screenshot of /console/) and prints its environment:
#
#   eval "$(bash .ci/chromium.sh)"   # exports NETGPT_CHROMIUM
#
# Idempotent; when Chromium cannot be installed nothing is printed (the test then prints a
# skip reason).
set -uo pipefail

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"

if ! command -v chromium >/dev/null 2>&1; then
  echo "chromium.sh: installing chromium (apt)" >&2
  $sudo apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >&2 ||
    echo "chromium.sh: cannot install chromium" >&2
fi
if chromium="$(command -v chromium)"; then
  echo "export NETGPT_CHROMIUM=$chromium"
fi
