//! Directory tables backed by a lookup table in PostgreSQL: a key that is not inline in the map is looked
//! up with the map's query (one text parameter, the key; it returns a shard name) on the map's lookup
//! shard, and the answer is cached for the map's TTL. An unknown key falls back to the table's default.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::backend::BackendError;
use crate::protocol::frontend as msg;
use crate::protocol::{frame, sqlstate};
use crate::proxy::Topology;
use crate::router::{Refusal, Route};
use crate::sharding::{KeyValue, Strategy, TableKind};

/// (map version, table index, key).
type CacheKey = (u64, usize, KeyValue);

/// An answer: `Some(shard name)`, or `None` for "not in the table"; and when it was read.
type Answer = (Option<String>, Instant);

/// Answers cached per map version, table and key.
#[derive(Default)]
pub(crate) struct DirectoryCache {
    entries: Mutex<HashMap<CacheKey, Answer>>,
}

/// Bounds the cache; past it the oldest half of the answers is dropped.
const MAX_ENTRIES: usize = 100_000;

impl DirectoryCache {
    /// The route of a directory key that is not inline in the map.
    pub(crate) async fn resolve(&self, topo: &Topology, table: usize, key: &KeyValue) -> Route {
        let Some(TableKind::Sharded(sharded)) = topo.map.tables.get(table).map(|t| &t.kind) else {
            return refused(format!("table #{table} is not a directory table"));
        };
        let Strategy::Directory(dir) = &sharded.strategy else {
            return refused(format!("table #{table} is not a directory table"));
        };
        let Some(lookup) = &dir.lookup else {
            return refused(format!("{key} is not in the directory"));
        };
        let name = topo.map.tables[table].name.clone();
        let cache_key = (topo.map.version, table, key.clone());
        let cached = {
            let entries = self.entries.lock().expect("directory cache lock");
            entries
                .get(&cache_key)
                .filter(|(_, at)| at.elapsed() < lookup.ttl)
                .map(|(v, _)| v.clone())
        };
        let answer = match cached {
            Some(v) => v,
            None => match query(topo, lookup.shard.0, &lookup.query, key).await {
                Ok(v) => {
                    self.remember(cache_key, v.clone());
                    v
                }
                Err(e) => {
                    tracing::warn!(error = %e, table = %name, "directory lookup failed");
                    return Route::Refused(Refusal {
                        code: sqlstate::CONNECTION_FAILURE,
                        message: format!("directory lookup for {name} failed: {e}"),
                        hint: None,
                    });
                }
            },
        };
        match answer {
            Some(shard) => match topo.map.shard_named(&shard) {
                Some(id) => Route::Shard(id),
                None => refused(format!(
                    "the lookup table of {name} maps {key} to unknown shard {shard:?}"
                )),
            },
            None => match dir.default {
                Some(id) => Route::Shard(id),
                None => refused(format!("{key} is not in the directory of {name}")),
            },
        }
    }

    fn remember(&self, key: CacheKey, value: Option<String>) {
        let mut entries = self.entries.lock().expect("directory cache lock");
        if entries.len() >= MAX_ENTRIES {
            let mut ages: Vec<Duration> = entries.values().map(|(_, at)| at.elapsed()).collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() / 2];
            entries.retain(|_, (_, at)| at.elapsed() < cutoff);
        }
        entries.insert(key, (value, Instant::now()));
    }
}

fn refused(message: String) -> Route {
    Route::Refused(Refusal {
        code: sqlstate::FEATURE_NOT_SUPPORTED,
        message,
        hint: Some("add the key to the table's `entries` or give it a `default` shard".into()),
    })
}

/// Runs the lookup query with the key as its one text parameter; the first column of the first row.
async fn query(
    topo: &Topology,
    shard: usize,
    sql: &str,
    key: &KeyValue,
) -> Result<Option<String>, BackendError> {
    let pool = &topo.pools[shard];
    let mut conn = pool.checkout(Duration::from_secs(5)).await?;
    let name = pool.target.shard.clone();
    // The lookup runs with the server's own settings, not those a client's session left on it.
    conn.align_now(&name, &[]).await?;
    let text = match key {
        KeyValue::Text(s) => s.clone(),
        other => other.to_string(),
    };
    let mut buf = BytesMut::new();
    msg::write_parse(&mut buf, "", sql, &[0, 0]);
    // One text parameter, text results: the Bind a driver would send.
    let key = msg::BindParams {
        formats: Vec::new(),
        values: vec![Some(text.as_bytes())],
        tail: &[0, 0],
    };
    let mut rest = BytesMut::new();
    msg::write_bind_rest(&mut rest, &key, &[0]);
    msg::write_bind(&mut buf, "", "", &rest);
    msg::write_execute(&mut buf, "", 1);
    msg::write_sync(&mut buf);
    conn.send(&name, &buf).await?;
    let mut answer = None;
    let mut failed = None;
    loop {
        let m = conn.recv_frame(&name).await?;
        match m[0] {
            b'D' if answer.is_none() => answer = first_column(&m[frame::HEADER_LEN..]),
            b'E' => {
                failed = Some(String::from_utf8_lossy(&m[frame::HEADER_LEN..]).replace('\0', " "))
            }
            b'Z' => {
                conn.tx_status = frame::ready_status(&m);
                break;
            }
            _ => {}
        }
    }
    if let Some(e) = failed {
        return Err(BackendError::Io {
            shard: name,
            source: std::io::Error::other(e),
        });
    }
    if conn.tx_status == b'I' {
        conn.release();
    }
    Ok(answer)
}

/// The first column of a DataRow body as text (`None` for NULL).
fn first_column(body: &[u8]) -> Option<String> {
    let mut c = frame::Cursor::new(body, "DataRow");
    if c.i16().ok()? < 1 {
        return None;
    }
    let len = c.i32().ok()?;
    if len < 0 {
        return None;
    }
    let v = c.take(len as usize).ok()?;
    Some(String::from_utf8_lossy(v).into_owned())
}
