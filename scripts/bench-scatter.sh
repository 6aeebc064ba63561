#!/usr/bin/env bash
# Cross-shard reads: shardgate's peak memory while it streams big merged results (ORDER BY ... LIMIT 10 and
# a full ORDER BY over every row), and the latency of count(*) and a top-N ORDER BY through shardgate
# against the slowest shard queried directly (pgbench, one client). Starts `scripts/dev.sh up 4`.
# Usage: scripts/bench-scatter.sh [rows per shard, default 2000000] [seconds per latency run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ROWS=${1:-2000000}
SECS=${2:-10}
BIN=$(pg_bin)
export PATH="$BIN:$PATH"
DEV=${SHARDGATE_DEV_DIR:-$(pwd)/.dev}
SHARDS=4

scripts/dev.sh down >/dev/null 2>&1 || true
scripts/dev.sh up $SHARDS >/dev/null
PID=$(cat "$DEV/shardgate.pid")
for ((i = 0; i < SHARDS; i++)); do
    # Loaded on each shard directly: a read without a key does not care where a row's bucket is.
    psql -X -q -h 127.0.0.1 -p $((54320 + i)) -U postgres app -c "TRUNCATE users CASCADE;
        INSERT INTO users (id, email) SELECT g, 'user' || g || '@example.com'
        FROM generate_series($((i * ROWS + 1)), $(((i + 1) * ROWS))) g" -c "VACUUM ANALYZE users" >/dev/null
done
export PGPASSWORD=app
through() { psql -X -At -h 127.0.0.1 -p 6432 -U app app -c "$1"; }
peak() { awk '/VmHWM/ { printf "%.1f MB", $2 / 1024 }' "/proc/$PID/status"; }

echo "rows: $SHARDS shards x $ROWS"
echo "shardgate peak RSS at start:                      $(peak)"
through 'SELECT id, email FROM users ORDER BY email COLLATE "C" DESC LIMIT 10' >/dev/null
echo "after ORDER BY ... LIMIT 10:                      $(peak)"
n=$(through 'SELECT id, email FROM users ORDER BY id' | wc -l)
echo "after a full ORDER BY streamed ($n rows): $(peak)"

# Latency: pgbench's average, one client.
latency() {
    local port=$1 user=$2 sql=$3
    printf '%s\n' "$sql" >"$DEV/scatter.sql"
    PGPASSWORD=app pgbench -h 127.0.0.1 -p "$port" -U "$user" -f "$DEV/scatter.sql" -c 1 -T "$SECS" -n app 2>&1 |
        sed -n 's/^latency average = \([0-9.]*\) ms/\1/p'
}
printf '\n%-44s %10s %14s %7s\n' workload shardgate slowest_shard ratio
for sql in "SELECT count(*) FROM users" "SELECT id, email FROM users ORDER BY id DESC LIMIT 10"; do
    g=$(latency 6432 app "$sql")
    slowest=0
    for ((i = 0; i < SHARDS; i++)); do
        d=$(latency $((54320 + i)) postgres "$sql")
        slowest=$(awk -v a="$d" -v b="$slowest" 'BEGIN { print (a > b) ? a : b }')
    done
    printf '%-44s %8s ms %11s ms %7s\n' "$sql" "$g" "$slowest" \
        "$(awk -v a="$g" -v b="$slowest" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')"
done
echo "(pgbench, 1 client, ${SECS}s per run; the shards share this machine's cores with each other)"
