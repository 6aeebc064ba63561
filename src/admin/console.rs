//! The admin console: `psql -U admin shardgate`. Simple query protocol only; every answer is an
//! ordinary result set so any client can read it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::command::{self, Command, Show};
use crate::frontend::conn::ClientConn;
use crate::frontend::error::SessionError;
use crate::frontend::stream::ClientStream;
use crate::protocol::backend::{self, ErrorFields, Severity};
use crate::protocol::startup::CancelKey;
use crate::protocol::{ProtocolError, frontend as msg, sqlstate};
use crate::proxy::Proxy;

/// A result set of text columns.
struct Table {
    columns: &'static [&'static str],
    rows: Vec<Vec<Option<String>>>,
}

pub(crate) async fn run(
    proxy: &Arc<Proxy>,
    mut conn: ClientConn<ClientStream>,
    key: CancelKey,
) -> Result<(), SessionError> {
    let mut out = BytesMut::new();
    for (name, value) in [
        ("server_version", "15.0 (shardgate admin)"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO, MDY"),
        ("integer_datetimes", "on"),
        ("standard_conforming_strings", "on"),
    ] {
        backend::parameter_status(&mut out, name, value);
    }
    backend::backend_key_data(&mut out, key.pid, key.secret);
    backend::ready_for_query(&mut out, b'I');
    conn.send(&out).await?;
    let mut skipping = false;
    loop {
        out.clear();
        let (tag, body) = conn.read_message().await?;
        match tag {
            b'Q' => {
                let sql = msg::query(&body)?;
                match command::parse(sql) {
                    Ok(c) => {
                        if execute(proxy, c, &mut out).await {
                            conn.send(&out).await?;
                            return Ok(());
                        }
                    }
                    Err(m) => backend::error_response(
                        &mut out,
                        &ErrorFields::new(Severity::Error, sqlstate::FEATURE_NOT_SUPPORTED, m),
                    ),
                }
                backend::ready_for_query(&mut out, b'I');
            }
            b'S' => {
                skipping = false;
                backend::ready_for_query(&mut out, b'I');
            }
            b'X' => return Ok(()),
            b'P' | b'B' | b'D' | b'E' | b'C' | b'H' if !skipping => {
                skipping = true;
                let e = ErrorFields::new(
                    Severity::Error,
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    "the admin console speaks only the simple query protocol",
                );
                backend::error_response(&mut out, &e);
            }
            b'P' | b'B' | b'D' | b'E' | b'C' | b'H' => {}
            other => return Err(ProtocolError::UnexpectedMessage(other).into()),
        }
        conn.send(&out).await?;
    }
}

/// Runs one command into `out`; true when the console should close (SHUTDOWN).
async fn execute(proxy: &Arc<Proxy>, c: Command, out: &mut BytesMut) -> bool {
    let done = |out: &mut BytesMut, tag: &str| backend::command_complete(out, tag);
    match c {
        Command::Show(what) => write_table(out, show(proxy, what)),
        Command::Reload => match proxy.reload() {
            Ok(version) => {
                let e = ErrorFields::new(
                    Severity::Notice,
                    "00000",
                    format!("shard map version {version} loaded"),
                );
                backend::error_response(out, &e);
                done(out, "RELOAD");
            }
            Err(why) => backend::error_response(
                out,
                &ErrorFields::new(
                    Severity::Error,
                    "F0000",
                    format!("RELOAD refused, the old map stays: {why}"),
                ),
            ),
        },
        Command::Pause(shard) | Command::Resume(shard) if !known_shard(proxy, shard.as_deref()) => {
            let m = format!("no shard named {:?}", shard.unwrap_or_default());
            backend::error_response(out, &ErrorFields::new(Severity::Error, "42704", m));
        }
        Command::Pause(shard) => {
            let pools = pools(proxy, shard.as_deref());
            for p in &pools {
                p.set_paused(true);
            }
            // PAUSE returns once the transactions already running have finished.
            let deadline = Instant::now() + Duration::from_millis(proxy.config.shutdown_timeout_ms);
            while pools.iter().any(|p| p.stats().active > 0) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            done(out, "PAUSE");
        }
        Command::Resume(shard) => {
            for p in pools(proxy, shard.as_deref()) {
                p.set_paused(false);
            }
            done(out, "RESUME");
        }
        Command::Shutdown => {
            proxy.request_shutdown();
            done(out, "SHUTDOWN");
            return true;
        }
        Command::Ignored => done(out, "SET"),
    }
    false
}

fn known_shard(proxy: &Proxy, shard: Option<&str>) -> bool {
    shard.is_none_or(|s| {
        proxy
            .topology
            .load()
            .pools
            .iter()
            .any(|p| p.target.shard == s)
    })
}

fn pools(proxy: &Proxy, shard: Option<&str>) -> Vec<Arc<crate::backend::pool::Pool>> {
    proxy
        .topology
        .load()
        .pools
        .iter()
        .filter(|p| shard.is_none_or(|s| p.target.shard == s))
        .cloned()
        .collect()
}

fn write_table(out: &mut BytesMut, t: Table) {
    backend::row_description_text(out, t.columns);
    for row in &t.rows {
        let values: Vec<Option<&str>> = row.iter().map(|v| v.as_deref()).collect();
        backend::data_row(out, &values);
    }
    backend::command_complete(out, &format!("SHOW {}", t.rows.len()));
}

fn s(v: impl ToString) -> Option<String> {
    Some(v.to_string())
}

fn show(proxy: &Proxy, what: Show) -> Table {
    let topology = proxy.topology.load();
    match what {
        Show::Shards => Table {
            columns: &["shard", "host", "port", "database", "healthy", "paused"],
            rows: topology
                .pools
                .iter()
                .map(|p| {
                    let t = &p.target;
                    vec![
                        s(&t.shard),
                        s(&t.host),
                        s(t.port),
                        s(&t.database),
                        s(p.is_healthy()),
                        s(p.is_paused()),
                    ]
                })
                .collect(),
        },
        Show::Pools => Table {
            columns: &["shard", "idle", "active", "waiting", "max_size", "paused"],
            rows: topology
                .pools
                .iter()
                .map(|p| {
                    let st = p.stats();
                    vec![
                        s(&p.target.shard),
                        s(st.idle),
                        s(st.active),
                        s(st.waiting),
                        s(st.max),
                        s(p.is_paused()),
                    ]
                })
                .collect(),
        },
        Show::Clients => Table {
            columns: &[
                "id",
                "user",
                "addr",
                "state",
                "connected_seconds",
                "server_pid",
            ],
            rows: proxy
                .clients
                .all()
                .iter()
                .map(|c| {
                    let pid = c.server().map(|(_, pid)| pid.to_string());
                    vec![
                        s(c.id),
                        s(&c.user),
                        c.peer.map(|p| p.to_string()),
                        s(c.state().as_str()),
                        s(c.connected.elapsed().as_secs()),
                        pid,
                    ]
                })
                .collect(),
        },
        Show::Servers => {
            let mut rows = Vec::new();
            for p in &topology.pools {
                for (pid, idle) in p.idle_servers() {
                    rows.push(vec![s(&p.target.shard), s(pid), s("idle"), None, s(idle)]);
                }
            }
            for c in proxy.clients.all() {
                if let Some((shard, pid)) = c.server() {
                    let name = topology.pools.get(shard).map(|p| p.target.shard.clone());
                    rows.push(vec![name, s(pid), s("active"), s(c.id), s(0)]);
                }
            }
            Table {
                columns: &["shard", "pid", "state", "client_id", "idle_seconds"],
                rows,
            }
        }
        Show::Stats => Table {
            columns: &["shard", "transactions", "queries", "avg_query_us"],
            rows: topology
                .pools
                .iter()
                .map(|p| {
                    let q = p.stats.queries.load(Ordering::Relaxed);
                    let us = p.stats.query_micros.load(Ordering::Relaxed);
                    vec![
                        s(&p.target.shard),
                        s(p.stats.transactions.load(Ordering::Relaxed)),
                        s(q),
                        s(us.checked_div(q).unwrap_or(0)),
                    ]
                })
                .collect(),
        },
        Show::Config => {
            let c = &proxy.config;
            let pairs: Vec<(&str, String)> = vec![
                ("listen", c.listen.to_string()),
                ("database", c.database.clone()),
                ("admin_database", c.admin_database.clone()),
                ("pool_mode", format!("{:?}", c.pool_mode).to_lowercase()),
                (
                    "session_state",
                    format!("{:?}", c.session_state).to_lowercase(),
                ),
                ("max_clients", c.max_clients.to_string()),
                ("max_message_bytes", c.max_message_bytes.to_string()),
                (
                    "client_idle_timeout_ms",
                    c.client_idle_timeout_ms.to_string(),
                ),
                ("shutdown_timeout_ms", c.shutdown_timeout_ms.to_string()),
                ("pool.min_size", c.pool.min_size.to_string()),
                ("pool.max_size", c.pool.max_size.to_string()),
                (
                    "pool.checkout_timeout_ms",
                    c.pool.checkout_timeout_ms.to_string(),
                ),
                (
                    "pool.connect_timeout_ms",
                    c.pool.connect_timeout_ms.to_string(),
                ),
                (
                    "pool.health_check_interval_ms",
                    c.pool.health_check_interval_ms.to_string(),
                ),
                (
                    "pool.server_idle_timeout_ms",
                    c.pool.server_idle_timeout_ms.to_string(),
                ),
                ("pool.reset_query", c.pool.reset_query.clone()),
                ("tls", c.tls.is_some().to_string()),
                ("shardmap", c.shardmap.display().to_string()),
                (
                    "metrics_listen",
                    c.metrics_listen
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| "off".into()),
                ),
                (
                    "uptime_seconds",
                    proxy.started.elapsed().as_secs().to_string(),
                ),
            ];
            Table {
                columns: &["key", "value"],
                rows: pairs
                    .into_iter()
                    .map(|(k, v)| vec![s(k), Some(v)])
                    .collect(),
            }
        }
        Show::Map => Table {
            columns: &["version", "shard", "host", "port", "database"],
            rows: topology
                .map
                .shards
                .iter()
                .map(|sh| {
                    vec![
                        s(topology.map.version),
                        s(&sh.name),
                        s(&sh.host),
                        s(sh.port),
                        s(&sh.database),
                    ]
                })
                .collect(),
        },
    }
}
