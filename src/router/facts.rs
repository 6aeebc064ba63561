//! What a walk over one statement found: every table reference (a binding), the key conditions that
//! restrict each, and which bindings only matter where another's rows are (joined on the key).

use super::plan::{KeySource, Refusal};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rel {
    /// Index in `map.tables`.
    Sharded(usize),
    Reference,
    Unlisted,
    /// A CTE, a subquery in FROM, a table function: its rows come from elsewhere in the statement.
    Opaque,
}

#[derive(Debug, Clone)]
pub(crate) struct Binding {
    pub(crate) rel: Rel,
    /// The table's name as written (for messages).
    pub(crate) name: String,
    /// What column references use: the alias, or the table's last name part.
    pub(crate) alias: String,
    /// Written to (INSERT/UPDATE/DELETE target, also in a data-modifying CTE).
    pub(crate) write: bool,
    /// In the top-level FROM (or the write target) of the statement, where per-shard results can
    /// simply be combined.
    pub(crate) top: bool,
    /// The key values its own conditions allow.
    pub(crate) own: Option<Vec<KeySource>>,
    /// Bindings whose rows this one's relevant rows are co-located with (joined on the key).
    pub(crate) follows: Vec<usize>,
    /// On the side of an outer join that may come out NULL.
    pub(crate) nullable: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Facts {
    pub(crate) bindings: Vec<Binding>,
    /// The first reason the statement cannot be routed, found while walking.
    pub(crate) refusal: Option<Refusal>,
}

impl Facts {
    pub(crate) fn refuse(&mut self, r: Refusal) {
        if self.refusal.is_none() {
            self.refusal = Some(r);
        }
    }

    /// `a`'s relevant rows live where `b`'s do.
    pub(crate) fn follow(&mut self, a: usize, b: usize) {
        if a != b && !self.bindings[a].follows.contains(&b) {
            self.bindings[a].follows.push(b);
        }
    }

    /// A key condition on `b` (the first one wins: every one holds for every relevant row).
    pub(crate) fn restrict(&mut self, b: usize, keys: Vec<KeySource>) {
        let own = &mut self.bindings[b].own;
        if own.is_none() {
            *own = Some(keys);
        }
    }

    /// The binding whose own key condition restricts `b`: itself, or one it follows (transitively).
    pub(crate) fn anchor(&self, b: usize) -> Option<usize> {
        let mut seen = vec![false; self.bindings.len()];
        let mut queue = std::collections::VecDeque::from([b]);
        while let Some(x) = queue.pop_front() {
            if std::mem::replace(&mut seen[x], true) {
                continue;
            }
            if self.bindings[x].own.is_some() {
                return Some(x);
            }
            queue.extend(self.bindings[x].follows.iter().copied());
        }
        None
    }

    /// Whether `a` follows `b`, directly or through others.
    pub(crate) fn reaches(&self, a: usize, b: usize) -> bool {
        let mut seen = vec![false; self.bindings.len()];
        let mut stack = vec![a];
        while let Some(x) = stack.pop() {
            if x == b {
                return true;
            }
            if !std::mem::replace(&mut seen[x], true) {
                stack.extend(self.bindings[x].follows.iter().copied());
            }
        }
        false
    }
}
