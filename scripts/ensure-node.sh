#!/usr/bin/env bash
# Installs what the Node client tests (internal/app/node_test.go) need:
# test/node's npm packages and its generated Prisma client. Reinstalls only
# when package-lock.json is newer than node_modules.
#
# Without node/npm it installs Debian's nodejs+npm under CI=true; elsewhere it
# says so and exits 0, and the Go test skips loudly.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../test/node"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "${CI:-}" != "true" ]; then
    echo "ensure-node: node/npm not found; the Node client tests will be skipped (install Node.js >= 20.19 and npm, or run with CI=true)" >&2
    exit 0
  fi
  "$here/apt-install.sh" ensure-node nodejs npm
fi

# Prisma 7 needs Node ^20.19, ^22.12 or >= 24 (Debian 12's nodejs is 18).
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit((a === 20 && b >= 19) || (a === 22 && b >= 12) || a >= 24 ? 0 : 1)'; then
  echo "ensure-node: node $(node --version) is too old for Prisma 7 (needs ^20.19, ^22.12 or >= 24)" >&2
  [ "${CI:-}" = "true" ] && exit 1
  echo "ensure-node: the Node client tests will be skipped" >&2
  exit 0
fi

# --ignore-scripts: the lock's install scripts only check the Node version
# (prisma), download engines this network cannot reach (@prisma/engines) or
# verify a binary that its optional package already ships (esbuild).
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  echo "ensure-node: npm ci in test/node" >&2
  npm ci --no-audit --no-fund --ignore-scripts
  touch node_modules
fi

# prisma generate wants the schema engine binary, which it would download;
# it never runs it, so any existing file satisfies it offline.
if [ ! -f generated/prisma/client.ts ] || [ prisma/schema.prisma -nt generated/prisma/client.ts ] ||
  [ package-lock.json -nt generated/prisma/client.ts ]; then
  PRISMA_SCHEMA_ENGINE_BINARY=/bin/true ./node_modules/.bin/prisma generate
fi
