#!/bin/sh
# Installs what the tests need beyond Rust: sipp (Debian's sip-tester) for
# the interoperability tests, iproute2 (`ip`) for the tests that run in a
# private network namespace (`unshare -n`, from util-linux), and Debian's
# kamailio package for its stock kamailio.cfg (tests/kamailio_stock.rs
# copies it; it is not in this repository), and MariaDB and PostgreSQL
# running with a user for the db tests, and redis-server (the Redis tests
# start their own on ephemeral ports). Run as root or with sudo
# available; installs nothing when all are there.
set -e
missing=""
command -v sipp >/dev/null 2>&1 || missing="$missing sip-tester"
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v unshare >/dev/null 2>&1 || missing="$missing util-linux"
[ -f /etc/kamailio/kamailio.cfg ] || missing="$missing kamailio"
# The database servers the db tests talk to (MariaDB, PostgreSQL).
command -v mysqladmin >/dev/null 2>&1 || missing="$missing mariadb-server mariadb-client"
command -v pg_ctlcluster >/dev/null 2>&1 || missing="$missing postgresql"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
# Kamailio's own schema scripts, which a db test loads as they are.
[ -f /usr/share/kamailio/mysql/standard-create.sql ] || missing="$missing kamailio-mysql-modules"
[ -f /usr/share/kamailio/postgres/standard-create.sql ] || missing="$missing kamailio-postgres-modules"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq || true
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq $missing
fi

# Both servers running on 127.0.0.1, each with a user rser (password
# rser) that may create databases: every db test makes its own.
if ! mysqladmin ping -h 127.0.0.1 --silent >/dev/null 2>&1; then
    $SUDO service mariadb start >/dev/null 2>&1 || $SUDO service mysql start >/dev/null 2>&1 || true
    for _ in $(seq 1 30); do
        mysqladmin ping -h 127.0.0.1 --silent >/dev/null 2>&1 && break
        sleep 0.5
    done
fi
$SUDO mysql -uroot -e "CREATE USER IF NOT EXISTS 'rser'@'localhost' IDENTIFIED BY 'rser';
    CREATE USER IF NOT EXISTS 'rser'@'127.0.0.1' IDENTIFIED BY 'rser';
    GRANT ALL PRIVILEGES ON *.* TO 'rser'@'localhost';
    GRANT ALL PRIVILEGES ON *.* TO 'rser'@'127.0.0.1';" >/dev/null
if ! pg_isready -h 127.0.0.1 -q >/dev/null 2>&1; then
    for v in /etc/postgresql/*; do
        [ -d "$v/main" ] && $SUDO pg_ctlcluster "$(basename "$v")" main start >/dev/null 2>&1 || true
    done
    for _ in $(seq 1 30); do
        pg_isready -h 127.0.0.1 -q >/dev/null 2>&1 && break
        sleep 0.5
    done
fi
as_postgres() {
    if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$1"; else sudo -u postgres sh -c "$1"; fi
}
if ! as_postgres "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname='rser'\"" 2>/dev/null | grep -q 1; then
    as_postgres "psql -qc \"CREATE ROLE rser LOGIN PASSWORD 'rser' CREATEDB\"" >/dev/null
fi
