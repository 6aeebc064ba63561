//! Which statements leave state in the server session: settings (SET, RESET, set_config), which
//! shardgate carries to the client's next servers, and what transaction pooling cannot carry to another
//! server (SET ROLE, LISTEN, PREPARE, temp tables, session advisory locks, WITH HOLD cursors, LOAD). The
//! router's lexer (`router::lex`) splits a query string into statements, skipping strings, comments and
//! dollar quotes, so a keyword inside them never counts. Pure.

/// Why a statement pins its client to the server it ran on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionState {
    /// Settings: read back from the server once the statement is done, and carried.
    Set,
    /// The session's role: never carried (a SET ROLE that failed on the next server would leave the
    /// client running with the pool user's rights).
    Role,
    /// A custom setting (`app.tenant`): PostgreSQL does not list those, so they cannot be read back.
    CustomSetting,
    Listen,
    Prepare,
    TempTable,
    AdvisoryLock,
    HoldCursor,
    Load,
    /// DO or CALL: code that runs on the server may leave settings, locks or tables shardgate cannot
    /// see.
    Code,
}

impl SessionState {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            SessionState::Set => "SET (use SET LOCAL inside a transaction instead)",
            SessionState::Role => {
                "SET ROLE or SET SESSION AUTHORIZATION (use SET LOCAL ROLE inside a transaction instead)"
            }
            SessionState::CustomSetting => {
                "a custom setting (use SET LOCAL or set_config(..., true) inside a transaction instead)"
            }
            SessionState::Listen => "LISTEN",
            SessionState::Prepare => {
                "SQL-level PREPARE (use protocol-level prepared statements instead)"
            }
            SessionState::TempTable => "a temporary table",
            SessionState::AdvisoryLock => {
                "a session-level advisory lock (use pg_advisory_xact_lock instead)"
            }
            SessionState::HoldCursor => "a WITH HOLD cursor",
            SessionState::Load => "LOAD",
            SessionState::Code => "DO or CALL (code on the server may change the session)",
        }
    }
}

/// Words without which no statement creates session state; most queries contain none of them, so the
/// lexer (which allocates) runs only for the few that do. Each is looked for where a word starts, `_`
/// counting as a break (`pg_advisory_lock`, `set_config`).
const TRIGGERS: &[&[u8]] = &[
    b"set",
    b"reset",
    b"listen",
    b"prepare",
    b"load",
    b"temp",
    b"hold",
    b"advisory",
];

impl SessionState {
    /// Settings, which shardgate carries to the client's other servers; any other state pins the
    /// client to its server.
    pub(crate) fn carried(self) -> bool {
        self == SessionState::Set
    }
}

/// The session state the statements in `sql` create, if any: the first that pins, else settings.
pub(crate) fn session_state(sql: &str) -> Option<SessionState> {
    if !has_trigger(sql.as_bytes()) {
        return None;
    }
    let mut found = None;
    for state in crate::router::lex::statements(sql).iter().filter_map(|s| {
        let state = classify(&s.words)?;
        // `SELECT set_config(name, value, true)` sets for the transaction alone.
        let local = state == SessionState::Set
            && s.words[0] == "select"
            && crate::router::local_config::is_local_config(s.text);
        (!local).then(|| custom(state, s))
    }) {
        if !state.carried() {
            return Some(state);
        }
        found = Some(state);
    }
    found
}

/// `DISCARD ALL` and `DEALLOCATE`, which on a shared server would drop the statements shardgate keeps
/// prepared there for every client: the session answers them for its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reset {
    DiscardAll,
    DeallocateAll,
    Deallocate(String),
}

/// The reset `sql` is, if it is one; `Err` when one comes with other statements in one string.
pub(crate) fn reset(sql: &str) -> Result<Option<Reset>, ()> {
    // One pass; only a word starting with `d` is compared.
    let b = sql.as_bytes();
    let mentioned = (0..b.len()).any(|i| {
        b[i] | 0x20 == b'd'
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
            && [&b"discard"[..], b"deallocate"].iter().any(|w| {
                b.get(i..i + w.len())
                    .is_some_and(|x| x.eq_ignore_ascii_case(w))
            })
    });
    if !mentioned {
        return Ok(None);
    }
    let statements = crate::router::lex::statements(sql);
    let resets: Vec<Option<Reset>> = statements.iter().map(|s| reset_words(&s.words)).collect();
    match resets.as_slice() {
        [one] => Ok(one.clone()),
        many if many.iter().any(Option::is_some) => Err(()),
        _ => Ok(None),
    }
}

fn reset_words(words: &[String]) -> Option<Reset> {
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    match w.as_slice() {
        ["discard", "all"] => Some(Reset::DiscardAll),
        ["deallocate", "all"] | ["deallocate", "prepare", "all"] => Some(Reset::DeallocateAll),
        ["deallocate", name] | ["deallocate", "prepare", name] => {
            Some(Reset::Deallocate((*name).to_owned()))
        }
        _ => None,
    }
}

/// DO and CALL run code; they count as whole words only (DO of `ON CONFLICT DO NOTHING` does not).
const CODE_WORDS: &[&[u8]] = &[b"do", b"call"];

/// The letters trigger words start with, as bits (`a` = bit 0).
const FIRST_LETTERS: u32 = {
    let mut bits = 0u32;
    let mut i = 0;
    while i < CODE_WORDS.len() {
        bits |= 1 << (CODE_WORDS[i][0] - b'a');
        i += 1;
    }
    let mut i = 0;
    while i < TRIGGERS.len() {
        bits |= 1 << (TRIGGERS[i][0] - b'a');
        i += 1;
    }
    bits
};

/// Whether a trigger word starts anywhere (case-insensitive), in one pass over the text. Most bytes
/// end at a test or two: only a word's first letter that some trigger starts with is compared.
fn has_trigger(sql: &[u8]) -> bool {
    (0..sql.len()).any(|i| {
        // ASCII letters lowercased; another byte that maps onto a first letter only costs a compare.
        let first = sql[i] | 0x20;
        (i == 0 || !sql[i - 1].is_ascii_alphanumeric())
            && first.is_ascii_lowercase()
            && FIRST_LETTERS & (1 << (first - b'a')) != 0
            && (TRIGGERS.iter().any(|t| {
                t[0] == first
                    && sql
                        .get(i..i + t.len())
                        .is_some_and(|w| w.eq_ignore_ascii_case(t))
            }) || runs_code(sql, i))
    })
}

/// Whether the word at `i` is DO or CALL as a statement of their own: DO followed by NOTHING, UPDATE,
/// ALSO or INSTEAD belongs to an INSERT's ON CONFLICT or a rule.
fn runs_code(sql: &[u8], i: usize) -> bool {
    let word_at = |at: usize, w: &[u8]| {
        sql.get(at..at + w.len())
            .is_some_and(|x| x.eq_ignore_ascii_case(w))
            && sql
                .get(at + w.len())
                .is_none_or(|&c| !c.is_ascii_alphanumeric() && c != b'_')
    };
    // `on_call` is one word (has_trigger takes `_` for a break).
    (i == 0 || sql[i - 1] != b'_')
        && CODE_WORDS.iter().any(|w| word_at(i, w))
        && !(word_at(i, b"do") && {
            let next = sql[i + 2..]
                .iter()
                .position(|c| !c.is_ascii_whitespace())
                .map_or(sql.len(), |n| i + 2 + n);
            [&b"nothing"[..], b"update", b"also", b"instead"]
                .iter()
                .any(|w| word_at(next, w))
        })
}

fn classify(words: &[String]) -> Option<SessionState> {
    let w = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    match w(0) {
        "set" | "reset" if sets_role(words) => Some(SessionState::Role),
        // Words split at dots: `SET shardgate.shard` starts `set`, `shardgate`.
        "set" if !matches!(w(1), "local" | "transaction" | "shardgate") => Some(SessionState::Set),
        "reset" => Some(SessionState::Set),
        "listen" => Some(SessionState::Listen),
        "prepare" if w(1) != "transaction" => Some(SessionState::Prepare),
        "load" => Some(SessionState::Load),
        "do" | "call" => Some(SessionState::Code),
        "create" if creates_temp(words) => Some(SessionState::TempTable),
        "declare" if words.windows(2).any(|p| p[0] == "with" && p[1] == "hold") => {
            Some(SessionState::HoldCursor)
        }
        // A lock held by the session pins, also next to a set_config.
        _ if words.iter().any(|x| is_session_lock_or_config(x)) => {
            if words
                .iter()
                .any(|x| x != "set_config" && is_session_lock_or_config(x))
            {
                Some(SessionState::AdvisoryLock)
            } else {
                Some(SessionState::Set)
            }
        }
        _ => None,
    }
}

/// Settings named with a dot are custom ones, which pin: in `SET`/`RESET` the name, in `set_config`
/// the first argument (a parameter or an expression may be anything). Read from the statement with its
/// comments blanked and its blanks made single spaces.
fn custom(state: SessionState, lexed: &crate::router::lex::Lexed<'_>) -> SessionState {
    if state != SessionState::Set {
        return state;
    }
    let text = without_comments(&lexed.text.to_ascii_lowercase());
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let set_name = ["set session ", "set ", "reset "].iter().find_map(|k| {
        let rest = text.strip_prefix(k)?;
        rest.split([' ', '=', ';']).next().map(str::to_owned)
    });
    let dotted_name = set_name.is_some_and(|n| n.contains('.'));
    let dotted_config = text.match_indices("set_config").any(|(at, _)| {
        let args = text[at + "set_config".len()..].trim_start();
        let first = args.strip_prefix('(').map(str::trim_start).unwrap_or("");
        match first.strip_prefix('\'') {
            Some(literal) => literal
                .split('\'')
                .next()
                .is_some_and(|name| name.contains('.')),
            None => true,
        }
    });
    if dotted_name || dotted_config {
        SessionState::CustomSetting
    } else {
        state
    }
}

/// `sql` with each comment (outside quotes) made a space.
fn without_comments(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let (mut i, mut plain, mut quoted) = (0, 0, false);
    while i < b.len() {
        let end = match (quoted, b[i], b.get(i + 1)) {
            (false, b'-', Some(b'-')) => sql[i..].find('\n').map_or(b.len(), |n| i + n),
            (false, b'/', Some(b'*')) => sql[i + 2..].find("*/").map_or(b.len(), |n| i + n + 4),
            (_, b'\'', _) => {
                quoted = !quoted;
                i += 1;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&sql[plain..i]);
        out.push(' ');
        (i, plain) = (end, end);
    }
    out.push_str(&sql[plain..]);
    out
}

/// `SET [SESSION] ROLE`, `SET [SESSION] SESSION AUTHORIZATION` and their RESETs.
fn sets_role(words: &[String]) -> bool {
    let w = |i: usize| words.get(i).map_or("", String::as_str);
    matches!(
        (w(1), w(2), w(3)),
        ("role", _, _)
            | ("session", "role" | "authorization", _)
            | ("session", "session", "authorization")
    )
}

/// `CREATE [GLOBAL|LOCAL] TEMP[ORARY] TABLE|VIEW|SEQUENCE`, also after `OR REPLACE`.
fn creates_temp(words: &[String]) -> bool {
    words[1..]
        .iter()
        .take_while(|w| !matches!(w.as_str(), "table" | "view" | "sequence"))
        .any(|w| w == "temp" || w == "temporary")
}

fn is_session_lock_or_config(word: &str) -> bool {
    matches!(
        word,
        "pg_advisory_lock"
            | "pg_advisory_lock_shared"
            | "pg_try_advisory_lock"
            | "pg_try_advisory_lock_shared"
            | "set_config"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use SessionState::*;

    fn check(sql: &str, want: Option<SessionState>) {
        assert_eq!(session_state(sql), want, "{sql}");
    }

    #[test]
    fn table() {
        check("select 1", None);
        check("SELECT set_config('app.tenant', $1, true)", None);
        check(
            "SELECT set_config('app.tenant', $1, false)",
            Some(CustomSetting),
        );
        check(
            "SELECT set_config('app.tenant', $1, true), 1",
            Some(CustomSetting),
        );
        check("SET search_path = x", Some(Set));
        check("set session timezone = 'UTC'", Some(Set));
        check("SET LOCAL search_path = x", None);
        check("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", None);
        check("SET shardgate.shard = 'a'", None);
        check("RESET ALL", Some(Set));
        check("begin; set x.y = 1; commit", Some(CustomSetting));
        check("begin; set work_mem = '8MB'; commit", Some(Set));
        check("LISTEN chan", Some(Listen));
        check("lIsTeN chan", Some(Listen));
        check("select 'hold'", None);
        check("select 1 as s", None);
        check("PREPARE p AS SELECT 1", Some(Prepare));
        check("PREPARE TRANSACTION 'x'", None);
        check("CREATE TEMP TABLE t (a int)", Some(TempTable));
        check("create temporary table t (a int)", Some(TempTable));
        check("CREATE TABLE temp (a int)", None);
        check("create or replace temp view v as select 1", Some(TempTable));
        check("CREATE TABLE t (temp int)", None);
        check("select pg_advisory_lock(1)", Some(AdvisoryLock));
        check("select pg_advisory_xact_lock(1)", None);
        check("SELECT PG_TRY_ADVISORY_LOCK(1)", Some(AdvisoryLock));
        check("select 1;reset role", Some(Role));
        check(
            "DO $$BEGIN PERFORM set_config('app.t', 'a', false); END$$",
            Some(Code),
        );
        check("/* shardgate: shard=s1 */ do $$ begin end $$", Some(Code));
        check("CALL refresh_all()", Some(Code));
        check("select 1; call p()", Some(Code));
        check("INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING", None);
        check(
            "insert into t values (1) on conflict (a) do\n  update set a = 2",
            None,
        );
        check("select doc, callback, dozen from t", None);
        // The pre-filter itself lets these by (DO of ON CONFLICT or a rule runs no code), so that
        // they are not lexed at all.
        for sql in [
            &b"insert into t values (1) on conflict do nothing"[..],
            b"create rule r as on insert to t do also notify c",
            b"select doc, callback, dozen from t",
        ] {
            assert!(!has_trigger(sql), "{}", String::from_utf8_lossy(sql));
        }
        check("SET ROLE reader", Some(Role));
        check("set session role reader", Some(Role));
        check("SET SESSION AUTHORIZATION reader", Some(Role));
        check("set session session authorization reader", Some(Role));
        check("RESET SESSION AUTHORIZATION", Some(Role));
        check("SET LOCAL ROLE reader", None);
        check("set session_replication_role = replica", Some(Set));
        check("SET work_mem = 1; LISTEN chan", Some(Listen));
        check(
            "SET work_mem = 1; SET ROLE reader; SET jit = off",
            Some(Role),
        );
        check("select set_config('a.b', '1', false)", Some(CustomSetting));
        check("select set_config('jit', 'off', false)", Some(Set));
        check("SELECT set_config ( 'search_path', 'x', false)", Some(Set));
        check("select set_config($1, $2, false)", Some(CustomSetting));
        check("SET app.tenant = 7", Some(CustomSetting));
        check("set session app.tenant to 7", Some(CustomSetting));
        check("RESET app.tenant", Some(CustomSetting));
        check("SET TIME ZONE 'Europe/Paris'", Some(Set));
        check("SET\n  app.tenant = '42'", Some(CustomSetting));
        check("SET\tapp.tenant TO 1", Some(CustomSetting));
        check("/* orm */ SET app.tenant = 1", Some(CustomSetting));
        check("SET SESSION\napp.tenant = 1", Some(CustomSetting));
        check("SET /* x */ work_mem = '8MB'", Some(Set));
        check(
            "select set_config('a.b', '1', false), pg_advisory_lock(7)",
            Some(AdvisoryLock),
        );
        check("DECLARE c CURSOR WITH HOLD FOR SELECT 1", Some(HoldCursor));
        check("DECLARE c CURSOR FOR SELECT 1", None);
        check("select 'set x = 1'", None);
        check("select 1 -- ; set x = 1", None);
        check("select /* ; listen x */ 1", None);
        check("select $$; listen x$$, $1", None);
        check("select $a$ ; listen x $a$", None);
        check("LOAD 'auto_explain'", Some(Load));
        assert_eq!(reset("DISCARD ALL"), Ok(Some(Reset::DiscardAll)));
        assert_eq!(reset("deallocate all;"), Ok(Some(Reset::DeallocateAll)));
        assert_eq!(
            reset("DEALLOCATE PREPARE s1"),
            Ok(Some(Reset::Deallocate("s1".into())))
        );
        assert_eq!(reset("DISCARD PLANS"), Ok(None));
        assert_eq!(reset("select 'discard all'"), Ok(None));
        assert_eq!(reset("DISCARD ALL; SELECT 1"), Err(()));
        check("", None);
    }
}
