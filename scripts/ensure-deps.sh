#!/usr/bin/env bash
# Installs what pgvalve's tests and demo need when it is missing: PostgreSQL's
# server binaries (initdb, pg_ctl, postgres), psql and pgbench, all from
# Debian's postgresql package, and systemd-analyze. Does nothing when they
# are already there.
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

# deploy/'s test checks the systemd unit with systemd-analyze.
if ! command -v systemd-analyze >/dev/null 2>&1; then
  "$(dirname "$0")/apt-install.sh" ensure-deps systemd
fi

if have_server; then
  exit 0
fi

"$(dirname "$0")/apt-install.sh" ensure-deps postgresql postgresql-contrib
# The package starts a system cluster on 5432; the tests never use it.
have_server || { echo "ensure-deps: postgresql installed but initdb/pgbench still not found" >&2; exit 1; }
