//! Whether a shard's database orders text bytewise. A merge over several shards compares text bytes
//! (exact for the C collation and C.UTF-8); a database whose default collation orders text otherwise (a
//! linguistic libc locale, ICU) would get rows merged out of its own order, so such merges are refused.
//! Asked once per pool, by ordering a few strings on the server itself: the answer holds whatever the
//! provider, locale or PostgreSQL version.

use postgres_protocol::message::backend::Message;

use super::BackendError;
use super::server::ServerConn;

/// Strings whose order differs between bytewise and every linguistic collation: case, punctuation,
/// leading blanks, a non-ASCII letter.
const PROBE: &str = "SELECT string_agg(x, ',' ORDER BY x) \
    FROM (VALUES ('a'), ('B'), ('_'), ('b'), ('A'), (' z'), ('\u{e9}')) v(x)";

/// The probe's strings in byte order.
const BYTEWISE: &str = " z,A,B,_,a,b,\u{e9}";

impl ServerConn {
    /// Whether the database's default collation orders text as its bytes do; None when the probe
    /// failed (cancelled, say), which is no answer.
    pub(crate) async fn orders_text_bytewise(
        &mut self,
        shard: &str,
    ) -> Result<Option<bool>, BackendError> {
        let mut out = bytes::BytesMut::new();
        postgres_protocol::message::frontend::query(PROBE, &mut out)
            .map_err(|e| self.io_err(shard, e))?;
        self.send(shard, &out).await?;
        let mut order = None;
        loop {
            match self.recv(shard).await? {
                Message::DataRow(row) => {
                    let mut ranges = row.ranges();
                    if let Ok(Some(Some(r))) =
                        fallible_iterator::FallibleIterator::next(&mut ranges)
                    {
                        order = Some(row.buffer()[r].to_vec());
                    }
                }
                Message::ReadyForQuery(r) => {
                    self.tx_status = r.status();
                    return Ok(order.map(|o| o == BYTEWISE.as_bytes()));
                }
                _ => {}
            }
        }
    }
}
