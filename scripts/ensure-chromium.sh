#!/usr/bin/env bash
# Installs what the live page's browser test (internal/web, and
# internal/testutil/browser's users) needs: a headless Chromium, Debian's
# chromium package. Does nothing when one is already there.
#
# Without one it installs Debian's chromium as root or under CI=true;
# elsewhere it says so and exits 0, and the Go test skips loudly.
set -euo pipefail

for b in chromium chromium-browser google-chrome-stable google-chrome headless-shell; do
  command -v "$b" >/dev/null 2>&1 && exit 0
done

if [ "$(id -u)" != "0" ] && [ "${CI:-}" != "true" ]; then
  echo "ensure-chromium: chromium not found; the browser tests will be skipped (install Debian's chromium, or run as root or with CI=true)" >&2
  exit 0
fi

"$(dirname "$0")/apt-install.sh" ensure-chromium chromium
command -v chromium >/dev/null 2>&1 || { echo "ensure-chromium: chromium installed but not on PATH" >&2; exit 1; }
