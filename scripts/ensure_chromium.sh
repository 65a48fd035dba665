#!/bin/sh
# Browser tests drive Debian's Chromium through Playwright (no browser download).
# Installs the `chromium` package when it is missing; CHROMIUM_PATH overrides the binary.
set -eu
CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
echo "[chromium] $CHROMIUM not found; installing Debian's chromium package"
SUDO=""
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || {
    $SUDO apt-get update -q >/dev/null
    $SUDO apt-get install -y -q chromium >/dev/null
}
test -x "$CHROMIUM"
echo "[chromium] installed: $($CHROMIUM --version 2>/dev/null || echo "$CHROMIUM")"
