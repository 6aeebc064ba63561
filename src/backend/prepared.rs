//! The global prepared statements one server holds (see `frontend::statements`), at most `cap` of
//! them: past that the least recently used one is closed on the server before the next is prepared,
//! so neither the server's memory nor shardgate's grows with every distinct SQL text clients send.

use std::collections::{BTreeMap, HashMap};

#[derive(Debug)]
pub(crate) struct Prepared {
    /// Statement id -> the tick of its last use.
    last_use: HashMap<u64, u64>,
    /// The same, by tick: the first entry is the least recently used.
    by_use: BTreeMap<u64, u64>,
    tick: u64,
    cap: usize,
}

impl Prepared {
    pub(crate) fn new(cap: usize) -> Prepared {
        Prepared {
            last_use: HashMap::new(),
            by_use: BTreeMap::new(),
            tick: 0,
            cap: cap.max(1),
        }
    }

    /// Whether the server has the statement; if so it counts as used now.
    pub(crate) fn use_if_present(&mut self, id: u64) -> bool {
        let Some(at) = self.last_use.get_mut(&id) else {
            return false;
        };
        self.tick += 1;
        self.by_use.remove(at);
        *at = self.tick;
        self.by_use.insert(self.tick, id);
        true
    }

    /// Records a statement the server is about to prepare; returns the one to close first when the
    /// server is full.
    pub(crate) fn add(&mut self, id: u64) -> Option<u64> {
        if self.use_if_present(id) {
            return None;
        }
        let evicted = match self.last_use.len() >= self.cap {
            true => self.by_use.pop_first().map(|(_, old)| old),
            false => None,
        };
        if let Some(old) = evicted {
            self.last_use.remove(&old);
        }
        self.insert_new(id);
        evicted
    }

    fn insert_new(&mut self, id: u64) {
        self.tick += 1;
        self.last_use.insert(id, self.tick);
        self.by_use.insert(self.tick, id);
    }

    /// The server kept it after all (its Close was skipped); it counts as used now.
    pub(crate) fn restore(&mut self, id: u64) {
        if !self.use_if_present(id) {
            self.insert_new(id);
        }
    }

    /// The server does not have it (its Parse failed or was skipped).
    pub(crate) fn remove(&mut self, id: u64) {
        if let Some(at) = self.last_use.remove(&id) {
            self.by_use.remove(&at);
        }
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.last_use.contains_key(&id)
    }

    pub(crate) fn clear(&mut self) {
        self.last_use.clear();
        self.by_use.clear();
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
