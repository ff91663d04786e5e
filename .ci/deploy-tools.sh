#!/usr/bin/env bash
# Installs the offline validators of the deployment files and prints their environment:
#   - Debian's `docker-compose` (1.29): `docker-compose -f deploy/docker-compose.yml config -q`
#     parses and checks the compose testbed without a Docker engine;
#   - PyPI's `kubernetes-validate` in a virtualenv: validates the Kubernetes manifests of
#     deploy/k8s against the Kubernetes JSON schemas it bundles (no cluster, no network).
#
#   eval "$(bash .ci/deploy-tools.sh)"   # exports NETGPT_DOCKER_COMPOSE and NETGPT_K8S_VALIDATE
#
# Idempotent; each tool that cannot be installed is left out of the output (its tests then
# print a skip reason). Settings: NETGPT_CACHE_DIR (default ~/.cache/netgpt) for the venv.
set -uo pipefail

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"

if ! command -v docker-compose >/dev/null 2>&1; then
  echo "deploy-tools.sh: installing docker-compose (apt)" >&2
  $sudo apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends docker-compose >&2 ||
    echo "deploy-tools.sh: cannot install docker-compose" >&2
fi
if compose="$(command -v docker-compose)"; then
  echo "export NETGPT_DOCKER_COMPOSE=$compose"
fi

venv="${NETGPT_CACHE_DIR:-$HOME/.cache/netgpt}/venv-k8s-validate"
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  echo "deploy-tools.sh: installing kubernetes-validate (pip) into $venv" >&2
  { [ -x "$venv/bin/python" ] || python3 -m venv "$venv"; } >&2 &&
    "$venv/bin/pip" install -q --disable-pip-version-check kubernetes-validate >&2 ||
    echo "deploy-tools.sh: cannot install kubernetes-validate" >&2
fi
if [ -x "$venv/bin/kubernetes-validate" ]; then
  echo "export NETGPT_K8S_VALIDATE=$venv/bin/kubernetes-validate"
fi
