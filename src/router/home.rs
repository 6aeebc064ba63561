//! Sequences and advisory locks are state of one server, not rows: `nextval('s')` on two shards
//! draws from two sequences (the same values twice), and `pg_advisory_xact_lock(k)` taken on two
//! shards keeps no one out. So a statement that reads no sharded table and calls one of their
//! functions runs on one shard, the same for every client: the map's default shard, else its first.
//! Pure.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Statement, visit_expressions};

use crate::sharding::{ShardId, ShardMap, Unlisted};

/// What a statement does with state that lives on one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HomeUse {
    /// Draws from or sets sequences, and calls nothing else: no transaction undoes that, so it may
    /// run outside the client's.
    Sequences,
    /// Takes or lets go of advisory locks, or reads `currval`/`lastval` (of its session), among
    /// other calls.
    Other,
}

/// The shard where sequences and advisory locks live.
pub(crate) fn home(map: &ShardMap) -> ShardId {
    match map.unlisted {
        Unlisted::Shard(s) => s,
        Unlisted::Refuse => ShardId(0),
    }
}

/// Whether `stmt` calls a function of sequences or advisory locks, and how.
pub(crate) fn home_use(stmt: &Statement) -> Option<HomeUse> {
    let (mut home, mut others) = (false, false);
    let mut only_sequences = true;
    let _ = visit_expressions(stmt, |e| {
        if let Expr::Function(f) = e {
            let name = f.name.0.last().map(|p| p.to_string().to_ascii_lowercase());
            match name.as_deref().map(kind) {
                Some(Some(Kind::Draw)) => home = true,
                Some(Some(Kind::Session)) => {
                    home = true;
                    only_sequences = false;
                }
                _ => others = true,
            }
        }
        ControlFlow::<()>::Continue(())
    });
    match (home, only_sequences && !others) {
        (false, _) => None,
        (true, true) => Some(HomeUse::Sequences),
        (true, false) => Some(HomeUse::Other),
    }
}

enum Kind {
    /// nextval, setval: the same from any session.
    Draw,
    /// currval, lastval (what this session drew) and advisory locks (held by it).
    Session,
}

fn kind(name: &str) -> Option<Kind> {
    match name {
        "nextval" | "setval" => Some(Kind::Draw),
        "currval" | "lastval" => Some(Kind::Session),
        _ if name.starts_with("pg_advisory_") || name.starts_with("pg_try_advisory_") => {
            Some(Kind::Session)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn of(sql: &str) -> Option<HomeUse> {
        home_use(&Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap()[0])
    }

    #[test]
    fn calls_of_one_shards_state() {
        use HomeUse::*;
        let cases = [
            ("SELECT nextval('orders_id_seq')", Some(Sequences)),
            (
                "select pg_catalog.NEXTVAL($1::regclass), setval('s', 5)",
                Some(Sequences),
            ),
            ("SELECT nextval('s'), now()", Some(Other)),
            ("SELECT currval('s')", Some(Other)),
            ("SELECT pg_advisory_xact_lock(42)", Some(Other)),
            ("SELECT pg_try_advisory_lock(hashtext($1))", Some(Other)),
            ("SELECT pg_advisory_unlock_all()", Some(Other)),
            ("SELECT now()", None),
            ("SELECT 1", None),
        ];
        for (sql, want) in cases {
            assert_eq!(of(sql), want, "{sql}");
        }
    }
}
