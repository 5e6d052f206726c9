#!/bin/sh
# Installs what the tests need beyond Rust: sipp (Debian's sip-tester).
# Run as root or with sudo available; does nothing when sipp is there.
set -e
if command -v sipp >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
$SUDO apt-get install -y -qq sip-tester
