//! A real Prometheus (the Debian package) scrapes shardgate a few times and answers a query for one of
//! its metrics; promtool validates the exposition format.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::cluster::free_port;
use crate::harness::{TestProxy, shared};

/// Kills the Prometheus child when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).await.ok()?;
    Some(body.split_once("\r\n\r\n")?.1.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_and_queries_a_metric() {
    let p = TestProxy::start(shared(), |c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap())
    })
    .await;
    let metrics = p.running.as_ref().unwrap().metrics_addr().unwrap();
    let c = p.client().await;
    for i in 0..20i32 {
        c.query_one("select $1::int4", &[&i]).await.unwrap();
    }

    // promtool: the exposition format as Prometheus itself reads it.
    let exposition = get(metrics, "/metrics").await.unwrap();
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is installed");
    use std::io::Write;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    // Exit 0: no errors (lint notes about e.g. counters are printed but do not fail).
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: shardgate\n    static_configs: [{{targets: ['{metrics}']}}]\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let web: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let _prometheus = Running(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian package) is installed"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let query = "/api/v1/query?query=shardgate_queries_total";
    loop {
        if let Some(body) = get(web, query).await
            && body.contains("\"status\":\"success\"")
            && body.contains("\"__name__\":\"shardgate_queries_total\"")
        {
            assert!(body.contains("\"job\":\"shardgate\""), "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never returned the metric"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A few scrapes happened: the up series has samples over a range.
    let body = get(web, "/api/v1/query?query=count_over_time(up%5B1m%5D)")
        .await
        .unwrap();
    assert!(body.contains("\"status\":\"success\""), "{body}");
}
