#!/usr/bin/env bash
# Storage-engine benchmark: shardgate's lsm next to fjall 3 at the same
# durability settings, and a raw write+fdatasync loop on the same disk.
# Builds the independent bench crate in benches/engine (release) and prints
# one table. Data goes under target/ (same disk as the repo) unless BENCH_DIR
# is set. Knobs: BENCH_KEYS (1000000), BENCH_SECS (3), BENCH_WAL_MB (256),
# BENCH_ONLY (durable,fill,recovery), BENCH_WRITERS (1,8,64).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="$root/target/bench-engine"
data="${BENCH_DIR:-$root/target/bench-engine-data}"
cargo build --release --quiet --manifest-path "$root/benches/engine/Cargo.toml" --target-dir "$target"
echo "machine: $(nproc) cores, $(uname -r); data dir: $data ($(df -h --output=source "$(dirname "$data")" | tail -1))" >&2
"$target/release/engine-bench" "$data"
