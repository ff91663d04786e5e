#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the persistence tests and exports its URL.
#
#   source .ci/postgres.sh          # exports NETGPT_TEST_POSTGRES_URL in this shell
#   eval "$(.ci/postgres.sh)"       # same, from a subshell
#   .ci/postgres.sh stop            # stops the cluster
#   .ci/postgres.sh restart [immediate|fast] [DOWN_S]
#                                   # restarts the running cluster of $NETGPT_PG_DIR on the
#                                   # same port and data: `immediate` (default) is crash-like
#                                   # (no checkpoint, crash recovery at start), `fast` a clean
#                                   # stop; with DOWN_S > 0 the server stays down that many
#                                   # seconds (an outage clients must ride out). Prints the URL.
#
# Idempotent: a cluster already running in $NETGPT_PG_DIR is reused. Installs the Debian
# `postgresql` package when no initdb is found. Runs the server as the `postgres` user
# when invoked as root. Trust authentication on 127.0.0.1 only: for tests, never for data.
#
# Settings: NETGPT_PG_DIR (default /tmp/netgpt-pg), NETGPT_PG_PORT (default: 55432, or
# the next free port).

_netgpt_pg_main() {
  local dir="${NETGPT_PG_DIR:-/tmp/netgpt-pg}"
  local data="$dir/data"
  local bindir
  bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    echo "postgres.sh: installing postgresql (apt)" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2 || {
      echo "postgres.sh: cannot install postgresql" >&2
      return 1
    }
    bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  fi

  # Run PostgreSQL tools as `postgres` when root (initdb refuses root).
  local as=()
  local owner
  owner="$(id -un)"
  if [ "$(id -u)" -eq 0 ]; then
    owner="postgres"
    if command -v runuser >/dev/null 2>&1; then as=(runuser -u postgres --); else as=(su postgres -s /bin/sh -c); fi
  fi
  _pg() {
    if [ "${#as[@]}" -gt 0 ] && [ "${as[0]}" = "su" ]; then
      "${as[@]}" "$(printf '%q ' "$@")"
    elif [ "${#as[@]}" -gt 0 ]; then
      "${as[@]}" "$@"
    else
      "$@"
    fi
  }

  if [ "${1:-}" = "stop" ]; then
    [ -d "$data" ] && _pg "$bindir/pg_ctl" -D "$data" -m fast stop >&2 || true
    return 0
  fi

  # The server's options: the same at first start and after a restart.
  _pg_start() {
    _pg "$bindir/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 \
      -o "-p $1 -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >&2 || {
      cat "$dir/server.log" >&2
      return 1
    }
  }

  if [ "${1:-}" = "restart" ]; then
    local mode="${2:-immediate}" down="${3:-0}"
    case "$mode" in immediate | fast) ;; *)
      echo "postgres.sh: restart mode must be immediate or fast, not '$mode'" >&2
      return 1
      ;;
    esac
    if ! _pg "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
      echo "postgres.sh: no cluster running in $data to restart" >&2
      return 1
    fi
    local port
    port="$(cat "$dir/port")"
    _pg "$bindir/pg_ctl" -D "$data" -m "$mode" -w -t 60 stop >&2 || return 1
    [ "$down" != "0" ] && sleep "$down"
    _pg_start "$port" || return 1
    echo "export NETGPT_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$port/postgres"
    return 0
  fi

  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"

  local port
  if _pg "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    port="$(cat "$dir/port")"
  else
    if [ ! -s "$data/PG_VERSION" ]; then
      _pg "$bindir/initdb" -D "$data" -U postgres -A trust -E UTF8 >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        return 1
      }
    fi
    port="${NETGPT_PG_PORT:-55432}"
    # The next free port when this one is taken by something else.
    while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
    echo "$port" >"$dir/port"
    _pg_start "$port" || return 1
  fi
  local url="postgres://postgres@127.0.0.1:$port/postgres"
  echo "export NETGPT_TEST_POSTGRES_URL=$url" >"$dir/env"
  [ "$(id -u)" -eq 0 ] && [ "$owner" = "postgres" ] && chown postgres: "$dir/env" "$dir/port" 2>/dev/null
  export NETGPT_TEST_POSTGRES_URL="$url"
  echo "export NETGPT_TEST_POSTGRES_URL=$url"
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  _netgpt_pg_main "$@" >/dev/null
else
  set -euo pipefail
  _netgpt_pg_main "$@"
fi
