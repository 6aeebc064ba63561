//! Merges sorted cursors into one; on equal keys the earlier child (the newer
//! source) comes first.

use std::cmp::Ordering;

use super::InternalIter;
use crate::lsm::error::Result;
use crate::lsm::key;

pub(crate) struct MergeIter {
    children: Vec<Box<dyn InternalIter>>,
    current: Option<usize>,
}

impl MergeIter {
    /// `children` ordered newest source first.
    pub(crate) fn new(children: Vec<Box<dyn InternalIter>>) -> Self {
        MergeIter {
            children,
            current: None,
        }
    }

    fn pick(&mut self) {
        // A linear scan: there are rarely more than a dozen children.
        let mut best: Option<usize> = None;
        for (i, c) in self.children.iter().enumerate() {
            if !c.valid() {
                continue;
            }
            match best {
                Some(b) if key::cmp(c.key(), self.children[b].key()) != Ordering::Less => {}
                _ => best = Some(i),
            }
        }
        self.current = best;
    }
}

impl InternalIter for MergeIter {
    fn valid(&self) -> bool {
        self.current.is_some()
    }

    fn key(&self) -> &[u8] {
        self.current.map_or(&[], |i| self.children[i].key())
    }

    fn value(&self) -> &[u8] {
        self.current.map_or(&[], |i| self.children[i].value())
    }

    fn next(&mut self) -> Result<()> {
        if let Some(i) = self.current {
            self.children[i].next()?;
        }
        self.pick();
        Ok(())
    }

    fn seek(&mut self, ikey: &[u8]) -> Result<()> {
        for c in &mut self.children {
            c.seek(ikey)?;
        }
        self.pick();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cursor over a fixed list of (user key, seq).
    struct VecIter(Vec<Vec<u8>>, usize);

    impl InternalIter for VecIter {
        fn valid(&self) -> bool {
            self.1 < self.0.len()
        }
        fn key(&self) -> &[u8] {
            &self.0[self.1]
        }
        fn value(&self) -> &[u8] {
            b""
        }
        fn next(&mut self) -> Result<()> {
            self.1 += 1;
            Ok(())
        }
        fn seek(&mut self, ikey: &[u8]) -> Result<()> {
            self.1 = self
                .0
                .partition_point(|k| key::cmp(k, ikey) == Ordering::Less);
            Ok(())
        }
    }

    fn src(entries: &[(&str, u64)]) -> Box<dyn InternalIter> {
        let keys = entries
            .iter()
            .map(|(u, s)| {
                let mut k = Vec::new();
                key::encode(&mut k, u.as_bytes(), key::tag(*s, key::KIND_PUT));
                k
            })
            .collect();
        Box::new(VecIter(keys, 0))
    }

    #[test]
    fn merges_in_internal_key_order() {
        let mut m = MergeIter::new(vec![
            src(&[("a", 9), ("c", 8)]),
            src(&[("a", 3), ("b", 2), ("c", 1)]),
        ]);
        m.seek(&[0; 8]).unwrap();
        let mut got = Vec::new();
        while m.valid() {
            let (u, t) = key::split(m.key());
            got.push((String::from_utf8(u.to_vec()).unwrap(), key::tag_seq(t)));
            m.next().unwrap();
        }
        let want = [("a", 9), ("a", 3), ("b", 2), ("c", 8), ("c", 1)];
        assert_eq!(got, want.map(|(u, s)| (u.to_string(), s)));
    }
}
