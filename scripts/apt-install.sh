#!/usr/bin/env bash
# apt-install.sh WHO PACKAGE...: installs Debian packages with apt-get, as
# root or through sudo, or says clearly why it cannot. WHO prefixes the
# messages. Used by ensure-deps.sh and ensure-node.sh.
set -euo pipefail
who=$1
shift
if ! command -v apt-get >/dev/null 2>&1; then
  echo "$who: $* missing and apt-get is not available; install them and retry" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "$who: need root (or sudo) to apt-get install $*" >&2
    exit 1
  fi
fi
echo "$who: installing Debian's $*" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
