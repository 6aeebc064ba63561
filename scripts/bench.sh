#!/usr/bin/env bash
# Pooling overhead: pgbench -S TPS and latency direct to the server, through shardgate and through
# pgbouncer (the yardstick), for -M simple / extended / prepared with 16 clients and 1 client; the ratio to
# direct and each proxy's CPU microseconds per transaction (utime+stime from /proc).
# Usage: scripts/bench.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
SECS=${1:-10}
BIN=$(pg_bin)
export PATH="$BIN:$PATH"
DEV=${SHARDGATE_DEV_DIR:-$(pwd)/.dev}

scripts/dev.sh up >/dev/null
SG_PID=$(cat "$DEV/shardgate.pid")
SHARD_PORT=54320
pgbench -h 127.0.0.1 -p $SHARD_PORT -U postgres -i -s 10 -q app >/dev/null 2>&1

# pgbouncer, transaction pooling, in front of the same server.
start_pgbouncer "$DEV/pgbouncer" $SHARD_PORT
# pgbouncer is the bench's own: stop it at the end (scripts/dev.sh down does not know of it).
trap stop_pgbouncer EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

# run TARGET MODE CLIENTS -> "tps latency_ms cpu_us_per_tx"
run() {
    local port=$1 user=$2 mode=$3 clients=$4 pid=${5:-} out t0 t1 tps lat txs cpu
    [ -n "$pid" ] && t0=$(cpu_ticks "$pid")
    out=$(PGPASSWORD=app pgbench -h 127.0.0.1 -p "$port" -U "$user" -S -M "$mode" -c "$clients" -j "$(( clients < 2 ? 1 : 2 ))" \
        -T "$SECS" -n app 2>&1) || true
    [ -n "$pid" ] && t1=$(cpu_ticks "$pid")
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -n 1)
    lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
    txs=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
    if [ -z "$tps" ] || [ -z "$txs" ] || [ "$txs" = 0 ]; then echo "failed - -"; return; fi
    if [ -n "$pid" ]; then cpu=$(awk -v a="$t0" -v b="$t1" -v n="$txs" -v hz="$TICK" 'BEGIN{printf "%.1f", (b-a)/hz*1e6/n}'); else cpu=-; fi
    echo "$tps $lat $cpu"
}

printf '%-9s %7s | %10s %8s | %10s %8s %6s %7s | %10s %8s %6s %7s\n' mode clients \
    direct lat_ms shardgate lat_ms ratio us/tx pgbouncer lat_ms ratio us/tx
for clients in 16 1; do
    for mode in simple extended prepared; do
        read -r d_tps d_lat _ < <(run $SHARD_PORT postgres "$mode" "$clients")
        read -r s_tps s_lat s_cpu < <(run 6432 app "$mode" "$clients" "$SG_PID")
        read -r b_tps b_lat b_cpu < <(run 6433 app "$mode" "$clients" "$PGB_PID")
        printf '%-9s %7s | %10s %8s | %10s %8s %6s %7s | %10s %8s %6s %7s\n' "$mode" "$clients" \
            "$d_tps" "$d_lat" "$s_tps" "$s_lat" "$(ratio "$s_tps" "$d_tps")" "$s_cpu" \
            "$b_tps" "$b_lat" "$(ratio "$b_tps" "$d_tps")" "$b_cpu"
    done
done

# Sharded lookup: a random key, SELECT by key, users spread over the 2 shards by hash. Through shardgate
# (routed per key) against direct to one server holding every row.
awk 'BEGIN { for (b = 0; b < 100; b++) { printf "INSERT INTO users (id, email) VALUES ";
    for (i = 1; i <= 1000; i++) { id = b * 1000 + i; printf "%s(%d, \047u%d@example.com\047)", (i > 1 ? ", " : ""), id, id }
    print " ON CONFLICT DO NOTHING;" } }' | PGPASSWORD=app psql -X -q -h 127.0.0.1 -p 6432 -U app app >/dev/null
# The direct baseline reads a copy of all 100,000 users on shard 0, so every lookup finds its row there
# as it does through shardgate.
psql -X -q -h 127.0.0.1 -p $SHARD_PORT -U postgres app -c "DROP TABLE IF EXISTS users_all;
    CREATE TABLE users_all (id bigint PRIMARY KEY, email text NOT NULL);
    INSERT INTO users_all SELECT g, 'u' || g || '@example.com' FROM generate_series(1, 100000) g" >/dev/null
printf '\\set id random(1, 100000)\nSELECT id, email FROM users WHERE id = :id;\n' >"$DEV/lookup.sql"
printf '\\set id random(1, 100000)\nSELECT id, email FROM users_all WHERE id = :id;\n' >"$DEV/lookup-direct.sql"
lookup() {
    local port=$1 user=$2 mode=$3 clients=$4 script=$5 pid=${6:-} out t0 t1 tps txs cpu=-
    [ -n "$pid" ] && t0=$(cpu_ticks "$pid")
    out=$(PGPASSWORD=app pgbench -h 127.0.0.1 -p "$port" -U "$user" -f "$script" -M "$mode" -c "$clients" \
        -j "$(( clients < 2 ? 1 : 2 ))" -T "$SECS" -n app 2>&1) || true
    [ -n "$pid" ] && t1=$(cpu_ticks "$pid")
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -n 1)
    txs=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
    if [ -n "$pid" ] && [ -n "$txs" ] && [ "$txs" != 0 ]; then
        cpu=$(awk -v a="$t0" -v b="$t1" -v n="$txs" -v hz="$TICK" 'BEGIN{printf "%.1f", (b-a)/hz*1e6/n}')
    fi
    echo "${tps:-failed} $cpu"
}
# Issue 3's yardstick: the sharded lookup's ratio (shardgate / direct to the owning shard) against the
# plain pooling ratio (pgbench -S through shardgate / direct), both with 16 clients. Direct to the owning
# shard runs 8 clients on each shard at once, each reading that shard's users table (a key another shard
# owns finds no row there, which costs the server a little less than a hit: the ratio errs low). The
# runs alternate in rounds, so that both ratios see the same phase of a noisy machine, and the medians
# are compared. Two more columns: the same ratio against one server holding a copy of every user, and
# the unsharded lookup (the direct script through shardgate, routed to the default shard).
ROUNDS=${ROUNDS:-3}
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
owning() {
    local mode=$1 a b
    lookup $SHARD_PORT postgres "$mode" 8 "$DEV/lookup.sql" >"$DEV/own0" &
    lookup $((SHARD_PORT + 1)) postgres "$mode" 8 "$DEV/lookup.sql" >"$DEV/own1" &
    wait
    read -r a _ <"$DEV/own0"
    read -r b _ <"$DEV/own1"
    awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1f", a + b }'
}
printf '\n%-9s | %-20s | %-20s | %-20s | %-20s | %6s | %s   (sharded lookup, 2 shards, 16 clients, %s rounds)\n' mode \
    "plain ratio" "sharded (owning)" "sharded (1 server)" "unsharded" "us/tx" "sharded/plain" "$ROUNDS"
for mode in simple extended prepared; do
    plain="" sharded="" one="" unsharded="" cpus=""
    for ((r = 0; r < ROUNDS; r++)); do
        read -r pd _ < <(run $SHARD_PORT postgres "$mode" 16)
        read -r ps _ < <(run 6432 app "$mode" 16)
        o=$(owning "$mode")
        read -r d _ < <(lookup $SHARD_PORT postgres "$mode" 16 "$DEV/lookup-direct.sql")
        read -r g g_cpu < <(lookup 6432 app "$mode" 16 "$DEV/lookup.sql" "$SG_PID")
        read -r u _ < <(lookup 6432 app "$mode" 16 "$DEV/lookup-direct.sql")
        plain="$plain $(ratio "$ps" "$pd")" sharded="$sharded $(ratio "$g" "$o")" one="$one $(ratio "$g" "$d")"
        unsharded="$unsharded $(ratio "$u" "$d")" cpus="$cpus $g_cpu"
    done
    mp=$(echo "$plain" | median) ms=$(echo "$sharded" | median)
    printf '%-9s | %-20s | %-20s | %-20s | %-20s | %6s | %s\n' "$mode" "$mp ($(echo $plain))" \
        "$ms ($(echo $sharded))" "$(echo "$one" | median) ($(echo $one))" \
        "$(echo "$unsharded" | median) ($(echo $unsharded))" "$(echo "$cpus" | median)" "$(ratio "$ms" "$mp")"
done
echo "(pgbench -S, ${SECS}s per run, scale 10; pgbouncer $(pgbouncer --version 2>/dev/null | head -n 1 | awk '{print $2}'); 'failed' = pgbench could not run that mode)"

# Cross-shard reads (4 shards): count(*) and a top-N ORDER BY, and shardgate's memory while it merges.
scripts/bench-scatter.sh 2000000 "$SECS"
