#!/usr/bin/env bash
# Real drivers through shardgate: psycopg 3 and asyncpg (a venv under target/) and node-postgres (npm,
# under target/), against `scripts/dev.sh up`. Needs the Python and npm registries; not part of
# scripts/test.sh. Executemany across shards is refused by design and shows as FAIL.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work="$root/target/drivers"
mkdir -p "$work"
scripts/dev.sh up >/dev/null
[ -x "$work/venv/bin/python" ] || python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q "psycopg[binary]" asyncpg
(cd "$work" && [ -d node_modules/pg ] || npm install --silent pg >/dev/null)
status=0
"$work/venv/bin/python" scripts/drivers/check.py || status=1
NODE_PATH="$work/node_modules" node scripts/drivers/check.js || status=1
exit $status
