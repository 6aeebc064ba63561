//! The parse cache: statement text -> plan, per map version. Bounded: a full stripe is cleared
//! (cheap, and hot statements come straight back), so it never grows past its limit.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::literals;
use super::plan::{KeySource, Plan, Target};
use super::planner;
use crate::sharding::{KeyType, ShardMap, TableKind};

const STRIPES: usize = 16;

/// Longer texts (bulk INSERTs, generated IN lists) are planned each time, not kept: a cache keyed by
/// them would hold up to its capacity times the largest message a client may send.
const MAX_CACHED_TEXT: usize = 16 << 10;

/// One stripe of the cache: text -> (map version, plan).
type Stripe = Mutex<HashMap<String, (u64, Arc<Plan>)>>;

/// Plans statements against the shard map, caching each plan by its text.
#[derive(Debug)]
pub struct Router {
    stripes: Vec<Stripe>,
    per_stripe: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Default for Router {
    fn default() -> Self {
        Router::new(10_000)
    }
}

impl Router {
    /// A router whose cache holds at most about `capacity` plans.
    pub fn new(capacity: usize) -> Router {
        Router {
            stripes: (0..STRIPES).map(|_| Mutex::new(HashMap::new())).collect(),
            per_stripe: capacity.div_ceil(STRIPES).max(1),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The plan for `sql` under `map`: cached, or made now (and cached) when absent or made for
    /// another map version.
    pub fn plan(&self, sql: &str, map: &ShardMap) -> Arc<Plan> {
        if sql.len() > MAX_CACHED_TEXT {
            // Never cached, so not looked for either.
            self.misses.fetch_add(1, Ordering::Relaxed);
            return Arc::new(planner::plan(sql, map));
        }
        let mut h = DefaultHasher::new();
        sql.hash(&mut h);
        let stripe = &self.stripes[(h.finish() as usize) % STRIPES];
        {
            let guard = stripe.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((version, plan)) = guard.get(sql)
                && *version == map.version
            {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return plan.clone();
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        // Planned outside the lock: a slow parse must not stall other sessions' lookups.
        let plan = Arc::new(planner::plan(sql, map));
        let mut guard = stripe.lock().unwrap_or_else(|p| p.into_inner());
        if guard.len() >= self.per_stripe && !guard.contains_key(sql) {
            guard.clear();
        }
        guard.insert(sql.to_owned(), (map.version, plan.clone()));
        plan
    }

    /// The plan of a simple-protocol statement and the parameters it reads: planned on the text with
    /// its literals as placeholders (one cache entry per statement shape), unless that plan needs the
    /// literal text itself (a split INSERT rewrites it) or was refused (the placeholders may be what
    /// the parser did not like); then planned on the text as sent, without parameters.
    pub fn plan_simple(&self, sql: &str, map: &ShardMap) -> (Arc<Plan>, Vec<String>) {
        if let Some(n) = literals::normalize(sql)
            && !n.literals.is_empty()
        {
            let plan = self.plan(&n.text, map);
            if !matches!(
                plan.target,
                Target::Insert { .. } | Target::CopyIn(_) | Target::Refuse(_)
            ) && !numbers_as_text_keys(&plan, &n.numeric, map)
            {
                return (plan, n.literals);
            }
        }
        (self.plan(sql, map), Vec::new())
    }

    /// Counts a plan reused without a lookup (a prepared statement keeps the plan it was made with).
    pub(crate) fn reused(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// How many plans are cached now.
    pub fn len(&self) -> usize {
        self.stripes
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A number literal where a text or uuid key is read: as sent, it is no key (PostgreSQL would not
/// compare them); as a placeholder it would read as one. Such statements are planned as sent.
fn numbers_as_text_keys(plan: &Plan, numeric: &[bool], map: &ShardMap) -> bool {
    let Target::Keys { table, keys, .. } = &plan.target else {
        return false;
    };
    let Some(TableKind::Sharded(t)) = map.tables.get(*table).map(|t| &t.kind) else {
        return false;
    };
    if !matches!(t.key_type, KeyType::Text | KeyType::Uuid) {
        return false;
    }
    keys.iter().any(|k| match k {
        KeySource::Param(i) | KeySource::ParamArray(i) => numeric.get(*i).copied().unwrap_or(false),
        KeySource::Value(_) => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_planned_but_not_kept() {
        let map = ShardMap::parse(
            "version: 1\ndefault: s0\nshards:\n  - {name: s0, host: h, port: 1, database: d}\n",
            std::path::Path::new("m.yaml"),
        )
        .unwrap();
        let r = Router::new(100);
        r.plan("SELECT 1", &map);
        let long = format!("SELECT 1 -- {}", "x".repeat(MAX_CACHED_TEXT));
        r.plan(&long, &map);
        r.plan(&long, &map);
        assert_eq!((r.len(), r.misses()), (1, 3));
    }
}
