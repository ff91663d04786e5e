#!/usr/bin/env bash
# Installs Debian's `prometheus` package (2.42; brings `promtool`) for the metrics test and
# prints its environment:
#
#   eval "$(bash .ci/prometheus.sh)"   # exports NETGPT_PROMTOOL and NETGPT_PROMETHEUS
#
# The package's system service is not started (the test runs its own `prometheus` on a free
# port with a temporary database). Idempotent; when the package cannot be installed nothing
# is printed and tests/e2e/prometheus.rs prints a skip reason.
set -uo pipefail

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"

if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  echo "prometheus.sh: installing prometheus (apt)" >&2
  # policy-rc.d 101: keep dpkg from starting the packaged service.
  policy=/usr/sbin/policy-rc.d
  made_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy" && made_policy=1
  fi
  { $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends prometheus; } >&2 ||
    echo "prometheus.sh: cannot install prometheus" >&2
  [ -n "$made_policy" ] && $sudo rm -f "$policy"
fi
if promtool="$(command -v promtool)" && prometheus="$(command -v prometheus)"; then
  echo "export NETGPT_PROMTOOL=$promtool NETGPT_PROMETHEUS=$prometheus"
fi
