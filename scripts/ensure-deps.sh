#!/usr/bin/env bash
# Installs what pgvalve's tests and demo need when it is missing: PostgreSQL's
# server binaries (initdb, pg_ctl, postgres), psql and pgbench, all from
# Debian's postgresql package. Does nothing when they are already there.
set -euo pipefail

have_server() {
  local bindir
  if command -v pg_config >/dev/null 2>&1; then
    bindir=$(pg_config --bindir 2>/dev/null || true)
    [ -n "$bindir" ] && [ -x "$bindir/initdb" ] && [ -x "$bindir/pgbench" ] && return 0
  fi
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/pgbench" ] && [ -x "$d/psql" ] && return 0
  done
  return 1
}

if have_server; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-deps: PostgreSQL server binaries are missing and apt-get is not available; install PostgreSQL (initdb, pg_ctl, psql, pgbench) and retry" >&2
  exit 1
fi

sudo=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "ensure-deps: need root (or sudo) to apt-get install postgresql" >&2
    exit 1
  fi
fi

echo "ensure-deps: installing Debian's postgresql package (initdb, pg_ctl, psql, pgbench)" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends postgresql postgresql-contrib >/dev/null
# The package starts a system cluster on 5432; the tests never use it.
have_server || { echo "ensure-deps: postgresql installed but initdb/pgbench still not found" >&2; exit 1; }
