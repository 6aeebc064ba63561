# Shared shell helpers for scripts/ and .ci/: find or install PostgreSQL, run as the postgres user.
# shellcheck shell=bash

# Prints the newest PostgreSQL bin dir, installing the Debian package when none is there.
pg_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$dir" ] || [ ! -x "$dir/postgres" ]; then
        echo "PostgreSQL is missing: installing it from Debian packages" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2 && apt-get install -y -qq postgresql postgresql-contrib >&2
        # The package starts its own cluster; shardgate's scripts and tests start their own.
        (service postgresql stop || true) >/dev/null 2>&1
        dir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    fi
    echo "$dir"
}

# Runs a command as the postgres user when we are root (PostgreSQL refuses to run as root).
as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Starts pgbouncer (Debian's, installed when missing) with its files under $1: transaction pooling on
# 127.0.0.1:6433 in front of database app on 127.0.0.1:$2, which clients reach as app (trusted) and it
# as postgres. One already running from $1 is stopped first: its servers may have restarted since. Sets
# PGB_PID; the caller stops it.
start_pgbouncer() {
    local dir=$1 port=$2
    command -v pgbouncer >/dev/null || { apt-get update -qq && apt-get install -y -qq pgbouncer; } >/dev/null
    mkdir -p "$dir"
    cat >"$dir/pgbouncer.ini" <<INI
[databases]
app = host=127.0.0.1 port=$port dbname=app user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = 6433
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
default_pool_size = 20
max_client_conn = 200
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
    echo '"app" "app"' >"$dir/users.txt"
    if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$dir"; fi
    if [ -f "$dir/pgbouncer.pid" ]; then
        local old
        old=$(cat "$dir/pgbouncer.pid")
        kill "$old" 2>/dev/null && while kill -0 "$old" 2>/dev/null; do sleep 0.1; done
    fi
    as_postgres pgbouncer -d "$dir/pgbouncer.ini"
    sleep 0.5
    PGB_PID=$(cat "$dir/pgbouncer.pid")
}

# Stops the pgbouncer start_pgbouncer started, if any.
stop_pgbouncer() {
    if [ -n "${PGB_PID:-}" ]; then kill "$PGB_PID" 2>/dev/null || true; fi
}

# a / b to two decimals, or "-" when either is missing or not positive.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a+0 > 0 && b+0 > 0) printf "%.2f", a/b; else print "-" }'; }
