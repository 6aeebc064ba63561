#!/usr/bin/env bash
# Cross-shard reads: shardgate's peak memory while it streams big merged results (ORDER BY ... LIMIT 10 and
# a full ORDER BY over every row), and the latency of count(*) and top-N ORDER BYs (by the indexed key,
# and by an unindexed column) through shardgate against the slowest shard queried directly, alone and
# with every shard queried at once (pgbench, one client each). Starts `scripts/dev.sh up 4`.
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
    local port=$1 user=$2 sql=$3 tag=${4:-}
    printf '%s\n' "$sql" >"$DEV/scatter$tag.sql"
    PGPASSWORD=app pgbench -h 127.0.0.1 -p "$port" -U "$user" -f "$DEV/scatter$tag.sql" -c 1 -T "$SECS" -n app 2>&1 |
        sed -n 's/^latency average = \([0-9.]*\) ms/\1/p'
}
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b) ? a : b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
# Two baselines for the slowest shard queried directly: alone (the other shards idle), and while every
# shard is queried at once, as a scatter runs them (here the shards share this machine's cores).
printf '\n%-52s %10s %13s %6s %13s %6s\n' workload shardgate slowest_alone ratio slowest_busy ratio
for sql in "SELECT count(*) FROM users" \
    "SELECT id, email FROM users ORDER BY id DESC LIMIT 10" \
    "SELECT id, email FROM users ORDER BY email DESC LIMIT 10"; do
    g=$(latency 6432 app "$sql")
    alone=0
    for ((i = 0; i < SHARDS; i++)); do
        alone=$(max "$(latency $((54320 + i)) postgres "$sql")" "$alone")
    done
    busy=0
    for ((i = 0; i < SHARDS; i++)); do
        latency $((54320 + i)) postgres "$sql" "$i" >"$DEV/busy$i" &
    done
    wait
    for ((i = 0; i < SHARDS; i++)); do
        busy=$(max "$(cat "$DEV/busy$i")" "$busy")
    done
    printf '%-52s %7s ms %10s ms %6s %10s ms %6s\n' "$sql" "$g" "$alone" "$(ratio "$g" "$alone")" \
        "$busy" "$(ratio "$g" "$busy")"
done
echo "(pgbench, 1 client per run, ${SECS}s per run; $(nproc) cores shared by the $SHARDS shards, shardgate and pgbench)"
# The rows were loaded past shardgate, each shard holding ids its buckets do not own: gone again, so
# that the dev setup's users table holds only rows that shardgate placed.
for ((i = 0; i < SHARDS; i++)); do
    psql -X -q -h 127.0.0.1 -p $((54320 + i)) -U postgres app -c "TRUNCATE users CASCADE" >/dev/null
done
