//! The HTTP endpoint for operations: `GET /metrics` (Prometheus text format) and `GET /healthz` (200 when
//! every shard answers, 503 otherwise). A deliberately tiny HTTP/1.1 responder: one request per connection.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::proxy::Proxy;

pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

pub(crate) async fn serve(proxy: Arc<Proxy>, listener: TcpListener) {
    let mut stop = proxy.shutdown_signal();
    loop {
        tokio::select! {
            r = listener.accept() => if let Ok((tcp, _)) = r {
                let proxy = proxy.clone();
                tokio::spawn(async move {
                    if let Err(e) = respond(&proxy, tcp).await {
                        tracing::debug!(error = %e, "metrics request failed");
                    }
                });
            },
            _ = stop.changed() => return,
        }
    }
}

async fn respond(proxy: &Proxy, mut tcp: TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
        let mut chunk = [0u8; 1024];
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let request = String::from_utf8_lossy(&buf);
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let (status, content_type, body) = match path {
        "/metrics" => {
            proxy.refresh_gauges();
            (
                "200 OK",
                "text/plain; version=0.0.4",
                super::metrics::handle().render(),
            )
        }
        "/healthz" => {
            let down = proxy.unhealthy_shards().await;
            if down.is_empty() {
                ("200 OK", "text/plain", "ok\n".to_owned())
            } else {
                (
                    "503 Service Unavailable",
                    "text/plain",
                    format!("shards not answering: {}\n", down.join(", ")),
                )
            }
        }
        _ => ("404 Not Found", "text/plain", "not found\n".to_owned()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await?;
    tcp.write_all(body.as_bytes()).await?;
    tcp.shutdown().await
}
