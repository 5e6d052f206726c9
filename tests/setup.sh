#!/bin/sh
# Installs what the tests need beyond Rust: sipp (Debian's sip-tester) for
# the interoperability tests, iproute2 (`ip`) for the tests that run in a
# private network namespace (`unshare -n`, from util-linux), and Debian's
# kamailio package for its stock kamailio.cfg (tests/kamailio_stock.rs
# copies it; it is not in this repository). Run as root or with sudo
# available; does nothing when all are there.
set -e
missing=""
command -v sipp >/dev/null 2>&1 || missing="$missing sip-tester"
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v unshare >/dev/null 2>&1 || missing="$missing util-linux"
[ -f /etc/kamailio/kamailio.cfg ] || missing="$missing kamailio"
if [ -z "$missing" ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq $missing
