//! Named prepared statements under transaction pooling. A client's statement name is private to it; on
//! the servers every distinct (SQL, parameter types, settings context) gets one global name, so a
//! server that prepared it for one client can serve it to every client whose settings read it the
//! same way, and each client's names map to the right global one. A statement that must not be shared
//! (it reads the clock, or the client's settings are changing) is private: one Parse's own.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;

use crate::backend::prepared::server_name;
use crate::frontend::classify::SessionState;

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
    /// The settings context it was shared under (`settings_context`); empty for most.
    pub context: String,
    /// The session state running it creates (settings are carried at each run).
    pub session_state: Option<SessionState>,
    /// Its routing plan and the map version it was made for: made once, so a Bind only reads keys.
    plan: ArcSwapOption<(u64, Arc<Plan>)>,
}

impl Statement {
    fn new(
        id: u64,
        query: &str,
        param_types: &[u8],
        context: &str,
        session_state: Option<SessionState>,
    ) -> Arc<Statement> {
        Arc::new(Statement {
            id,
            server_name: server_name(id),
            query: query.to_owned(),
            param_types: param_types.to_vec(),
            context: context.to_owned(),
            session_state,
            plan: ArcSwapOption::empty(),
        })
    }

    /// One Parse's own (`Registry::private`).
    pub(crate) fn is_private(&self) -> bool {
        self.id >= PRIVATE
    }

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
    /// Shared statements by SQL text; the few sharing a text differ in parameter types or settings
    /// context. Keyed by text alone so a lookup borrows the client's bytes instead of copying them.
    /// Private statements are not here: they go when their client lets them go.
    by_text: Mutex<HashMap<String, Vec<Arc<Statement>>>>,
    next_id: std::sync::atomic::AtomicU64,
    next_private: std::sync::atomic::AtomicU64,
    /// Statements some server accepted: a client's Parse of one needs no server (it is prepared on
    /// demand where it is used), so preparing never waits for a pool.
    valid: Mutex<HashSet<u64>>,
    /// The number of texts past which statements no client holds any more are forgotten.
    sweep_at: std::sync::atomic::AtomicUsize,
}

/// A lock of the registry's; one client's panic while holding it must not stop every other client.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Ids of private statements start here (shared ones count up from 1).
const PRIVATE: u64 = 1 << 62;

/// Settings a statement's meaning depends on: search_path (which tables its names are; PostgreSQL
/// analyses the text again under another and refuses it when the columns differ), and those under
/// which PostgreSQL reads a literal (dates, times, intervals, escapes), once, at the Parse.
const CONTEXT_SETTINGS: [&str; 5] = [
    "search_path",
    "timezone",
    "datestyle",
    "intervalstyle",
    "standard_conforming_strings",
];

/// The settings context of a client's statements: the values it set of `CONTEXT_SETTINGS` (the
/// servers' own defaults are alike). Statements are shared only by clients whose contexts are equal.
pub(crate) fn settings_context(desired: &[(String, String)]) -> String {
    let mut context = String::new();
    for name in CONTEXT_SETTINGS {
        // The last one counts, as when the settings are applied.
        if let Some((_, v)) = desired
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            let _ = write!(context, "{name}={v};");
        }
    }
    context
}

/// Whether the text has date/time input that reads the clock ('now', 'today', 'tomorrow',
/// 'yesterday', in quotes or dollar quotes): PostgreSQL reads it at the Parse, so a statement another
/// client parsed earlier would keep that moment.
fn reads_clock(query: &str) -> bool {
    let b = query.as_bytes();
    (0..b.len()).any(|i| {
        (b[i] == b'\'' || b[i] == b'$')
            && ["now", "today", "tomorrow", "yesterday"].iter().any(|w| {
                let end = i + 1 + w.len();
                b.get(i + 1..end)
                    .is_some_and(|x| x.eq_ignore_ascii_case(w.as_bytes()))
                    && !b
                        .get(end)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
            })
    })
}

/// Distinct texts kept before the first sweep; after a sweep, twice what was left.
const SWEEP_AT: usize = 10_000;

impl Registry {
    #[cfg(test)]
    pub(crate) fn intern(&self, query: &str, param_types: &[u8]) -> Arc<Statement> {
        self.intern_in(query, param_types, "")
    }

    /// The shared statement for a text under a settings context (`settings_context`).
    pub(crate) fn intern_in(
        &self,
        query: &str,
        param_types: &[u8],
        context: &str,
    ) -> Arc<Statement> {
        self.intern_known(query, param_types, context).0
    }

    /// The shared statement, if it is known.
    fn find(&self, query: &str, param_types: &[u8], context: &str) -> Option<Arc<Statement>> {
        let same = |s: &&Arc<Statement>| s.param_types == param_types && s.context == context;
        lock(&self.by_text)
            .get(query)
            .and_then(|v| v.iter().find(same).cloned())
    }

    /// `intern_in`, and whether the statement was known before.
    pub(crate) fn intern_known(
        &self,
        query: &str,
        param_types: &[u8],
        context: &str,
    ) -> (Arc<Statement>, bool) {
        if let Some(s) = self.find(query, param_types, context) {
            return (s, true);
        }
        // Classified without the lock held: the registry is every client's.
        let same = |s: &&Arc<Statement>| s.param_types == param_types && s.context == context;
        let session_state = crate::frontend::classify::session_state(query);
        let mut map = lock(&self.by_text);
        if let Some(s) = map.get(query).and_then(|v| v.iter().find(same)) {
            return (s.clone(), true);
        }
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let s = Statement::new(id, query, param_types, context, session_state);
        map.entry(query.to_owned()).or_default().push(s.clone());
        if map.len()
            > self
                .sweep_at
                .load(std::sync::atomic::Ordering::Relaxed)
                .max(SWEEP_AT)
        {
            self.sweep(&mut map);
        }
        (s, false)
    }

    /// Forgets the statements only the registry still holds (clients closed or replaced them), so
    /// that a stream of distinct texts does not grow it for ever. A client's later Parse of the same
    /// text makes a new one; servers close the old one when it is their least recently used.
    fn sweep(&self, map: &mut HashMap<String, Vec<Arc<Statement>>>) {
        map.retain(|_, list| {
            list.retain(|s| Arc::strong_count(s) > 1);
            !list.is_empty()
        });
        // Only the ids still known stay valid, also one a late ParseComplete marked after its sweep.
        let live: HashSet<u64> = map.values().flatten().map(|s| s.id).collect();
        lock(&self.valid).retain(|id| live.contains(id));
        self.sweep_at
            .store(2 * map.len(), std::sync::atomic::Ordering::Relaxed);
    }

    /// A statement of one Parse's own, shared with no other: never found by its text, never
    /// answered without a server.
    fn private(
        &self,
        query: &str,
        param_types: &[u8],
        session_state: Option<SessionState>,
    ) -> Arc<Statement> {
        let n = self
            .next_private
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Statement::new(PRIVATE + n, query, param_types, "", session_state)
    }

    /// A private copy of a shared statement (its client's settings changed since its Parse).
    pub(crate) fn private_copy(&self, s: &Statement) -> Arc<Statement> {
        self.private(&s.query, &s.param_types, s.session_state)
    }

    /// The statement for a client's Parse under `context` (`settings_context`): private when it
    /// reads the clock or `unsettled` (the client's settings are changing: the server would read it
    /// under settings its context does not say), else shared.
    pub(crate) fn for_client(
        &self,
        query: &str,
        param_types: &[u8],
        context: &str,
        unsettled: bool,
    ) -> Arc<Statement> {
        let private = |registry: &Self| {
            let state = crate::frontend::classify::session_state(query);
            registry.private(query, param_types, state)
        };
        if unsettled {
            return private(self);
        }
        // A shared statement was looked at when it was made: none reads the clock.
        if let Some(s) = self.find(query, param_types, context) {
            return s;
        }
        if reads_clock(query) {
            return private(self);
        }
        self.intern_in(query, param_types, context)
    }

    /// A statement made from `from` (a part of a split INSERT, a merged read's shard statement):
    /// shared under its context; for a private one, kept by text under a context of that statement
    /// alone, so that each of its runs finds the same one.
    pub(crate) fn derived(
        &self,
        from: &Statement,
        query: &str,
        param_types: &[u8],
    ) -> Arc<Statement> {
        match from.is_private() {
            true => self.intern_in(query, param_types, &format!("#{}", from.id)),
            false => self.intern_in(query, param_types, &from.context),
        }
    }

    pub(crate) fn mark_valid(&self, id: u64) {
        if id < PRIVATE {
            lock(&self.valid).insert(id);
        }
    }

    pub(crate) fn is_valid(&self, id: u64) -> bool {
        lock(&self.valid).contains(&id)
    }

    /// Distinct statements known now.
    pub(crate) fn len(&self) -> usize {
        let map = lock(&self.by_text);
        map.values().map(Vec::len).sum()
    }
}

/// One client's names for its statements.
#[derive(Debug, Default)]
pub(crate) struct ClientStatements {
    names: HashMap<String, Arc<Statement>>,
}

impl ClientStatements {
    /// Forgets every name (DISCARD ALL, DEALLOCATE ALL); the servers keep the statements.
    pub(crate) fn clear(&mut self) {
        self.names.clear();
    }

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

    #[test]
    fn statements_no_client_holds_are_forgotten_past_the_threshold() {
        let r = Registry::default();
        let mut c = ClientStatements::default();
        c.insert("kept", r.intern("select 0", b"\0\0"));
        r.mark_valid(c.get("kept").unwrap().id);
        for i in 1..SWEEP_AT as u64 {
            // The unnamed statement is replaced each time, as a client's would be.
            let s = r.intern(&format!("select {i}"), b"\0\0");
            r.mark_valid(s.id);
            c.insert("", s);
        }
        assert_eq!(r.len(), SWEEP_AT);
        c.insert("", r.intern("select -1", b"\0\0"));
        // Past the threshold only what was held is left: the client's named statement, its unnamed
        // one, and the one being made; and only the first two of those were marked valid.
        assert_eq!(r.len(), 3);
        assert_eq!(r.valid.lock().unwrap().len(), 2);
        assert_eq!(r.intern("select 0", b"\0\0").id, c.get("kept").unwrap().id);
    }

    #[test]
    fn statements_are_shared_only_under_the_same_settings() {
        let r = Registry::default();
        let utc = settings_context(&[("TimeZone".to_owned(), "UTC".to_owned())]);
        let ny = settings_context(&[
            ("timezone".to_owned(), "UTC".to_owned()),
            ("timezone".to_owned(), "America/New_York".to_owned()),
        ]);
        assert_eq!(
            settings_context(&[("application_name".into(), "x".into())]),
            ""
        );
        assert_eq!(utc, "timezone=UTC;", "names match in any case");
        assert_ne!(utc, ny);
        assert!(ny.contains("New_York"), "the last one counts: {ny}");
        let q = "select '2024-01-01 00:00'::timestamptz";
        let a = r.for_client(q, b"\0\0", &utc, false);
        assert_eq!(a.id, r.for_client(q, b"\0\0", &utc, false).id);
        assert_ne!(a.id, r.for_client(q, b"\0\0", &ny, false).id);
        let unsettled = r.for_client(q, b"\0\0", &utc, true);
        assert!(unsettled.is_private());
        r.mark_valid(unsettled.id);
        assert!(!r.is_valid(unsettled.id));
        // Made from a private statement: its own, and the same one at each of its runs.
        let derived = r.derived(&unsettled, "select 1", b"\0\0");
        assert_ne!(derived.id, r.intern("select 1", b"\0\0").id);
        assert_eq!(derived.id, r.derived(&unsettled, "select 1", b"\0\0").id);
        assert_eq!(r.derived(&a, "select 1", b"\0\0").context, utc);
    }

    #[test]
    fn clock_words_make_a_statement_private() {
        for (sql, want) in [
            ("select 'Today'::date", true),
            ("select $$now$$::timestamptz", true),
            ("select $x$yesterday$x$::date", true),
            ("select 'now'::timestamptz - interval '1 day'", true),
            ("select now()", false),
            ("select 'nowait', 'todays'", false),
            ("select $1::date", false),
        ] {
            assert_eq!(reads_clock(sql), want, "{sql}");
        }
        let r = Registry::default();
        let a = r.for_client("select 'today'::date", b"\0\0", "", false);
        let b = r.for_client("select 'today'::date", b"\0\0", "", false);
        assert!(a.is_private() && b.is_private() && a.id != b.id);
        assert_eq!(r.len(), 0, "private statements are not kept by text");
    }
}
