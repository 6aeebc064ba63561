#!/usr/bin/env bash
# Cross-shard reads: shardgate's peak memory while it streams big merged results (ORDER BY ... LIMIT 10 and
# a full ORDER BY over every row), and the latency of count(*) and top-N ORDER BYs (by the indexed key,
# and by an unindexed column) through shardgate against the slowest shard queried directly (pgbench, one
# client each). Starts `scripts/dev.sh up 4`. Two tables:
# - shards uncapped: the slowest shard alone, and while every shard is queried at once; here the four
#   shards share this machine's cores, so a scatter's shards slow each other down;
# - shards capped (as root, with a cpu cgroup): each shard's processes held to SHARD_CPU of a core
#   (default 0.4), as if each shard ran on a small host of its own, and the slowest shard alone on it;
# and, for scale, the indexed top-10 on one shard directly and through pgbouncer (one hop, no merge).
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
# The largest of the numbers on stdin.
largest() { sort -g | tail -n 1; }
WORKLOADS=("SELECT count(*) FROM users"
    "SELECT id, email FROM users ORDER BY id DESC LIMIT 10"
    "SELECT id, email FROM users ORDER BY email DESC LIMIT 10")
slowest_alone() {
    for ((i = 0; i < SHARDS; i++)); do
        latency $((54320 + i)) postgres "$1"
    done | largest
}
slowest_busy() {
    for ((i = 0; i < SHARDS; i++)); do
        latency $((54320 + i)) postgres "$1" "$i" >"$DEV/busy$i" &
    done
    wait
    for ((i = 0; i < SHARDS; i++)); do cat "$DEV/busy$i"; done | largest
}
printf '\nshards uncapped (%s cores shared by the %s shards, shardgate and pgbench)\n' "$(nproc)" $SHARDS
printf '%-56s %10s %13s %6s %13s %6s\n' workload shardgate slowest_alone ratio slowest_busy ratio
for sql in "${WORKLOADS[@]}"; do
    g=$(latency 6432 app "$sql")
    alone=$(slowest_alone "$sql")
    busy=$(slowest_busy "$sql")
    printf '%-56s %7s ms %10s ms %6s %10s ms %6s\n' "$sql" "$g" "$alone" "$(ratio "$g" "$alone")" \
        "$busy" "$(ratio "$g" "$busy")"
done

# Each shard in a cpu cgroup of its own: its postmaster and every process it has forked (shardgate's
# pooled servers among them) move there, and what it forks later (pgbench's backends, parallel workers)
# is born there. cgroup v1 (cpu controller) or v2 (cpu.max); nothing happens without either.
CGROUPS=()
cap_shards() {
    local quota root v2
    quota=$(awk -v c="$1" 'BEGIN { printf "%d", c * 100000 }')
    if [ -w /sys/fs/cgroup/cpu/cgroup.procs ]; then
        root=/sys/fs/cgroup/cpu v2=
    elif grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null && [ -w /sys/fs/cgroup/cgroup.procs ]; then
        root=/sys/fs/cgroup v2=1
        echo +cpu >"$root/cgroup.subtree_control" 2>/dev/null || return 1
    else
        return 1
    fi
    for ((i = 0; i < SHARDS; i++)); do
        local dir="$root/shardgate-bench-shard$i" pm
        mkdir -p "$dir" || return 1
        CGROUPS+=("$dir")
        if [ -n "$v2" ]; then
            echo "$quota 100000" >"$dir/cpu.max"
        else
            echo 100000 >"$dir/cpu.cfs_period_us" && echo "$quota" >"$dir/cpu.cfs_quota_us"
        fi || return 1
        pm=$(head -n 1 "$DEV/pg$i/postmaster.pid")
        for p in $pm $(pgrep -P "$pm"); do
            echo "$p" >"$dir/cgroup.procs" 2>/dev/null || true
        done
    done
}
uncap_shards() {
    local dir p
    for dir in "${CGROUPS[@]}"; do
        while read -r p; do
            echo "$p" >"$(dirname "$dir")/cgroup.procs" 2>/dev/null || true
        done <"$dir/cgroup.procs"
        rmdir "$dir" 2>/dev/null || true
    done
    CGROUPS=()
}
cleanup() { uncap_shards; stop_pgbouncer; }
trap cleanup EXIT
SHARD_CPU=${SHARD_CPU:-0.4}
if cap_shards "$SHARD_CPU"; then
    printf '\nshards capped at %s of a core each (cpu cgroup), as if each shard had a host of its own\n' "$SHARD_CPU"
    printf '%-56s %10s %13s %6s\n' workload shardgate slowest_alone ratio
    for sql in "${WORKLOADS[@]}"; do
        g=$(latency 6432 app "$sql")
        alone=$(slowest_alone "$sql")
        printf '%-56s %7s ms %10s ms %6s\n' "$sql" "$g" "$alone" "$(ratio "$g" "$alone")"
    done
else
    echo "(no writable cpu cgroup: run as root for the table with each shard capped)"
fi
uncap_shards

# For scale: what one pooler's hop costs the smallest of these queries, with nothing to merge.
start_pgbouncer "$DEV/pgbouncer" 54320
sql=${WORKLOADS[1]}
d=$(latency 54320 postgres "$sql")
b=$(latency 6433 app "$sql")
printf '\none shard (%s) directly and through pgbouncer, a hop and nothing else\n' shard0
printf '%-56s %10s %13s %6s\n' workload pgbouncer direct ratio
printf '%-56s %7s ms %10s ms %6s\n' "$sql" "$b" "$d" "$(ratio "$b" "$d")"
echo "(pgbench, 1 client per run, ${SECS}s per run)"
# The rows were loaded past shardgate, each shard holding ids its buckets do not own: gone again, so
# that the dev setup's users table holds only rows that shardgate placed.
for ((i = 0; i < SHARDS; i++)); do
    psql -X -q -h 127.0.0.1 -p $((54320 + i)) -U postgres app -c "TRUNCATE users CASCADE" >/dev/null
done
