//! How a shard's database orders text. A merge over several shards compares text bytes (exact for
//! the C collation and C.UTF-8); text ordered otherwise (a linguistic libc locale, ICU) would be merged
//! out of its own order, so such merges are refused.
//!
//! Two questions, asked of the server itself in one round trip: whether the database's default
//! collation orders text bytewise (by ordering a few strings: the answer holds whatever the provider,
//! locale or PostgreSQL version), and which columns of user tables have a collation of their own that
//! is not bytewise (`COLLATE "en-US-x-icu"` in a C database).

use std::collections::HashMap;

use postgres_protocol::message::backend::Message;

use super::BackendError;
use super::server::ServerConn;

/// Strings whose order differs between bytewise and every linguistic collation: case, punctuation,
/// leading blanks, a non-ASCII letter.
const PROBE: &str = "SELECT string_agg(x, ',' ORDER BY x) \
    FROM (VALUES ('a'), ('B'), ('_'), ('b'), ('A'), (' z'), ('\u{e9}')) v(x)";

/// The probe's strings in byte order.
const BYTEWISE: &str = " z,A,B,_,a,b,\u{e9}";

/// Columns (of tables, views and the like, outside the system schemas) with a collation of their own
/// other than the bytewise ones (oids 100, 950 and 951 are "default", "C" and "POSIX"; C.UTF-8 orders
/// by code point, which is UTF-8's byte order).
const COLUMNS: &str = "SELECT a.attrelid::int8, a.attnum, co.collname \
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
    JOIN pg_collation co ON co.oid = a.attcollation \
    WHERE a.attcollation NOT IN (0, 100, 950, 951) AND a.attnum > 0 AND NOT a.attisdropped \
    AND co.collname NOT IN ('default', 'C', 'POSIX', 'ucs_basic', 'C.utf8', 'C.UTF-8', 'pg_c_utf8') \
    AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)";

/// How a database orders text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TextOrder {
    /// Its default collation orders text as its bytes do.
    pub bytewise: bool,
    /// Columns whose own collation does not: (table oid, attribute number) -> collation name.
    pub linguistic: HashMap<(u32, i16), String>,
}

impl ServerConn {
    /// How the database orders text; None when the probe failed (cancelled, say), which is no answer.
    pub(crate) async fn text_order(
        &mut self,
        shard: &str,
    ) -> Result<Option<TextOrder>, BackendError> {
        let mut out = bytes::BytesMut::new();
        postgres_protocol::message::frontend::query(&format!("{PROBE}; {COLUMNS}"), &mut out)
            .map_err(|e| self.io_err(shard, e))?;
        self.send(shard, &out).await?;
        let (mut results, mut failed) = (0, false);
        let mut order = None;
        let mut linguistic = HashMap::new();
        loop {
            match self.recv(shard).await? {
                Message::RowDescription(_) => results += 1,
                Message::DataRow(row) => {
                    let cols = columns(&row);
                    match (results, cols.as_slice()) {
                        (1, [Some(o)]) => order = Some(o.to_vec()),
                        (2, [Some(t), Some(a), Some(c)]) => {
                            let num = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<i64>().ok();
                            if let (Some(t), Some(a)) = (num(t), num(a)) {
                                let name = String::from_utf8_lossy(c).into_owned();
                                linguistic.insert((t as u32, a as i16), name);
                            }
                        }
                        _ => failed = true,
                    }
                }
                Message::ErrorResponse(_) => failed = true,
                Message::ReadyForQuery(r) => {
                    self.tx_status = r.status();
                    return Ok(order
                        .filter(|_| !failed && results == 2)
                        .map(|o| TextOrder {
                            bytewise: o == BYTEWISE.as_bytes(),
                            linguistic,
                        }));
                }
                _ => {}
            }
        }
    }
}

/// The values of a DataRow (`None` for NULL); a malformed row ends early.
fn columns(row: &postgres_protocol::message::backend::DataRowBody) -> Vec<Option<&[u8]>> {
    let mut ranges = row.ranges();
    let mut out = Vec::new();
    while let Ok(Some(r)) = fallible_iterator::FallibleIterator::next(&mut ranges) {
        out.push(r.map(|r| &row.buffer()[r]));
    }
    out
}
