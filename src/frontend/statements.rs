//! Named prepared statements under transaction pooling. A client's statement name is private to it; on
//! the servers every distinct (SQL, parameter types) gets one global name, so a server that prepared it
//! for one client can serve it to every client, and each client's names map to the right global one.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;

use crate::router::{Plan, Router};
use crate::sharding::ShardMap;

/// A statement as servers know it.
#[derive(Debug)]
pub(crate) struct Statement {
    pub id: u64,
    /// The name used on servers; clients never see it.
    pub server_name: String,
    pub query: String,
    /// Parse's raw parameter-type section.
    pub param_types: Vec<u8>,
    /// Its routing plan and the map version it was made for: made once, so a Bind only reads keys.
    plan: ArcSwapOption<(u64, Arc<Plan>)>,
}

impl Statement {
    /// The routing plan under `map`: the one already made, unless the map changed since.
    pub(crate) fn plan(&self, router: &Router, map: &ShardMap) -> Arc<Plan> {
        if let Some(made) = self.plan.load().as_ref()
            && made.0 == map.version
        {
            router.reused();
            return made.1.clone();
        }
        let plan = router.plan(&self.query, map);
        self.plan.store(Some(Arc::new((map.version, plan.clone()))));
        plan
    }
}

/// Every distinct statement any client prepared, shared by all sessions.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    /// By SQL text; the few statements sharing a text differ in parameter types. Keyed by text alone so a
    /// lookup borrows the client's bytes instead of copying them.
    by_text: Mutex<HashMap<String, Vec<Arc<Statement>>>>,
    next_id: std::sync::atomic::AtomicU64,
    /// Statements some server accepted: a client's Parse of one needs no server (it is prepared on
    /// demand where it is used), so preparing never waits for a pool.
    valid: Mutex<HashSet<u64>>,
}

impl Registry {
    pub(crate) fn intern(&self, query: &str, param_types: &[u8]) -> Arc<Statement> {
        let mut map = self.by_text.lock().expect("registry lock");
        if let Some(s) = map
            .get(query)
            .and_then(|v| v.iter().find(|s| s.param_types == param_types))
        {
            return s.clone();
        }
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let s = Arc::new(Statement {
            id,
            server_name: format!("__shardgate_{id}"),
            query: query.to_owned(),
            param_types: param_types.to_vec(),
            plan: ArcSwapOption::empty(),
        });
        map.entry(query.to_owned()).or_default().push(s.clone());
        s
    }

    pub(crate) fn mark_valid(&self, id: u64) {
        self.valid.lock().expect("registry lock").insert(id);
    }

    pub(crate) fn is_valid(&self, id: u64) -> bool {
        self.valid.lock().expect("registry lock").contains(&id)
    }

    pub(crate) fn len(&self) -> usize {
        self.next_id.load(std::sync::atomic::Ordering::Relaxed) as usize
    }
}

/// One client's names for its statements.
#[derive(Debug, Default)]
pub(crate) struct ClientStatements {
    names: HashMap<String, Arc<Statement>>,
}

impl ClientStatements {
    pub(crate) fn insert(&mut self, name: &str, s: Arc<Statement>) {
        self.names.insert(name.to_owned(), s);
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<Statement>> {
        self.names.get(name)
    }

    pub(crate) fn remove(&mut self, name: &str) -> Option<Arc<Statement>> {
        self.names.remove(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_same_global_statement() {
        let r = Registry::default();
        let a = r.intern("select 1", b"\0\0");
        let b = r.intern("select 1", b"\0\0");
        let c = r.intern("select 1", b"\0\x01\0\0\0\x17");
        assert!(Arc::ptr_eq(&a, &b));
        assert_ne!(a.id, c.id);
        assert_eq!(a.server_name, "__shardgate_1");
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn client_names_are_private() {
        let r = Registry::default();
        let (mut x, mut y) = (ClientStatements::default(), ClientStatements::default());
        x.insert("s", r.intern("select 1", b"\0\0"));
        y.insert("s", r.intern("select 2", b"\0\0"));
        assert_eq!(x.get("s").map(|s| s.query.as_str()), Some("select 1"));
        assert_eq!(y.get("s").map(|s| s.query.as_str()), Some("select 2"));
        assert!(x.remove("s").is_some());
        assert!(x.get("s").is_none());
    }
}
