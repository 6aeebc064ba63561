//! `/metrics` while a workload runs: counters move, histograms fill, and the exposition format parses;
//! `/healthz` answers.

use std::collections::HashMap;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{TestProxy, shared};

async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    let (head, body) = body.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// Parses the Prometheus text format strictly enough to catch malformed output: every sample belongs to a
/// family with HELP and TYPE, names are valid, values are numbers. Returns sample -> value.
fn parse_exposition(text: &str) -> HashMap<String, f64> {
    let (mut help, mut types, mut samples) = (HashMap::new(), HashMap::new(), HashMap::new());
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').expect("HELP has text");
            assert!(!text.is_empty(), "empty HELP for {name}");
            help.insert(name.to_owned(), ());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                ["counter", "gauge", "histogram", "summary"].contains(&kind),
                "{line}"
            );
            types.insert(name.to_owned(), kind.to_owned());
        } else {
            assert!(!line.starts_with('#'), "unknown comment {line}");
            let (series, value) = line.rsplit_once(' ').expect("sample has a value");
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line}"));
            let name = series.split('{').next().unwrap();
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "bad name {name}"
            );
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|f| types.contains_key(*f))
                .unwrap_or(name);
            assert!(
                types.contains_key(family) && help.contains_key(family),
                "{family} lacks TYPE or HELP"
            );
            samples.insert(series.to_owned(), value);
        }
    }
    samples
}

fn sum(samples: &HashMap<String, f64>, prefix: &str) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test]
async fn counters_move_and_histograms_fill() {
    let p = TestProxy::start(shared(), |c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap())
    })
    .await;
    let addr = p.running.as_ref().unwrap().metrics_addr().unwrap();
    let before = parse_exposition(&get(addr, "/metrics").await.1);
    let c = p.client().await;
    for i in 0..50i32 {
        c.query_one("select $1::int4", &[&i]).await.unwrap();
    }
    let (status, text) = get(addr, "/metrics").await;
    assert!(status.contains("200"), "{status}");
    let after = parse_exposition(&text);
    for name in [
        "shardgate_queries_total",
        "shardgate_transactions_total",
        "shardgate_network_received_bytes_total",
        "shardgate_network_sent_bytes_total",
    ] {
        assert!(
            sum(&after, name) >= sum(&before, name) + 50.0,
            "{name} did not move"
        );
    }
    assert!(sum(&after, "shardgate_query_duration_seconds_count") >= 50.0);
    assert!(sum(&after, "shardgate_pool_checkout_wait_seconds_bucket") > 0.0);
    assert!(
        after
            .keys()
            .any(|k| k.starts_with("shardgate_pool_idle_connections{"))
    );
    assert!(after.contains_key("shardgate_map_version"));
    // 50 executions of one statement: one parse, the rest from the parse cache.
    assert!(sum(&after, "shardgate_router_parse_cache_hits_total") >= 49.0);
    assert!(sum(&after, "shardgate_router_parse_cache_misses_total") >= 1.0);
    let (status, body) = get(addr, "/healthz").await;
    assert!(
        status.contains("200") && body.starts_with("ok"),
        "{status} {body}"
    );
}
