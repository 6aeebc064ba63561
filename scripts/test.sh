#!/usr/bin/env bash
# Runs every test: unit tests, the integration suite against throwaway PostgreSQL clusters, the storage
# engine suite. Tests start their own servers; nothing needs to be running.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
pg_bin >/dev/null
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl; } >/dev/null
cargo test --locked "$@"
