//! The global prepared statements one server holds (see `frontend::statements`), at most `cap` of
//! them: past that the least recently used one is closed on the server before the next is prepared,
//! so neither the server's memory nor shardgate's grows with every distinct SQL text clients send.
//!
//! A statement prepared before DDL changed the columns it returns is refused by PostgreSQL ("cached
//! plan must not change result type"), for ever. Servers keep statements for every client, so a
//! client that prepares a statement after the DDL would get it too. Every statement a server holds is
//! stamped with the schema epoch it was prepared in; DDL seen through shardgate, or that refusal from
//! any server, starts a new epoch, and a statement from an older one is closed and prepared again
//! where it is next used.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;

use crate::protocol::frame;
use crate::protocol::frontend as msg;

/// The schema epoch every server of the proxy shares.
#[derive(Debug, Clone)]
pub(crate) struct SchemaEpoch(Arc<AtomicU64>);

impl Default for SchemaEpoch {
    fn default() -> Self {
        // 0 marks a statement whose epoch is unknown (`Prepared::restore`): stale in every epoch.
        SchemaEpoch(Arc::new(AtomicU64::new(1)))
    }
}

impl SchemaEpoch {
    fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// The schema changed: every statement prepared until now is prepared again where next used.
    pub(crate) fn changed(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

/// Whether a server's ErrorResponse is PostgreSQL's refusal to run a prepared statement whose result
/// columns changed since it was prepared ("cached plan must not change result type"). It comes at the
/// Bind or Describe, before anything ran; preparing the statement again cures it. Told by its
/// routine, which neither lc_messages translates nor a client's RAISE can set.
pub(crate) fn stale_statement(m: &[u8]) -> bool {
    m.first() == Some(&b'E')
        && frame::error_field(m, b'C') == Some(b"0A000")
        && frame::error_field(m, b'R') == Some(b"RevalidateCachedQuery")
}

/// Whether a CommandComplete is of DDL that may change the columns a statement already prepared
/// returns: ALTER and DROP (a table dropped and made again), CREATE OR REPLACE of a view or rule; not
/// indexes, nor a new table (temporary ones come and go often).
fn ddl_tag(m: &[u8]) -> bool {
    let tag = m.get(frame::HEADER_LEN..).unwrap_or_default();
    let changes = [&b"ALTER "[..], b"DROP ", b"CREATE VIEW", b"CREATE RULE"];
    changes.iter().any(|p| tag.starts_with(p))
        && !tag.starts_with(b"ALTER INDEX")
        && !tag.starts_with(b"DROP INDEX")
}

/// The name global statement `id` has on servers.
pub(crate) fn server_name(id: u64) -> String {
    format!("__shardgate_{id}")
}

#[derive(Debug)]
pub(crate) struct Prepared {
    /// Statement id -> the tick of its last use (the smallest tick is the least recently used) and
    /// the schema epoch it was prepared in.
    last_use: HashMap<u64, (u64, u64)>,
    tick: u64,
    cap: usize,
    epoch: SchemaEpoch,
    /// The server ran DDL in its current transaction: a new epoch when it ends.
    ddl_pending: bool,
}

impl Prepared {
    pub(crate) fn new(cap: usize, epoch: SchemaEpoch) -> Prepared {
        Prepared {
            last_use: HashMap::new(),
            tick: 0,
            cap: cap.max(1),
            epoch,
            ddl_pending: false,
        }
    }

    /// Whether the server has the statement, prepared in this schema epoch; if so it counts as used
    /// now. Runs for every Bind, so it only bumps a counter: the least recently used is looked for
    /// when one must go.
    pub(crate) fn use_if_present(&mut self, id: u64) -> bool {
        let epoch = self.epoch.current();
        let Some((at, made)) = self.last_use.get_mut(&id) else {
            return false;
        };
        if *made != epoch {
            return false;
        }
        self.tick += 1;
        *at = self.tick;
        true
    }

    /// Records a statement the server is about to prepare; returns the one to close first: the same
    /// statement from an older epoch, or the least recently used when the server is full. (One it
    /// has already is only used.)
    pub(crate) fn add(&mut self, id: u64) -> Option<u64> {
        if self.use_if_present(id) {
            return None;
        }
        let evicted = if self.last_use.contains_key(&id) {
            Some(id)
        } else if self.last_use.len() >= self.cap {
            let oldest = self.last_use.iter().min_by_key(|(_, (at, _))| *at);
            oldest.map(|(old, _)| *old)
        } else {
            None
        };
        if let Some(old) = evicted {
            self.last_use.remove(&old);
        }
        self.tick += 1;
        self.last_use.insert(id, (self.tick, self.epoch.current()));
        evicted
    }

    /// `add`, writing the Close of the statement it displaces (if any) into `out`, ahead of the
    /// Parse the caller writes next; returns the displaced statement, whose CloseComplete is not the
    /// client's.
    pub(crate) fn make_room(&mut self, id: u64, out: &mut BytesMut) -> Option<u64> {
        let old = self.add(id)?;
        msg::write_close_statement(out, &server_name(old));
        Some(old)
    }

    /// The server kept it after all (its Close was skipped); it counts as used now, and as prepared
    /// in an unknown epoch: it may be the stale one a new Parse was to replace.
    pub(crate) fn restore(&mut self, id: u64) {
        self.tick += 1;
        self.last_use.insert(id, (self.tick, 0));
    }

    /// DDL was sent to this server: the statements it holds are prepared again before their next
    /// use, which comes after the DDL in the server's order (a client may pipeline a Parse or Bind
    /// behind its ALTER TABLE).
    pub(crate) fn ddl_sent(&mut self) {
        self.ddl_pending = true;
        self.last_use.values_mut().for_each(|(_, made)| *made = 0);
    }

    /// Watches a server's replies for what makes statements stale: DDL (its CommandComplete: this
    /// server's statements at once, since its own transaction sees the DDL; a new epoch for every
    /// server at the ReadyForQuery that ends the transaction, committed or not) and PostgreSQL's
    /// refusal of a stale statement (after DDL made outside shardgate).
    pub(crate) fn watch(&mut self, m: &[u8]) {
        match m.first() {
            Some(b'C') if ddl_tag(m) => self.ddl_sent(),
            Some(b'Z') if self.ddl_pending && frame::ready_status(m) == b'I' => {
                self.ddl_pending = false;
                self.epoch.changed();
            }
            Some(b'E') if stale_statement(m) => self.epoch.changed(),
            _ => {}
        }
    }

    /// The server does not have it (its Parse failed or was skipped).
    pub(crate) fn remove(&mut self, id: u64) {
        self.last_use.remove(&id);
    }

    /// Whether shardgate counts the statement as the server's, in any epoch.
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.last_use.contains_key(&id)
    }

    pub(crate) fn clear(&mut self) {
        self.last_use.clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.last_use.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_goes_first() {
        let mut p = Prepared::new(3, SchemaEpoch::default());
        assert_eq!(p.add(1), None);
        assert_eq!(p.add(2), None);
        assert_eq!(p.add(3), None);
        assert!(p.use_if_present(1));
        assert_eq!(p.add(4), Some(2));
        assert_eq!(p.add(5), Some(3));
        assert_eq!(p.add(1), None, "present: only used");
        assert_eq!(p.add(6), Some(4));
        assert_eq!(p.len(), 3);
        p.remove(1);
        assert!(!p.contains(1));
        assert_eq!(p.add(7), None);
        assert!(!p.use_if_present(2));
    }

    fn frame(tag: u8, body: &[u8]) -> BytesMut {
        let mut m = BytesMut::new();
        frame::write_message(&mut m, tag, |b| b.extend_from_slice(body));
        m
    }

    #[test]
    fn a_new_schema_epoch_prepares_statements_again_in_their_place() {
        let epoch = SchemaEpoch::default();
        let mut p = Prepared::new(2, epoch.clone());
        assert_eq!(p.add(1), None);
        assert_eq!(p.add(2), None);
        epoch.changed();
        assert!(!p.use_if_present(1), "prepared in the old epoch");
        assert_eq!(p.add(1), Some(1), "closed first, then prepared again");
        assert!(p.use_if_present(1));
        assert_eq!(p.len(), 2, "2 is still on the server, stale");
        assert_eq!(p.add(3), Some(2));
        // A skipped Close leaves the server's copy, whose epoch is then unknown.
        p.restore(3);
        assert!(!p.use_if_present(3));
    }

    #[test]
    fn ddl_and_stale_refusals_start_a_new_epoch() {
        let epoch = SchemaEpoch::default();
        let mut p = Prepared::new(8, epoch.clone());
        let start = epoch.current();
        assert_eq!(p.add(1), None);
        p.watch(&frame(b'C', b"ALTER TABLE\0"));
        assert!(!p.use_if_present(1), "stale on this server at once");
        assert_eq!(p.add(2), None);
        p.watch(&frame(b'Z', b"T"));
        assert_eq!(epoch.current(), start, "not before the transaction ends");
        assert!(p.use_if_present(2), "prepared after the DDL");
        p.watch(&frame(b'C', b"SELECT 1\0"));
        p.watch(&frame(b'Z', b"I"));
        assert_eq!(epoch.current(), start + 1);
        p.watch(&frame(b'Z', b"I"));
        for tag in [
            &b"UPDATE 3\0"[..],
            b"CREATE INDEX\0",
            b"CREATE TABLE\0",
            b"ALTER INDEX\0",
            b"DROP INDEX\0",
        ] {
            p.watch(&frame(b'C', tag));
            p.watch(&frame(b'Z', b"I"));
        }
        assert_eq!(epoch.current(), start + 1);
        // A DROP TABLE starts one too, at the end of its transaction, even an aborted one.
        p.watch(&frame(b'C', b"DROP TABLE\0"));
        p.watch(&frame(b'Z', b"E"));
        assert_eq!(
            epoch.current(),
            start + 1,
            "not before the transaction ends"
        );
        p.watch(&frame(b'Z', b"I"));
        assert_eq!(epoch.current(), start + 2);
        let start = start + 1;
        let stale =
            b"SERROR\0C0A000\0Mcached plan must not change result type\0RRevalidateCachedQuery\0\0";
        p.watch(&frame(b'E', stale));
        assert_eq!(epoch.current(), start + 2);
        // A client's RAISE of the same message is not it.
        let raised =
            b"SERROR\0C0A000\0Mcached plan must not change result type\0Rexec_stmt_raise\0\0";
        p.watch(&frame(b'E', raised));
        assert_eq!(epoch.current(), start + 2);
    }
}
