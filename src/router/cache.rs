//! The parse cache: statement text -> plan, per map version. Bounded: a full stripe is cleared
//! (cheap, and hot statements come straight back), so it never grows past its limit.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::plan::Plan;
use super::planner;
use crate::sharding::ShardMap;

const STRIPES: usize = 16;

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
