#!/usr/bin/env bash
# Installs Debian's prometheus-pgbouncer-exporter, a real PgBouncer
# exporter that internal/app's console test points at pgvalve's admin
# console. Does nothing when it is already there.
#
# Without it, it installs the package as root or under CI=true; elsewhere
# it says so and exits 0, and the Go test skips loudly (it fails under CI).
set -euo pipefail

command -v prometheus-pgbouncer-exporter >/dev/null 2>&1 && exit 0

if [ "$(id -u)" != "0" ] && [ "${CI:-}" != "true" ]; then
  echo "ensure-exporter: prometheus-pgbouncer-exporter not found; its test will be skipped (install the Debian package, or run as root or with CI=true)" >&2
  exit 0
fi

"$(dirname "$0")/apt-install.sh" ensure-exporter prometheus-pgbouncer-exporter
# The package enables a system service that waits for a system PgBouncer;
# the test runs its own exporter process and never uses the service.
command -v prometheus-pgbouncer-exporter >/dev/null 2>&1 || { echo "ensure-exporter: installed but not on PATH" >&2; exit 1; }
