//! Protocol fuzzing end to end: hundreds of seeded random sessions, run four at a time through
//! shardgate in front of 2 shards, send valid, mutated and malformed messages (simple and extended
//! query, COPY, transactions, settings, hints, garbage frames, abrupt disconnects). Each session
//! then ends with CopyFail, Sync, ROLLBACK, RESET ALL and a query of its own marker, and must see
//! that marker, or its connection closed after a FATAL error (or its own Terminate): never a hang,
//! never a value tagged with another session's number. After all of them, no shard server is left
//! in a transaction and a new client finds every pooled server clean.
//!
//! `SHARDGATE_FUZZ_SEED` and `SHARDGATE_FUZZ_SESSIONS` replay or widen a run; a failure prints the seed
//! and the session's messages, and `SHARDGATE_FUZZ_ONLY=N` replays session N alone.

use std::fmt::Write as _;
use std::time::Duration;

use bytes::{BufMut, BytesMut};

use crate::harness::raw::{RawClient, Reply};
use crate::harness::sharded::Sharded;
use crate::harness::shared;

/// Seeded, so that a failure replays (with the Cargo.lock's rand).
struct Rng(rand::rngs::StdRng);

impl Rng {
    fn seeded(seed: u64) -> Rng {
        Rng(rand::SeedableRng::seed_from_u64(seed))
    }
    fn next(&mut self) -> u64 {
        rand::RngExt::random(&mut self.0)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Statements for simple queries; `{s}` is the session's number, `{k}` a random key. Values a
/// statement returns as its own are tagged `sess-{s}`; what goes into tables (which every session may
/// read) is tagged `row-{s}`.
const SIMPLE: &[&str] = &[
    "SELECT id, email FROM users WHERE id = {k}",
    "SELECT 'sess-{s}', count(*) FROM users",
    "SELECT id FROM users ORDER BY id DESC LIMIT 3",
    "SELECT 'sess-{s}' FROM users WHERE id IN ({k}, 3, 8)",
    "INSERT INTO users (id, email) VALUES ({k}, 'row-{s}') ON CONFLICT DO NOTHING",
    "INSERT INTO users (id, email) VALUES ({k}, 'a'), (2, 'b'), (13, 'c') ON CONFLICT DO NOTHING",
    "INSERT INTO users (id, email) VALUES ({k}, 'dup')",
    "UPDATE users SET email = 'row-{s}' WHERE id = {k}",
    "DELETE FROM users WHERE id = {k}",
    "SELECT u.id, o.amount FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = {k}",
    "SELECT * FROM events WHERE day = 500",
    "SELECT code FROM countries",
    "INSERT INTO countries VALUES ('x{k}', 'row-{s}') ON CONFLICT DO NOTHING",
    "BEGIN",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT a",
    "ROLLBACK TO SAVEPOINT a",
    "SET work_mem = '77MB'",
    "SET statement_timeout = '5s'",
    "SET application_name = 'fuzz-{s}'",
    "SET LOCAL work_mem = '5MB'",
    "SELECT set_config('search_path', 'nowhere, public', false)",
    "SELECT set_config('app.tenant', 'sess-{s}', false)",
    "RESET ALL",
    "SET shardgate.shard = 's1'",
    "/* shardgate: shard=s0 */ SELECT 'sess-{s}'",
    "/* shardgate: key={k} */ SELECT 'sess-{s}', {k}",
    "SELECT 1/0",
    "SELEC 1",
    "SELECT * FROM nowhere",
    "SELECT pg_sleep(0.01)",
    "SELECT 'sess-{s}'; SELECT 2",
    "",
    ";",
    "SELECT 'é—{s}' -- ü\n",
    "SELECT $$sess-{s}$$, E'\\x41'",
    "DISCARD ALL",
    "DEALLOCATE ALL",
    "PREPARE q{s} AS SELECT 'sess-{s}'",
    "EXECUTE q{s}",
    "LISTEN ch{s}",
    "COPY users (id, email) FROM STDIN",
    "COPY (SELECT 'sess-{s}') TO STDOUT",
    "COPY users TO STDOUT",
    "SHOW work_mem",
    "DO $$ BEGIN END $$",
];

/// Statements for Parse, with parameters.
const PREPARED: &[&str] = &[
    "SELECT id, email FROM users WHERE id = $1",
    "SELECT $1::text, 'sess-{s}'",
    "SELECT id FROM users WHERE id = ANY($1)",
    "INSERT INTO users (id, email) VALUES ($1, 'row-{s}') ON CONFLICT DO NOTHING",
    "UPDATE users SET email = $2 WHERE id = $1",
    "SELECT count(*) FROM users WHERE email <> $1",
    "SELECT 'sess-{s}'",
    "BEGIN",
    "COMMIT",
    "SET work_mem = '77MB'",
    "COPY users (id, email) FROM STDIN",
    "SELECT 1/0",
];

const NAMES: &[&str] = &["", "", "a", "b"];
const TEXT_PARAMS: &[&str] = &[
    "7",
    "-1",
    "{1,2,3}",
    "x",
    "9223372036854775807",
    "99999999999999999999",
    "{}",
    "'",
];
const COPY_ROWS: &[&str] = &[
    "{k}\trow-{s}\n",
    "{k}\tx\n{k}\ty\n",
    "notanumber\tx\n",
    "{k}",
    "\\.\n",
    "\t\t\t\n",
];

fn fill(template: &str, session: usize, rng: &mut Rng) -> String {
    template
        .replace("{s}", &session.to_string())
        .replace("{k}", &(1 + rng.below(40)).to_string())
}

/// A frame: tag, length, body.
fn frame(out: &mut BytesMut, tag: u8, body: &[u8]) {
    out.put_u8(tag);
    out.put_i32(4 + body.len() as i32);
    out.put_slice(body);
}

fn cstr(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(s.as_bytes());
    b.push(0);
}

/// Flips, cuts or splices a statement's text now and then.
fn mutate(sql: String, rng: &mut Rng) -> String {
    if !rng.chance(12) || sql.is_empty() {
        return sql;
    }
    let cut = sql
        .char_indices()
        .map(|(i, _)| i)
        .nth(rng.below(sql.chars().count()))
        .unwrap_or(0);
    match rng.below(4) {
        0 => sql[..cut].to_owned(),
        1 => format!(
            "{}{}{}",
            &sql[..cut],
            rng.pick(&["'", "\"", "$$", "/*", "--", "ü", "$1", "\\"]),
            &sql[cut..]
        ),
        2 => format!("{sql}; {sql}"),
        _ => format!(
            "/* shardgate: {} */ {sql}",
            rng.pick(&["shard=s9", "key=", "shard=s1", "key=abc"])
        ),
    }
}

fn bind(out: &mut BytesMut, rng: &mut Rng, log: &mut String) {
    let mut b = Vec::new();
    let (portal, statement) = (rng.pick(NAMES), rng.pick(NAMES));
    cstr(&mut b, portal);
    cstr(&mut b, statement);
    let params = rng.below(4);
    let formats = if rng.chance(80) {
        rng.below(2)
    } else {
        rng.below(4)
    };
    b.extend_from_slice(&(formats as i16).to_be_bytes());
    for _ in 0..formats {
        b.extend_from_slice(&(rng.below(3) as i16).to_be_bytes());
    }
    let declared = if rng.chance(90) { params } else { rng.below(5) };
    b.extend_from_slice(&(declared as i16).to_be_bytes());
    for _ in 0..params {
        match rng.below(6) {
            0 => b.extend_from_slice(&(-1i32).to_be_bytes()),
            1 => {
                b.extend_from_slice(&8i32.to_be_bytes());
                b.extend_from_slice(&(rng.below(40) as i64).to_be_bytes());
            }
            2 => {
                let n = rng.below(24);
                let claimed = if rng.chance(70) {
                    n as i32
                } else {
                    rng.below(64) as i32 - 8
                };
                b.extend_from_slice(&claimed.to_be_bytes());
                b.extend((0..n).map(|_| rng.next() as u8));
            }
            _ => {
                let v = rng.pick(TEXT_PARAMS);
                b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                b.extend_from_slice(v.as_bytes());
            }
        }
    }
    let results = rng.below(3);
    b.extend_from_slice(&(results as i16).to_be_bytes());
    for _ in 0..results {
        b.extend_from_slice(&(rng.below(2) as i16).to_be_bytes());
    }
    let _ = writeln!(log, "Bind {portal:?} {statement:?} {b:?}");
    frame(out, b'B', &b);
}

/// One random step of a session; false when it closes the connection's protocol for good.
fn step(out: &mut BytesMut, session: usize, rng: &mut Rng, log: &mut String) -> bool {
    match rng.below(100) {
        0..=29 => {
            let sql = mutate(fill(rng.pick(SIMPLE), session, rng), rng);
            let _ = writeln!(log, "Query {sql:?}");
            let mut b = Vec::new();
            cstr(&mut b, &sql);
            frame(out, b'Q', &b);
        }
        30..=39 => {
            let (name, sql) = (
                rng.pick(NAMES),
                mutate(fill(rng.pick(PREPARED), session, rng), rng),
            );
            let mut b = Vec::new();
            cstr(&mut b, name);
            cstr(&mut b, &sql);
            let types = rng.below(3);
            b.extend_from_slice(&(types as i16).to_be_bytes());
            for _ in 0..types {
                let oid: u32 = [0, 20, 25, 1016, 2950, 999_999][rng.below(6)];
                b.extend_from_slice(&oid.to_be_bytes());
            }
            let _ = writeln!(log, "Parse {name:?} {sql:?} ({types} types)");
            frame(out, b'P', &b);
        }
        40..=51 => bind(out, rng, log),
        52..=61 => {
            let portal = rng.pick(NAMES);
            let rows = [0u32, 0, 1, 2][rng.below(4)];
            let _ = writeln!(log, "Execute {portal:?} {rows}");
            let mut b = Vec::new();
            cstr(&mut b, portal);
            b.extend_from_slice(&rows.to_be_bytes());
            frame(out, b'E', &b);
        }
        62..=67 => {
            let (tag, what, name) = (
                if rng.chance(60) { b'D' } else { b'C' },
                if rng.chance(50) { b'S' } else { b'P' },
                rng.pick(NAMES),
            );
            let _ = writeln!(log, "{} {} {name:?}", tag as char, what as char);
            let mut b = vec![what];
            cstr(&mut b, name);
            frame(out, tag, &b);
        }
        68..=79 => {
            let _ = writeln!(log, "Sync");
            frame(out, b'S', &[]);
        }
        80..=82 => {
            let _ = writeln!(log, "Flush");
            frame(out, b'H', &[]);
        }
        83..=89 => {
            let row = fill(rng.pick(COPY_ROWS), session, rng);
            let _ = writeln!(log, "CopyData {row:?}");
            frame(out, b'd', row.as_bytes());
        }
        90..=92 => {
            let _ = writeln!(log, "CopyDone");
            frame(out, b'c', &[]);
        }
        93..=94 => {
            let _ = writeln!(log, "CopyFail");
            frame(out, b'f', b"fuzz\0");
        }
        95..=96 => {
            // A frame of a random type with random bytes, its length true.
            let tag = b"PBDECSHQdcfFpXZ?\0"[rng.below(17)];
            let body: Vec<u8> = (0..rng.below(24)).map(|_| rng.next() as u8).collect();
            let _ = writeln!(log, "frame {tag:#04x} {body:?}");
            frame(out, tag, &body);
        }
        _ => {
            // A length that lies (too short, negative, huge, or longer than what follows): the stream
            // cannot be framed again, so the session ends here.
            let len: i32 = [0, 3, -5, i32::MAX, 1 << 30, 64][rng.below(6)];
            let _ = writeln!(log, "lying length {len}");
            out.put_u8(b'Q');
            out.put_i32(len);
            out.put_slice(b"SELECT 1\0");
            return false;
        }
    }
    true
}

/// Runs one session; `Err` says what went wrong, with its messages.
async fn session(
    addr: std::net::SocketAddr,
    seed: u64,
    session: usize,
    verbose: bool,
) -> Result<(), String> {
    let mut rng = Rng::seeded(seed ^ (session as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut c = RawClient::login(addr, "trustuser", "app").await;
    let mut log = String::new();
    let mut framed = true;
    let cap: usize = std::env::var("SHARDGATE_FUZZ_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(99);
    let mut terminated = false;
    for _ in 0..(1 + rng.below(14)).min(cap) {
        let mut out = BytesMut::new();
        framed = step(&mut out, session, &mut rng, &mut log);
        // A Terminate (a random frame may be one) ends the session without a word.
        terminated |= out.first() == Some(&b'X');
        c.write(&out).await;
        if verbose {
            eprintln!("> {}", log.lines().last().unwrap_or(""));
            while let Ok(Some(r)) = tokio::time::timeout(Duration::from_millis(300), c.recv()).await
            {
                eprintln!("  < {r:?}");
            }
        }
        if !framed {
            break;
        }
    }
    if !framed || rng.chance(5) {
        // Gone without a word (or after a frame that cannot end): shardgate must clean up alone.
        return Ok(());
    }
    let marker = format!("end-{session}");
    let mut out = BytesMut::new();
    frame(&mut out, b'f', b"fuzz\0");
    frame(&mut out, b'S', &[]);
    for sql in ["ROLLBACK", "RESET ALL", &format!("SELECT '{marker}'")] {
        let mut b = Vec::new();
        cstr(&mut b, sql);
        frame(&mut out, b'Q', &b);
    }
    c.write(&out).await;
    // A tag is `sess-N` or `end-N` exactly (a mutated text may have broken one up: not a tag).
    let mine = |v: &str| {
        let tagged = v.strip_prefix("sess-").or_else(|| v.strip_prefix("end-"));
        tagged
            .filter(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
            .is_none_or(|n| n == session.to_string())
    };
    let fail =
        |why: String, log: &str| Err(format!("session {session} (seed {seed}): {why}\n{log}"));
    let mut seen_marker = false;
    let mut fatal = false;
    loop {
        let reply =
            match tokio::time::timeout(Duration::from_secs(if verbose { 3 } else { 20 }), c.recv())
                .await
            {
                Err(_) => return fail("no reply for 20 s".into(), &log),
                // Closed: only after a FATAL error that says why, or the client's Terminate.
                Ok(None) if fatal || terminated => return Ok(()),
                Ok(None) => return fail("closed without a FATAL error".into(), &log),
                Ok(Some(r)) => r,
            };
        if verbose {
            eprintln!("  < {reply:?}");
        }
        match &reply {
            Reply::Row(cols) => {
                if let Some(v) = cols.iter().flatten().find(|v| !mine(v)) {
                    return fail(format!("another session's value {v:?}"), &log);
                }
                seen_marker |= cols.first() == Some(&Some(marker.clone()));
            }
            Reply::Ready(_) if seen_marker => return Ok(()),
            Reply::Error { severity, .. } => fatal |= severity == "FATAL",
            _ => {}
        }
    }
}

#[tokio::test]
async fn random_sessions_never_hang_leak_or_cross() {
    let s = Sharded::start(shared(), "").await;
    let seed: u64 = std::env::var("SHARDGATE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_2026);
    let sessions: usize = std::env::var("SHARDGATE_FUZZ_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    if let Some(only) = std::env::var("SHARDGATE_FUZZ_ONLY")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
        session(
            s.proxy.addr,
            seed,
            only,
            std::env::var("SHARDGATE_FUZZ_VERBOSE").is_ok(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        return;
    }
    let addr = s.proxy.addr;
    let workers: Vec<_> = (0..4)
        .map(|w| {
            tokio::spawn(async move {
                for n in (w..sessions).step_by(4) {
                    session(addr, seed, n, false).await?;
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    for w in workers {
        if let Err(e) = w.await.expect("a fuzz worker") {
            panic!("{e}");
        }
    }
    // Sessions that vanished are cleaned up by shardgate in the background: give it a moment.
    let mut left = Vec::new();
    for _ in 0..50 {
        left.clear();
        for i in 0..2 {
            let direct = s.direct(shared(), i).await;
            let db = &s.dbs[i];
            let busy = direct
                .query(
                    "SELECT state, query FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() \
                     AND state IS DISTINCT FROM 'idle'",
                    &[db],
                )
                .await
                .unwrap();
            left.extend(busy.iter().map(|r| {
                format!(
                    "shard {i}: {:?} {:?}",
                    r.get::<_, Option<String>>(0),
                    r.get::<_, Option<String>>(1)
                )
            }));
        }
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(left.is_empty(), "servers left busy: {left:#?}");
    // Every pooled server is clean: 8 clients per shard each hold one in a transaction, so that all
    // of the pool's servers (8 per shard) are looked at, and each shows the defaults.
    let check = "SELECT current_setting('work_mem'), current_setting('statement_timeout'), \
                 current_setting('search_path'), current_setting('application_name'), \
                 coalesce(current_setting('app.tenant', true), '')";
    // Every client logs in first: a login takes a server for a moment.
    let mut holders = Vec::new();
    for _ in 0..16 {
        holders.push(s.proxy.client().await);
    }
    for (i, c) in holders.iter().enumerate() {
        let shard = i % 2;
        {
            // Simple queries: an extended one's Describe may take a server of another shard.
            c.batch_execute("BEGIN").await.unwrap();
            let reply = c
                .simple_query(&format!("/* shardgate: shard=s{shard} */ {check}"))
                .await
                .unwrap_or_else(|e| panic!("canary on s{shard}: {e:?}"));
            let Some(tokio_postgres::SimpleQueryMessage::Row(row)) = reply.get(1) else {
                panic!("canary on s{shard}: {reply:?}");
            };
            let mut got: [String; 5] =
                std::array::from_fn(|i| row.get(i).unwrap_or_default().to_owned());
            // shardgate's own name, or what the client gave at startup (nothing here).
            assert!(
                !got[3].starts_with("fuzz"),
                "application_name on s{shard}: {}",
                got[3]
            );
            got[3].clear();
            assert_eq!(
                got,
                ["4MB", "0", "\"$user\", public", "", ""].map(String::from),
                "settings of a pooled server on s{shard}"
            );
        }
    }
    for c in &holders {
        c.batch_execute("COMMIT").await.unwrap();
    }
    // And a read over every shard still merges.
    let c = s.proxy.client().await;
    c.query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap();
}
