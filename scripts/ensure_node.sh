#!/bin/sh
# The flow builder's graph editor comes from npm (package.json); installs Debian's npm when missing.
set -eu
if command -v npm >/dev/null 2>&1; then
    exit 0
fi
echo "[assets] npm not found; installing Debian's npm package"
SUDO=""
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q npm >/dev/null 2>&1 || {
    $SUDO apt-get update -q >/dev/null
    $SUDO apt-get install -y -q npm >/dev/null
}
command -v npm >/dev/null
