//! A BEGIN shardgate holds until the transaction's first statement says which shard it runs on, with
//! the settings of the transaction made before it (SET LOCAL, SET TRANSACTION, set_config(..., true))
//! and its savepoint commands (SAVEPOINT, RELEASE, ROLLBACK TO), in order. The client was told
//! BEGIN (and SET) and sees its transaction meanwhile: in progress, or failed once an error (from a
//! prepare a server answered) ended it, as PostgreSQL's would.
//!
//! On its server the transaction opens with a plain BEGIN, which cannot fail, then a second query
//! makes it the client's: SET TRANSACTION with the BEGIN's modes, then the settings. So whatever the
//! server refuses of them fails the transaction; it never leaves it unopened, for the client's
//! statements to commit one by one. The client's first statement then gets that error.

use bytes::BytesMut;

use super::raise::{raise_sql, what_failed};
use crate::protocol::backend::{self, ErrorFields, Severity};
use crate::protocol::frontend as msg;
use crate::protocol::sqlstate::{IN_FAILED_SQL_TRANSACTION, RAISE_EXCEPTION};
use crate::router::lex::{self, Lexed};
use crate::router::{ConfigArg, LocalConfig, Params};

pub(super) struct HeldBegin {
    /// What makes the transaction the client's after the plain BEGIN: SET TRANSACTION with the
    /// BEGIN's modes, if it had any, and the settings made since.
    settings: String,
    failed: bool,
}

impl HeldBegin {
    /// The client's BEGIN or START TRANSACTION (the text of its one statement); `None` for a text
    /// [`modes`] does not take, which a server is to answer.
    pub(super) fn new(begin: &str) -> Option<HeldBegin> {
        let modes = modes(begin)?;
        let mut held = HeldBegin {
            settings: String::new(),
            failed: false,
        };
        if !lex::skip_blanks(modes).is_empty() {
            held.add(&format!("SET TRANSACTION {}", modes.trim_start()));
        }
        Some(held)
    }

    /// A setting of the transaction (SET LOCAL, SET TRANSACTION) or a savepoint command, made on its
    /// server after the BEGIN. Should the server refuse it (a RELEASE of a savepoint never made, say),
    /// the client's next statement gets that error, and the transaction is failed, as it would be
    /// after the statement on one server (where the error came at once).
    /// `setting` is one statement's text, without the semicolon that ends it.
    pub(super) fn add(&mut self, setting: &str) {
        if !self.settings.is_empty() {
            // On a line of its own: the statement before may end in a -- comment.
            self.settings.push_str("\n;\n");
        }
        self.settings.push_str(setting);
    }

    /// An error ended the transaction: it now opens failed on its server, where every statement but
    /// ROLLBACK (or COMMIT, which rolls back) gets 25P02 from PostgreSQL itself. What was held before
    /// the error still goes first, so that a ROLLBACK TO finds a savepoint made before the error, as
    /// on one server.
    pub(super) fn fail(&mut self) {
        if self.failed {
            return;
        }
        self.failed = true;
        let e = ErrorFields::new(
            Severity::Error,
            RAISE_EXCEPTION,
            "the transaction failed at an earlier error",
        );
        self.add(&raise_sql(&e));
    }

    pub(super) fn failed(&self) -> bool {
        self.failed
    }

    /// Whether a read may run beside the transaction, outside it: it has not failed, and neither
    /// it nor the session's settings (`desired`) ask for REPEATABLE READ or SERIALIZABLE, whose
    /// statements share one snapshot that several shards cannot give.
    pub(super) fn reads_outside(&self, desired: &[(String, String)]) -> bool {
        let isolated = |s: &str| {
            let s = s.to_ascii_lowercase();
            s.contains("repeatable") || s.contains("serializable")
        };
        let session_isolated = desired.iter().any(|(name, value)| {
            name.eq_ignore_ascii_case("default_transaction_isolation") && isolated(value)
        });
        !self.failed && !isolated(&self.settings) && !session_isolated
    }

    /// Whether the transaction is read-only, asked by its BEGIN, SET TRANSACTION or the session's
    /// settings (`desired`): PostgreSQL refuses nextval there, so it may not run outside it.
    pub(super) fn read_only(&self, desired: &[(String, String)]) -> bool {
        let session = desired.iter().any(|(name, value)| {
            name.eq_ignore_ascii_case("default_transaction_read_only")
                && matches!(
                    value.to_ascii_lowercase().as_str(),
                    "on" | "true" | "1" | "yes"
                )
        });
        session
            || self
                .settings
                .to_ascii_lowercase()
                .split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .any(|w| w == ["read", "only"])
    }

    /// The transaction status the client sees (ReadyForQuery): in a transaction, or a failed one.
    pub(super) fn status(&self) -> u8 {
        if self.failed { b'E' } else { b'T' }
    }

    /// The query that follows the plain BEGIN on the server, if there is one to send.
    pub(super) fn settings(&self) -> Option<&str> {
        Some(self.settings.as_str()).filter(|s| !s.is_empty())
    }
}

/// The query that makes the settings of `calls` (a `SELECT set_config(..., true)` the client sent
/// with `params`) on the transaction's server, parameters written as literals; `None` when one is
/// missing or not text.
pub(super) fn config_sql(calls: &[LocalConfig], params: &Params) -> Option<String> {
    let arg = |a: &ConfigArg| match a {
        ConfigArg::Text(s) => Some(msg::quote_literal(s)),
        ConfigArg::Param(i) => match params.value(*i).ok()? {
            None => Some("NULL".to_owned()),
            Some((_, text)) => Some(msg::quote_literal(std::str::from_utf8(text).ok()?)),
        },
    };
    let calls = calls
        .iter()
        .map(|c| {
            Some(format!(
                "set_config({}, {}, true)",
                arg(&c.name)?,
                arg(&c.value)?
            ))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(format!("SELECT {}", calls.join(", ")))
}

/// What the client's statement gets for `theirs`, an error the server sent it, when the held
/// settings before it failed with `held`: that error, which failed the transaction (PostgreSQL's
/// 25P02 only says it is failed), without its position in text the client never sent.
pub(super) fn first_error(held: &[u8], theirs: &[u8]) -> Option<BytesMut> {
    let failed = |(c, v): &(u8, String)| *c == b'C' && v == IN_FAILED_SQL_TRANSACTION;
    if !backend::error_fields(theirs).iter().any(failed) {
        return None;
    }
    let mut fields = what_failed(backend::error_fields(held));
    fields.push((b'W', CONTEXT.to_owned()));
    let mut out = BytesMut::new();
    backend::write_error_fields(&mut out, &fields);
    Some(out)
}

/// Where an error of held settings happened, as the client reads it.
const CONTEXT: &str = "the transaction's BEGIN or SET, sent to its server with this statement";

/// The command tag of a savepoint command (SAVEPOINT, RELEASE [SAVEPOINT], ROLLBACK TO [SAVEPOINT]),
/// by its statement's words.
pub(super) fn savepoint_tag(words: &[String]) -> Option<&'static str> {
    match words.first().map(String::as_str) {
        Some("savepoint") => Some("SAVEPOINT"),
        Some("release") => Some("RELEASE"),
        // ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name
        Some("rollback") if words.iter().skip(1).take(2).any(|w| w == "to") => Some("ROLLBACK"),
        _ => None,
    }
}

/// Whether a COMMIT or ROLLBACK says AND CHAIN (not AND NO CHAIN), by its statement's words.
pub(super) fn chains(words: &[String]) -> bool {
    words.windows(2).any(|w| w[0] == "and" && w[1] == "chain")
}

/// The one statement in `sql`, its text without the semicolon that ends it; `None` for several
/// (semicolons inside literals, quoted names and comments do not count). A transaction statement
/// is lexed once, here, and its text and words serve every check after.
pub(super) fn lone(sql: &str) -> Option<Lexed<'_>> {
    let mut all = lex::statements(sql);
    (all.len() == 1).then(|| all.remove(0))
}

/// What follows BEGIN [WORK | TRANSACTION] or START TRANSACTION in a statement's text: the
/// transaction's modes as SET TRANSACTION takes them, or blanks. `None` when it does not start so.
pub(super) fn modes(text: &str) -> Option<&str> {
    match keyword(text, "begin") {
        Some(rest) => Some(
            keyword(rest, "work")
                .or_else(|| keyword(rest, "transaction"))
                .unwrap_or(rest),
        ),
        None => keyword(keyword(text, "start")?, "transaction"),
    }
}

/// What follows `word` (lowercase) at the start of `text`, after blanks and comments.
fn keyword<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let text = lex::skip_blanks(text);
    let head = text.get(..word.len())?;
    let rest = &text[word.len()..];
    let whole = !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$');
    (head.eq_ignore_ascii_case(word) && whole).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text of the one statement in `sql`.
    fn chains_of(sql: &str) -> bool {
        chains(&lone(sql).expect("one statement").words)
    }

    fn text(sql: &str) -> &str {
        lone(sql).expect("one statement").text
    }

    #[test]
    fn settings_follow_the_modes_past_their_comments() {
        let mut held =
            HeldBegin::new(text("BEGIN ISOLATION LEVEL SERIALIZABLE -- from the ORM ;")).unwrap();
        held.add(text(" SET LOCAL statement_timeout = 1000;"));
        held.add(text("SET LOCAL app.tenant = 'a;b' -- tenant"));
        assert_eq!(
            held.settings(),
            Some(
                "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE -- from the ORM ;\n;\nSET LOCAL statement_timeout = 1000\n;\nSET LOCAL app.tenant = 'a;b' -- tenant"
            )
        );
        assert!(!held.reads_outside(&[]));
    }

    #[test]
    fn read_only_by_the_begin_a_setting_or_the_session() {
        let held = |begin: &str| HeldBegin::new(text(begin)).unwrap();
        assert!(held("BEGIN READ ONLY").read_only(&[]));
        assert!(held("start transaction isolation level serializable, read\n only").read_only(&[]));
        assert!(!held("BEGIN READ WRITE").read_only(&[]));
        let mut set = held("BEGIN");
        set.add("SET TRANSACTION READ ONLY");
        assert!(set.read_only(&[]));
        let session = [("default_transaction_read_only".to_owned(), "on".to_owned())];
        assert!(held("BEGIN").read_only(&session));
    }

    #[test]
    fn a_plain_begin_has_no_settings_to_send() {
        for begin in [
            "BEGIN",
            "begin;",
            "BEGIN WORK -- x",
            "/* app */ start transaction;",
        ] {
            assert_eq!(
                HeldBegin::new(text(begin)).unwrap().settings(),
                None,
                "{begin}"
            );
        }
    }

    #[test]
    fn modes_of_each_spelling() {
        let cases = [
            ("BEGIN", Some("")),
            ("begin read only;", Some(" read only")),
            (
                "BEGIN WORK ISOLATION LEVEL SERIALIZABLE",
                Some(" ISOLATION LEVEL SERIALIZABLE"),
            ),
            (
                "/* a */ Begin -- b\n transaction deferrable",
                Some(" deferrable"),
            ),
            ("START TRANSACTION READ WRITE", Some(" READ WRITE")),
            ("BEGIN bogus", Some(" bogus")),
            ("BEGINNING", None),
            ("START", None),
            ("START TRANSACTIONS", None),
            ("BEGIN; SELECT 1", None),
            ("COMMIT", None),
        ];
        for (sql, want) in cases {
            assert_eq!(lone(sql).and_then(|l| modes(l.text)), want, "{sql}");
        }
    }

    #[test]
    fn settings_by_query_are_made_again_with_their_parameters() {
        let calls = [
            LocalConfig {
                name: ConfigArg::Text("app.tenant".into()),
                value: ConfigArg::Param(1),
            },
            LocalConfig {
                name: ConfigArg::Param(0),
                value: ConfigArg::Param(2),
            },
        ];
        let values = [Some(&b"role"[..]), Some(&b"it's"[..]), None];
        assert_eq!(
            config_sql(&calls, &Params::new(&[1], &values)).as_deref(),
            Some(
                "SELECT set_config(E'app.tenant', E'it''s', true), set_config(E'role', NULL, true)"
            )
        );
        assert_eq!(config_sql(&calls, &Params::new(&[], &values[..2])), None);
        let bad = [Some(&b"\xff"[..]), Some(&[0xff][..]), None];
        assert_eq!(config_sql(&calls, &Params::new(&[], &bad)), None);
    }

    #[test]
    fn savepoint_commands_by_their_tags() {
        let cases = [
            ("SAVEPOINT s1", Some("SAVEPOINT")),
            ("release savepoint s1;", Some("RELEASE")),
            ("/* orm */ RELEASE s1", Some("RELEASE")),
            ("ROLLBACK TO SAVEPOINT \"S1\"", Some("ROLLBACK")),
            ("rollback to s1", Some("ROLLBACK")),
            ("ROLLBACK WORK TO s1", Some("ROLLBACK")),
            ("ROLLBACK AND CHAIN", None),
            ("ROLLBACK", None),
            ("SAVEPOINT a; SAVEPOINT b", None),
        ];
        for (sql, want) in cases {
            assert_eq!(
                lone(sql).and_then(|l| savepoint_tag(&l.words)),
                want,
                "{sql}"
            );
        }
    }

    #[test]
    fn and_chain_but_not_and_no_chain() {
        assert!(chains_of("COMMIT AND CHAIN"));
        assert!(chains_of("rollback work and chain;"));
        assert!(!chains_of("COMMIT AND NO CHAIN"));
        assert!(!chains_of("COMMIT"));
        assert!(!chains_of("COMMIT -- and chain"));
    }

    #[test]
    fn one_statement_whatever_its_literals_hold() {
        assert_eq!(
            lone("SET LOCAL a.b = 'x;y'; -- z;").map(|l| l.text),
            Some("SET LOCAL a.b = 'x;y'")
        );
        assert_eq!(
            lone("SET LOCAL a.b = $$;$$").map(|l| l.text),
            Some("SET LOCAL a.b = $$;$$")
        );
        assert_eq!(lone("BEGIN; SET LOCAL a.b = 1").map(|l| l.text), None);
    }
}
