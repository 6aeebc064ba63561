#!/usr/bin/env bash
# Local cluster: `scripts/dev.sh up [N]` starts N (default 2) PostgreSQL servers on 127.0.0.1:54320.., applies
# migrations/ to each, and starts shardgate on 127.0.0.1:6432; `scripts/dev.sh down` stops all of it.
# A second `up` is harmless. Data lives in .dev/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
source scripts/lib.sh

DEV=${SHARDGATE_DEV_DIR:-$REPO/.dev}
export PGOPTIONS="-c client_min_messages=warning"
BASE_PORT=54320
PROXY_PORT=6432

pg_up() {
    local bin=$1 i=$2 port=$((BASE_PORT + $2)) data="$DEV/pg$2"
    if [ ! -f "$data/PG_VERSION" ]; then
        mkdir -p "$data"
        [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$DEV"
        as_postgres "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
        cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$data'
max_connections = 200
CONF
    fi
    if ! as_postgres "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        as_postgres "$bin/pg_ctl" -D "$data" -l "$data/log" -w start >/dev/null
    fi
    if ! psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc "select 1 from pg_database where datname = 'app'" | grep -q 1; then
        psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE DATABASE app" >/dev/null
    fi
    echo "shard$i: postgres://postgres@127.0.0.1:$port/app"
}

write_map() {
    local n=$1 i per=$((1024 / $1))
    if [ "$n" = 2 ]; then echo "$REPO/shardmap.yaml"; return; fi
    {
        printf 'version: 1\nbuckets: 1024\ndefault: shard0\nshards:\n'
        for ((i = 0; i < n; i++)); do
            local last=$(((i + 1) * per - 1))
            if [ $((i + 1)) = "$n" ]; then last=1023; fi
            printf '  - {name: shard%d, host: 127.0.0.1, port: %d, database: app, buckets: [%d-%d]}\n' \
                "$i" $((BASE_PORT + i)) $((i * per)) "$last"
        done
        sed -n '/^tables:/,$p' "$REPO/shardmap.yaml"
    } >"$DEV/shardmap.yaml"
    echo "$DEV/shardmap.yaml"
}

proxy_running() {
    [ -f "$DEV/shardgate.pid" ] && kill -0 "$(cat "$DEV/shardgate.pid")" 2>/dev/null
}

up() {
    local n=${1:-2} bin map i
    bin=$(pg_bin)
    export PATH="$bin:$PATH"
    mkdir -p "$DEV"
    for ((i = 0; i < n; i++)); do
        pg_up "$bin" "$i"
    done
    map=$(write_map "$n")
    cargo build --release --quiet
    # Every shard of the map, each migration in its own transaction, recorded in shardgate_migrations.
    target/release/shardgate migrate --config scripts/dev/shardgate.yaml --shardmap "$map"
    if ! proxy_running; then
        nohup target/release/shardgate --config scripts/dev/shardgate.yaml --shardmap "$map" >"$DEV/shardgate.log" 2>&1 &
        echo $! >"$DEV/shardgate.pid"
        for _ in $(seq 1 100); do
            (exec 3<>/dev/tcp/127.0.0.1/$PROXY_PORT) 2>/dev/null && break
            proxy_running || { cat "$DEV/shardgate.log" >&2; exit 1; }
            sleep 0.1
        done
    fi
    echo "logs: $DEV/shardgate.log"
    echo "admin: postgres://admin:admin@127.0.0.1:$PROXY_PORT/shardgate"
    echo "postgres://app:app@127.0.0.1:$PROXY_PORT/app"
}

down() {
    local bin d
    if proxy_running; then
        kill -TERM "$(cat "$DEV/shardgate.pid")"
        for _ in $(seq 1 100); do proxy_running || break; sleep 0.1; done
    fi
    rm -f "$DEV/shardgate.pid"
    bin=$(pg_bin)
    for d in "$DEV"/pg*; do
        [ -f "$d/PG_VERSION" ] || continue
        as_postgres "$bin/pg_ctl" -D "$d" status >/dev/null 2>&1 && as_postgres "$bin/pg_ctl" -D "$d" -m fast -w stop >/dev/null
    done
    echo "stopped"
}

case "${1:-}" in
    up) shift; up "$@" ;;
    down) down ;;
    *) echo "usage: scripts/dev.sh up [N] | down" >&2; exit 2 ;;
esac
