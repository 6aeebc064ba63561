#!/usr/bin/env bash
# Installs the client drivers that tests/it/drivers.rs runs through shardgate, into .drivers/
# (git-ignored): psycopg 3 and asyncpg in a Python venv, node-postgres, and pgjdbc with a JDK from
# Debian packages. Quick when all is there; scripts/test.sh runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.drivers
mkdir -p "$dir"

apt_install() {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
} >/dev/null

# Reinstalls when the pinned versions change.
stale() { [ ! -f "$dir/$1.stamp" ] || ! cmp -s "$2" "$dir/$1.stamp"; }

if stale python tests/drivers/requirements.txt; then
    command -v python3 >/dev/null || apt_install python3
    rm -rf "$dir/venv"
    python3 -m venv "$dir/venv" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$dir/venv"; }
    "$dir/venv/bin/pip" install -q --disable-pip-version-check -r tests/drivers/requirements.txt
    cp tests/drivers/requirements.txt "$dir/python.stamp"
fi

if stale node tests/drivers/package.json; then
    command -v npm >/dev/null || apt_install nodejs npm
    rm -rf "$dir/node"
    mkdir -p "$dir/node"
    cp tests/drivers/package.json "$dir/node/"
    npm install --silent --no-audit --no-fund --prefix "$dir/node" >/dev/null
    cp tests/drivers/package.json "$dir/node.stamp"
fi

# Java runs JdbcCheck.java from source, which needs the compiler a JDK has.
command -v javac >/dev/null || apt_install default-jdk-headless
[ -f /usr/share/java/postgresql.jar ] || apt_install libpostgresql-jdbc-java
