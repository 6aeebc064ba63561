//! The global prepared statements one server holds (see `frontend::statements`), at most `cap` of
//! them: past that the least recently used one is closed on the server before the next is prepared,
//! so neither the server's memory nor shardgate's grows with every distinct SQL text clients send.

use std::collections::HashMap;

use bytes::BytesMut;

use crate::protocol::frontend as msg;

/// The name global statement `id` has on servers.
pub(crate) fn server_name(id: u64) -> String {
    format!("__shardgate_{id}")
}

#[derive(Debug)]
pub(crate) struct Prepared {
    /// Statement id -> the tick of its last use; the smallest tick is the least recently used.
    last_use: HashMap<u64, u64>,
    tick: u64,
    cap: usize,
}

impl Prepared {
    pub(crate) fn new(cap: usize) -> Prepared {
        Prepared {
            last_use: HashMap::new(),
            tick: 0,
            cap: cap.max(1),
        }
    }

    /// Whether the server has the statement; if so it counts as used now. Runs for every Bind, so it
    /// only bumps a counter: the least recently used is looked for when one must go.
    pub(crate) fn use_if_present(&mut self, id: u64) -> bool {
        let Some(at) = self.last_use.get_mut(&id) else {
            return false;
        };
        self.tick += 1;
        *at = self.tick;
        true
    }

    /// Records a statement the server is about to prepare; returns the one to close first when the
    /// server is full. (One it has already is only used.)
    pub(crate) fn add(&mut self, id: u64) -> Option<u64> {
        if self.use_if_present(id) {
            return None;
        }
        let evicted = if self.last_use.len() >= self.cap {
            let oldest = self.last_use.iter().min_by_key(|(_, at)| **at);
            oldest.map(|(old, _)| *old)
        } else {
            None
        };
        if let Some(old) = evicted {
            self.last_use.remove(&old);
        }
        self.tick += 1;
        self.last_use.insert(id, self.tick);
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

    /// The server kept it after all (its Close was skipped); it counts as used now.
    pub(crate) fn restore(&mut self, id: u64) {
        self.tick += 1;
        self.last_use.insert(id, self.tick);
    }

    /// The server does not have it (its Parse failed or was skipped).
    pub(crate) fn remove(&mut self, id: u64) {
        self.last_use.remove(&id);
    }

    #[cfg(test)]
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
        let mut p = Prepared::new(3);
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
}
