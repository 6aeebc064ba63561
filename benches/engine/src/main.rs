//! Engine benchmark: shardgate's lsm next to fjall 3 at the same durability
//! settings, with a raw write+fdatasync loop on the same disk as the floor.
//! Usage: engine-bench <data dir on the disk to measure>

mod engines;
mod workloads;

use std::path::PathBuf;

use workloads::Row;

fn main() {
    let base = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "target/bench-data".into()));
    let n: u64 = std::env::var("BENCH_KEYS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let secs: f64 = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let wal_mb: u64 = std::env::var("BENCH_WAL_MB").ok().and_then(|s| s.parse().ok()).unwrap_or(256);
    std::fs::create_dir_all(&base).expect("create bench dir");
    let mut rows: Vec<Row> = Vec::new();
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let run = |what: &str| only.is_empty() || only.split(',').any(|o| o == what);
    if run("durable") {
        rows.extend(workloads::durable(&base, secs));
    }
    if run("fill") {
        rows.extend(workloads::fill_and_read(&base, n));
    }
    if run("recovery") {
        rows.extend(workloads::recovery(&base, wal_mb));
    }
    println!();
    println!("| benchmark | shardgate lsm | fjall 3 | ratio | raw write+fdatasync |");
    println!("|---|---:|---:|---:|---:|");
    for r in &rows {
        let ratio = match (r.ours, r.fjall) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
            _ => "-".into(),
        };
        let f = |v: Option<f64>| v.map_or("-".to_string(), fmt);
        println!("| {} | {} | {} | {} | {} |", r.name, f(r.ours), f(r.fjall), ratio, f(r.raw));
    }
    let _ = std::fs::remove_dir_all(&base);
}

fn fmt(v: f64) -> String {
    if v >= 100.0 { format!("{v:.0}") } else { format!("{v:.2}") }
}
