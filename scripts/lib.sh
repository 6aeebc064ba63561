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
