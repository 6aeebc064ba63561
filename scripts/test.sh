#!/usr/bin/env bash
# Runs every test: unit tests, the integration suite against throwaway PostgreSQL clusters, the storage
# engine suite. Tests start their own servers; nothing needs to be running.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
pg_bin >/dev/null
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl; } >/dev/null
# A real Prometheus scrapes shardgate in tests/it/ops/prometheus.rs (promtool checks the exposition).
command -v prometheus >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
    (service prometheus stop || true) 2>/dev/null
} >/dev/null
# The client drivers tests/it/drivers.rs runs (psycopg, asyncpg, node-postgres, pgjdbc).
scripts/drivers.sh
cargo test --locked "$@"
