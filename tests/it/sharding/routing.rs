//! Routing end to end over two shards: rows land on the shard that owns their key (checked on each
//! shard directly), multi-row inserts split, reference tables are written everywhere, hints and
//! `SET shardgate.shard` steer, and what cannot be routed is refused with 0A000 while the session goes on.

use shardgate::sharding::{KeyValue, Placement, ShardId, ShardMap, TableKind};
use tokio_postgres::SimpleQueryMessage;

use crate::harness::sharded::Sharded;
use crate::harness::{shared, sqlstate};

fn owner(map: &ShardMap, table: &str, key: KeyValue) -> usize {
    let Some(TableKind::Sharded(t)) = map.table(table).map(|t| &t.kind) else {
        panic!("{table} is sharded");
    };
    match map.place(t, &key) {
        Placement::Shard(ShardId(i)) => i,
        other => panic!("{other:?}"),
    }
}

/// The first user ids that shard 0 and shard 1 own.
fn user_on_each_shard(map: &ShardMap) -> (i64, i64) {
    let on = |shard| {
        (1..100i64)
            .find(|&k| owner(map, "users", KeyValue::Int(k)) == shard)
            .expect("a key on each shard")
    };
    (on(0), on(1))
}

/// Two shards with user `a` (email 'x') on shard 0 and `b` on shard 1, and a client.
async fn with_a_user_on_each_shard() -> (Sharded, i64, i64, tokio_postgres::Client) {
    let s = Sharded::start(shared(), "").await;
    let (a, b) = user_on_each_shard(&s.map());
    let c = s.proxy.client().await;
    for k in [a, b] {
        c.execute("INSERT INTO users (id, email) VALUES ($1, 'x')", &[&k])
            .await
            .unwrap();
    }
    (s, a, b, c)
}

/// Sends `sql` as a simple Query, or over the extended protocol.
async fn send(
    c: &tokio_postgres::Client,
    extended: bool,
    sql: &str,
) -> Result<(), tokio_postgres::Error> {
    if extended {
        c.execute(sql, &[]).await.map(|_| ())
    } else {
        c.batch_execute(sql).await
    }
}

/// The email of user `id`, read through shardgate.
async fn email_of(c: &tokio_postgres::Client, id: i64) -> String {
    c.query_one("SELECT email FROM users WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0)
}

async fn ids_on(s: &Sharded, shard: usize, sql: &str) -> Vec<i64> {
    let c = s.direct(shared(), shard).await;
    c.query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn rows(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn rows_land_on_the_shard_that_owns_their_key() {
    let s = Sharded::start(shared(), "").await;
    let map = s.map();
    let c = s.proxy.client().await;
    // Extended protocol, binary parameters.
    let insert = c
        .prepare("INSERT INTO users (id, email) VALUES ($1, $2)")
        .await
        .unwrap();
    for id in 1..=40i64 {
        c.execute(&insert, &[&id, &format!("u{id}@x")])
            .await
            .unwrap();
    }
    // Simple protocol, literal keys.
    for id in 41..=60i64 {
        c.batch_execute(&format!(
            "INSERT INTO users (id, email) VALUES ({id}, 'u{id}@x')"
        ))
        .await
        .unwrap();
    }
    let (mut want0, mut want1) = (Vec::new(), Vec::new());
    for id in 1..=60i64 {
        match owner(&map, "users", KeyValue::Int(id)) {
            0 => want0.push(id),
            _ => want1.push(id),
        }
    }
    assert!(!want0.is_empty() && !want1.is_empty());
    assert_eq!(
        ids_on(&s, 0, "SELECT id FROM users ORDER BY id").await,
        want0
    );
    assert_eq!(
        ids_on(&s, 1, "SELECT id FROM users ORDER BY id").await,
        want1
    );
    // Reads by key find every row, through both protocols.
    let select = c
        .prepare("SELECT email FROM users WHERE id = $1")
        .await
        .unwrap();
    for id in 1..=60i64 {
        let row = c.query_one(&select, &[&id]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), format!("u{id}@x"));
        let m = c
            .simple_query(&format!("SELECT email FROM users WHERE id = {id}"))
            .await
            .unwrap();
        assert_eq!(rows(&m), vec![vec![Some(format!("u{id}@x"))]]);
    }
}

#[tokio::test]
async fn multi_row_inserts_split_per_shard_and_return_every_row() {
    let s = Sharded::start(shared(), "").await;
    let map = s.map();
    let c = s.proxy.client().await;
    let values: Vec<String> = (100..120).map(|id| format!("({id}, 'm{id}')")).collect();
    let m = c
        .simple_query(&format!(
            "INSERT INTO users (id, email) VALUES {} RETURNING id",
            values.join(", ")
        ))
        .await
        .unwrap();
    let mut returned: Vec<i64> = rows(&m)
        .into_iter()
        .map(|r| r[0].as_deref().unwrap().parse().unwrap())
        .collect();
    returned.sort();
    assert_eq!(returned, (100..120).collect::<Vec<i64>>());
    let tag = m.iter().find_map(|m| match m {
        SimpleQueryMessage::CommandComplete(n) => Some(*n),
        _ => None,
    });
    assert_eq!(tag, Some(20));
    // Extended protocol with parameters: rows split, parameters renumbered per shard.
    let n = c
        .execute(
            "INSERT INTO users (id, email) VALUES ($1, $2), ($3, $4), ($5, $6), ($7, $8)",
            &[&200i64, &"a", &201i64, &"b", &202i64, &"c", &203i64, &"d"],
        )
        .await
        .unwrap();
    assert_eq!(n, 4);
    for id in (100..120).chain(200..204) {
        let shard = owner(&map, "users", KeyValue::Int(id));
        let on = ids_on(&s, shard, &format!("SELECT id FROM users WHERE id = {id}")).await;
        assert_eq!(on, vec![id], "id {id} on shard {shard}");
        let other = ids_on(
            &s,
            1 - shard,
            &format!("SELECT id FROM users WHERE id = {id}"),
        )
        .await;
        assert!(other.is_empty(), "id {id} also on shard {}", 1 - shard);
    }
}

#[tokio::test]
async fn reference_tables_are_written_everywhere_and_read_from_one() {
    let s = Sharded::start(shared(), "").await;
    let c = s.proxy.client().await;
    c.execute(
        "INSERT INTO countries (code, name) VALUES ($1, $2)",
        &[&"fr", &"France"],
    )
    .await
    .unwrap();
    c.batch_execute("INSERT INTO countries VALUES ('de', 'Germany')")
        .await
        .unwrap();
    for shard in 0..2 {
        let direct = s.direct(shared(), shard).await;
        let n: i64 = direct
            .query_one("SELECT count(*) FROM countries", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 2, "shard {shard}");
    }
    // Read from one shard: a read from both would count every row twice.
    let n: i64 = c
        .query_one("SELECT count(*) FROM countries", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    let n: i64 = c
        .simple_query("SELECT count(*) FROM countries")
        .await
        .unwrap()
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(|v| v.parse().unwrap()),
            _ => None,
        })
        .unwrap();
    assert_eq!(n, 2);
    for _ in 0..4 {
        let row = c
            .query_one("SELECT name FROM countries WHERE code = $1", &[&"de"])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "Germany");
    }
}

#[tokio::test]
async fn ddl_runs_on_every_shard() {
    let s = Sharded::start(shared(), "").await;
    let c = s.proxy.client().await;
    c.batch_execute("CREATE INDEX users_email ON users (email)")
        .await
        .unwrap();
    for shard in 0..2 {
        let direct = s.direct(shared(), shard).await;
        let n: i64 = direct
            .query_one(
                "SELECT count(*) FROM pg_indexes WHERE indexname = 'users_email'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1, "shard {shard}");
    }
    // A failure names the shard and says what the other shard did.
    s.direct(shared(), 1)
        .await
        .batch_execute("CREATE TABLE only_on_s1 (x int)")
        .await
        .unwrap();
    let e = c
        .batch_execute("CREATE TABLE only_on_s1 (x int)")
        .await
        .unwrap_err();
    let db = e.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "42P07");
    assert!(db.message().contains("on shard s1"), "{}", db.message());
    assert!(
        db.detail()
            .unwrap_or_default()
            .contains("shard s0: completed"),
        "{:?}",
        db.detail()
    );
}

/// Session state made on several shards at once would stay on servers that go back to the pools
/// (DDL's fan-out), to be met by other clients: refused, simple and extended; on one shard it pins.
#[tokio::test]
async fn session_state_on_several_shards_is_refused() {
    let s = Sharded::start(shared(), "").await;
    for sql in [
        "CREATE TEMP TABLE leak (x int)",
        "SELECT pg_advisory_lock(7) FROM users",
        "SELECT set_config('work_mem', '77MB', false) FROM users",
    ] {
        // A client per statement: a Parse that pins (its Describe ran on one server) keeps the
        // client on that server even when the Bind is refused.
        let e = s.proxy.client().await.batch_execute(sql).await.unwrap_err();
        assert_eq!(sqlstate(&e), Some("0A000"), "{sql}: {e}");
        let e = s.proxy.client().await.query(sql, &[]).await.unwrap_err();
        assert_eq!(sqlstate(&e), Some("0A000"), "{sql} (extended): {e}");
    }
    let c = s.proxy.client().await;
    // A refused simple query leaves no pin behind: the client moves from shard to shard after it.
    c.batch_execute("CREATE TEMP TABLE leak (x int)")
        .await
        .unwrap_err();
    for shard in ["s1", "s0"] {
        c.batch_execute(&format!("/* shardgate: shard={shard} */ SELECT 1"))
            .await
            .unwrap();
    }
    for shard in 0..2 {
        let direct = s.direct(shared(), shard).await;
        let temp: i64 = direct
            .query_one("SELECT count(*) FROM pg_class WHERE relname = 'leak'", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(temp, 0, "shard {shard}");
    }
    c.batch_execute("/* shardgate: shard=s1 */ CREATE TEMP TABLE mine (x int)")
        .await
        .unwrap();
    c.batch_execute("/* shardgate: shard=s1 */ INSERT INTO mine VALUES (1)")
        .await
        .unwrap();
    // Pinned to s1: another shard is refused.
    let e = c
        .batch_execute("/* shardgate: shard=s0 */ SELECT 1")
        .await
        .unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("0A000"), "{e}");
}

#[tokio::test]
async fn hints_and_set_shardgate_shard_steer_statements() {
    let s = Sharded::start(shared(), "").await;
    let c = s.proxy.client().await;
    let db = |m: Vec<SimpleQueryMessage>| rows(&m)[0][0].clone().unwrap();
    let on = db(c
        .simple_query("/* shardgate: shard=s1 */ SELECT current_database()")
        .await
        .unwrap());
    assert_eq!(on, s.dbs[1]);
    c.batch_execute("SET shardgate.shard = 's0'").await.unwrap();
    for _ in 0..3 {
        let on = db(c.simple_query("SELECT current_database()").await.unwrap());
        assert_eq!(on, s.dbs[0]);
    }
    // A hint wins over the session's shard.
    let on = db(c
        .simple_query("/* shardgate: shard=s1 */ SELECT current_database()")
        .await
        .unwrap());
    assert_eq!(on, s.dbs[1]);
    let e = c
        .batch_execute("SET shardgate.shard = 'nope'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("22023"));
    // Inside a transaction (its BEGIN still held, or on its server) the error aborts it, as any would.
    for first in ["", "INSERT INTO users (id, email) VALUES (8, 'eight');"] {
        c.batch_execute(&format!("BEGIN; {first}")).await.unwrap();
        let e = c
            .batch_execute("SET shardgate.shard = 'nope'")
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&e), Some("22023"), "{e}");
        let e = c.batch_execute("SELECT 1").await.unwrap_err();
        assert_eq!(sqlstate(&e), Some("25P02"), "after {first:?}: {e}");
        c.batch_execute("ROLLBACK").await.unwrap();
    }
    c.batch_execute("RESET shardgate.shard").await.unwrap();
    // Key hints route statements that carry no key.
    c.batch_execute("INSERT INTO users (id, email) VALUES (7, 'seven')")
        .await
        .unwrap();
    let shard = owner(&s.map(), "users", KeyValue::Int(7));
    let on = db(c
        .simple_query("/* shardgate: key=7 */ SELECT current_database() FROM users LIMIT 1")
        .await
        .unwrap());
    assert_eq!(on, s.dbs[shard]);
    // Session and transaction commands stay on the server the client holds, whatever shard the
    // session names: a pinned client (LISTEN on s0) that names s1 can still end its transaction and
    // RESET ALL, which forgets the session's shard too.
    let p = s.proxy.client().await;
    p.batch_execute("/* shardgate: shard=s0 */ LISTEN somewhere")
        .await
        .unwrap();
    p.batch_execute("BEGIN; SELECT 1").await.unwrap();
    p.batch_execute("SET shardgate.shard = 's1'").await.unwrap();
    let e = p.batch_execute("SELECT 2").await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("0A000"), "{e}");
    p.batch_execute("ROLLBACK").await.unwrap();
    p.batch_execute("SHOW work_mem").await.unwrap();
    p.batch_execute("RESET ALL").await.unwrap();
    let on = db(p.simple_query("SELECT current_database()").await.unwrap());
    assert_eq!(on, s.dbs[0]);
}

#[tokio::test]
async fn unroutable_statements_are_refused_and_the_session_goes_on() {
    let s = Sharded::start(shared(), "").await;
    let c = s.proxy.client().await;
    for sql in [
        // A read over every shard that cannot merge exactly (DISTINCT is not merged yet).
        "SELECT DISTINCT email FROM users",
        "UPDATE users SET email = 'x'",
        "DELETE FROM users",
        // Unlisted (exists on the shards, but the map does not say where it lives).
        "SELECT * FROM tenant_directory",
        "UPDATE users SET id = 5 WHERE id = 4",
    ] {
        let e = c.simple_query(sql).await.unwrap_err();
        assert_eq!(sqlstate(&e), Some("0A000"), "{sql}: {e}");
        let e = c.query(sql, &[]).await.unwrap_err();
        assert_eq!(sqlstate(&e), Some("0A000"), "{sql} (extended): {e}");
        let row = c.query_one("SELECT 1::int4", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 1);
    }
}

/// A refusal shardgate raised on the server (to abort its transaction) reads as shardgate's own:
/// without PL/pgSQL's CONTEXT line, source position or the mark that tells it apart.
fn raised_as_shardgates_own(e: &tokio_postgres::Error) {
    let db = e.as_db_error().expect("an ErrorResponse");
    assert_eq!(db.where_(), None, "{db:?}");
    assert_eq!(db.schema(), None, "{db:?}");
    assert_eq!(db.file(), None, "{db:?}");
    assert!(db.hint().is_some(), "{db:?}");
}

#[tokio::test]
async fn a_transaction_stays_on_one_shard() {
    let s = Sharded::start(shared(), "").await;
    let c = s.proxy.client().await;
    let (a, b) = user_on_each_shard(&s.map());
    c.batch_execute("BEGIN").await.unwrap();
    c.execute("INSERT INTO users (id, email) VALUES ($1, 'a')", &[&a])
        .await
        .unwrap();
    let e = c
        .execute("INSERT INTO users (id, email) VALUES ($1, 'b')", &[&b])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("0A000"), "{e}");
    raised_as_shardgates_own(&e);
    // The refusal aborted the transaction, as an error in PostgreSQL would.
    let e = c.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("25P02"), "{e}");
    c.batch_execute("ROLLBACK").await.unwrap();
    assert!(ids_on(&s, 0, "SELECT id FROM users").await.is_empty());
    // Simple protocol: the refusal aborts the transaction as PostgreSQL would.
    c.batch_execute("BEGIN").await.unwrap();
    c.batch_execute(&format!("INSERT INTO users (id, email) VALUES ({a}, 'a')"))
        .await
        .unwrap();
    let e = c
        .batch_execute(&format!("INSERT INTO users (id, email) VALUES ({b}, 'b')"))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("0A000"), "{e}");
    raised_as_shardgates_own(&e);
    let e = c.batch_execute("SELECT 1").await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("25P02"), "{e}");
    c.batch_execute("ROLLBACK").await.unwrap();
    assert!(ids_on(&s, 0, "SELECT id FROM users").await.is_empty());
    // The refusal is the transaction's first statement (its BEGIN is still held by shardgate): the
    // transaction aborts all the same (before, the INSERT after it ran and was committed).
    for extended in [false, true] {
        c.batch_execute("BEGIN").await.unwrap();
        let sql = "UPDATE users SET email = 'x'";
        let e = if extended {
            c.execute(sql, &[]).await.map(|_| ())
        } else {
            c.batch_execute(sql).await
        }
        .unwrap_err();
        assert_eq!(sqlstate(&e), Some("0A000"), "extended {extended}: {e}");
        let insert = format!("INSERT INTO users (id, email) VALUES ({a}, 'a')");
        let e = c.batch_execute(&insert).await.unwrap_err();
        assert_eq!(sqlstate(&e), Some("25P02"), "extended {extended}: {e}");
        let e = c.query("SELECT 1", &[]).await.unwrap_err();
        assert_eq!(sqlstate(&e), Some("25P02"), "extended {extended}: {e}");
        // The INSERT was never run: COMMIT ends the aborted transaction and keeps nothing.
        c.batch_execute("COMMIT").await.unwrap();
        assert!(ids_on(&s, 0, "SELECT id FROM users").await.is_empty());
        assert!(ids_on(&s, 1, "SELECT id FROM users").await.is_empty());
        let row = c.query_one("SELECT 1::int4", &[]).await.unwrap();
        assert_eq!(
            row.get::<_, i32>(0),
            1,
            "the session works on after the rollback"
        );
    }
    // Statements on one key in one transaction commit together.
    c.batch_execute(&format!(
        "BEGIN; INSERT INTO users (id, email) VALUES ({a}, 'a'); INSERT INTO orders (id, user_id, amount) VALUES (1, {a}, 10); COMMIT"
    ))
    .await
    .unwrap();
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = $1",
            &[&a],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[tokio::test]
async fn range_directory_and_uuid_keys_route() {
    let s = Sharded::start(shared(), "").await;
    let map = s.map();
    let c = s.proxy.client().await;
    c.execute("INSERT INTO events (day, what) VALUES ($1, 'x')", &[&5i32])
        .await
        .unwrap();
    c.execute(
        "INSERT INTO events (day, what) VALUES ($1, 'y')",
        &[&150i32],
    )
    .await
    .unwrap();
    let e = c
        .execute(
            "INSERT INTO events (day, what) VALUES ($1, 'z')",
            &[&500i32],
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("22023"), "{e}");
    let message = e.as_db_error().map(|d| d.message()).unwrap_or_default();
    assert!(
        message.contains("no shard holds events.day = 500"),
        "{message}"
    );
    assert_eq!(ids_on(&s, 0, "SELECT day::int8 FROM events").await, vec![5]);
    assert_eq!(
        ids_on(&s, 1, "SELECT day::int8 FROM events").await,
        vec![150]
    );
    // Directory: inline entries, then the lookup table on s0.
    s.direct(shared(), 0)
        .await
        .batch_execute("INSERT INTO tenant_directory VALUES ('initech', 's1')")
        .await
        .unwrap();
    for (tenant, shard) in [("acme", 0), ("globex", 1), ("initech", 1)] {
        c.execute(
            "INSERT INTO tenant_data (tenant, v) VALUES ($1, 1)",
            &[&tenant],
        )
        .await
        .unwrap();
        let n: i64 = s
            .direct(shared(), shard)
            .await
            .query_one(
                "SELECT count(*) FROM tenant_data WHERE tenant = $1",
                &[&tenant],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1, "{tenant} on s{shard}");
    }
    let e = c
        .execute(
            "INSERT INTO tenant_data (tenant, v) VALUES ($1, 1)",
            &[&"unknown"],
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("0A000"), "{e}");
    let message = e.as_db_error().map(|d| d.message()).unwrap_or_default();
    assert!(
        message.contains("\"unknown\" is not in the directory of tenant_data"),
        "{message}"
    );
    // uuid keys, text and binary.
    let id = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
    c.batch_execute(&format!(
        "INSERT INTO accounts (id, name) VALUES ('{id}', 'n')"
    ))
    .await
    .unwrap();
    let key = KeyValue::Uuid(
        shardgate::sharding::KeyType::Uuid
            .parse_text(id)
            .map(|k| match k {
                KeyValue::Uuid(u) => u,
                _ => unreachable!(),
            })
            .unwrap(),
    );
    let shard = owner(&map, "accounts", key);
    let n: i64 = s
        .direct(shared(), shard)
        .await
        .query_one("SELECT count(*) FROM accounts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let row = c
        .query_one(&format!("SELECT name FROM accounts WHERE id = '{id}'"), &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "n");
}

/// BEGIN held by shardgate, then a statement prepared (its Parse and Describe answered by whichever
/// server) and at once, before those replies are in, run: the BEGIN reaches the server the statement
/// runs on, also when that is the server the Describe brought in, so ROLLBACK undoes the statement.
#[tokio::test]
async fn a_held_begin_reaches_the_server_of_a_prepared_statement() {
    use crate::harness::raw::{RawClient, Reply};
    use postgres_protocol::message::frontend;
    let s = Sharded::start(shared(), "").await;
    let (a, _) = user_on_each_shard(&s.map());
    let mut c = RawClient::login(s.proxy.addr, "trustuser", &s.proxy.db).await;
    // The servers that answer a Describe take turns: four rounds meet shard 0 more than once.
    for round in 0..4 {
        c.simple("BEGIN").await;
        let name = format!("ins{round}");
        let key = a.to_string();
        c.send(|b| {
            let sql = "INSERT INTO users (id, email) VALUES ($1, 'x')";
            frontend::parse(&name, sql, [20], b).expect("Parse");
            frontend::describe(b'S', &name, b).expect("Describe");
            frontend::sync(b);
            crate::harness::raw::bind_execute(b, &name, &[key.as_str()]);
            frontend::sync(b);
        })
        .await;
        let prepared = c.until_ready().await;
        let ran = c.until_ready().await;
        assert_eq!(prepared.last(), Some(&Reply::Ready(b'T')), "{prepared:?}");
        assert_eq!(ran.last(), Some(&Reply::Ready(b'T')), "{ran:?}");
        assert_eq!(crate::harness::first_error(&ran), None, "{ran:?}");
        assert!(ran.contains(&Reply::Other(b'C')), "{ran:?}");
        // Inside the transaction the row is there; the ROLLBACK takes it away.
        let seen = c
            .simple(&format!("SELECT id FROM users WHERE id = {a}"))
            .await;
        assert!(
            seen.contains(&Reply::Row(vec![Some(a.to_string())])),
            "{seen:?}"
        );
        c.simple("ROLLBACK").await;
        assert!(
            ids_on(&s, 0, "SELECT id FROM users").await.is_empty(),
            "round {round}: the INSERT outlived its ROLLBACK"
        );
    }
}

#[tokio::test]
async fn a_function_call_runs_inside_the_held_begin() {
    use crate::harness::raw::{RawClient, Reply};
    let s = Sharded::start(shared(), "").await;
    let mut c = RawClient::login(s.proxy.addr, "trustuser", &s.proxy.db).await;
    let first_value = |replies: &[Reply]| {
        replies.iter().find_map(|r| match r {
            Reply::Row(row) => row[0].clone(),
            _ => None,
        })
    };
    let oid = c.simple("SELECT 'txid_current'::regproc::oid").await;
    let oid: u32 = first_value(&oid).unwrap().parse().unwrap();
    c.simple("BEGIN").await;
    c.call_function(oid, &[]).await;
    let called = c.until_ready().await;
    let [Reply::Function(Some(xid)), Reply::Ready(b'T')] = called.as_slice() else {
        panic!("{called:?}")
    };
    // The same transaction: the statement after the call sees the call's transaction id.
    let again = c.simple("SELECT txid_current()").await;
    assert_eq!(first_value(&again).as_ref(), Some(xid), "{again:?}");
    c.simple("ROLLBACK").await;
}

/// A session's settings follow its client from shard to shard, as asyncpg's type introspection needs
/// (it turns jit off with set_config, queries, and turns it back on with a bound parameter), and a
/// statement on another shard is not refused for them.
#[tokio::test]
async fn settings_follow_the_client_across_shards() {
    let s = Sharded::start(shared(), "").await;
    let c = s.proxy.client().await;
    let setting = |m: Vec<SimpleQueryMessage>| rows(&m)[0][0].clone().unwrap();
    c.simple_query("SELECT current_setting('jit') AS cur, set_config('jit', 'off', false) AS new")
        .await
        .unwrap();
    c.batch_execute("SET statement_timeout = 4321")
        .await
        .unwrap();
    for shard in ["s0", "s1", "s0", "s1"] {
        let sql = format!(
            "/* shardgate: shard={shard} */ SELECT current_setting('jit') || ' ' || current_setting('statement_timeout')"
        );
        assert_eq!(setting(c.simple_query(&sql).await.unwrap()), "off 4321ms");
    }
    // Keys on both shards, in one statement with an array parameter: a read merged over the shards.
    let (a, b) = (
        1i64,
        (2..100)
            .find(|k| {
                owner(&s.map(), "users", KeyValue::Int(*k))
                    != owner(&s.map(), "users", KeyValue::Int(1))
            })
            .unwrap(),
    );
    for k in [a, b] {
        c.execute("INSERT INTO users (id, email) VALUES ($1, 'x')", &[&k])
            .await
            .unwrap();
    }
    let got: Vec<i64> = c
        .query(
            "SELECT id FROM users WHERE id = ANY($1) ORDER BY id",
            &[&vec![a, b]],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(got, [a, b]);
    let back = c
        .prepare("SELECT set_config('jit', $1, false)")
        .await
        .unwrap();
    c.query(&back, &[&"on"]).await.unwrap();
    for shard in ["s0", "s1"] {
        let sql = format!("/* shardgate: shard={shard} */ SELECT current_setting('jit')");
        assert_eq!(setting(c.simple_query(&sql).await.unwrap()), "on");
    }
    // Settings changed by a statement that would run on several shards would stay behind there.
    let e = c
        .batch_execute("SET work_mem = '8MB'; SELECT count(*) FROM users")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("0A000"), "{e}");
    // Another client sees none of it, on either shard.
    let other = s.proxy.client().await;
    for shard in ["s0", "s1"] {
        let sql =
            format!("/* shardgate: shard={shard} */ SELECT current_setting('statement_timeout')");
        assert_eq!(setting(other.simple_query(&sql).await.unwrap()), "0");
    }
}

/// The settings of a transaction made before its first routed statement (SET TRANSACTION, SET
/// LOCAL, as ORMs and row-level-security setups send them) wait with its held BEGIN and reach the
/// shard that statement picks. Before, they ran on whichever shard came next in turn, and the
/// statement on the other shard was refused.
#[tokio::test]
async fn transaction_settings_wait_with_the_held_begin() {
    let (_s, a, b, c) = with_a_user_on_each_shard().await;
    let settings = "SELECT current_setting('transaction_isolation'), current_setting('statement_timeout'), current_setting('application_name') FROM users WHERE id = $1";
    // Each key twice in a row: the shards' turns would have sent one of each pair elsewhere.
    for (i, k) in [a, a, b, b, a, a, b, b].into_iter().enumerate() {
        c.batch_execute("BEGIN").await.unwrap();
        // The last four over the extended protocol, whose statements carry no semicolons.
        let extended = i >= 4;
        for (simple, sql) in [
            ("; ", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
            ("", "SET LOCAL statement_timeout = 1234"),
            // A semicolon in a literal does not make two statements of it.
            ("; -- z;", "SET LOCAL application_name = 'x;y'"),
        ] {
            let sql = if extended {
                sql.to_owned()
            } else {
                format!("{sql}{simple}")
            };
            send(&c, extended, &sql).await.unwrap();
        }
        let row = c.query_one(settings, &[&k]).await.unwrap();
        let got: (String, String, String) = (row.get(0), row.get(1), row.get(2));
        let want = ("serializable".into(), "1234ms".into(), "x;y".into());
        assert_eq!(got, want, "key {k}");
        c.batch_execute("COMMIT").await.unwrap();
        // Settings of the transaction end with it.
        let row = c.query_one(settings, &[&k]).await.unwrap();
        let got: (String, String) = (row.get(0), row.get(1));
        assert_eq!(got, ("read committed".into(), "0".into()), "key {k}");
    }
}

/// `SELECT set_config(name, value, true)` as a transaction's first statement: how drivers set a
/// transaction's settings from parameters (a tenant for row-level security, say), which SET LOCAL
/// does not take. It is answered by a shard outside the transaction, and its settings are made again
/// in the transaction, on the shard its first routed statement picks. Before, it opened the
/// transaction on a shard in turn, where a statement keyed to the other shard was refused; and it
/// pinned its client to that server, as a session's custom setting.
#[tokio::test]
async fn set_config_of_a_transaction_waits_with_the_held_begin() {
    let (_s, a, b, c) = with_a_user_on_each_shard().await;
    let read = "SELECT current_setting('app.tenant'), current_setting('app.other') FROM users WHERE id = $1";
    for (i, k) in [a, a, b, b, a, a, b, b].into_iter().enumerate() {
        let tenant = format!("t'{i}");
        c.batch_execute("BEGIN").await.unwrap();
        let answered: Vec<Option<String>> = if i < 4 {
            let sql = format!(
                "SELECT set_config('app.tenant', '{}', true), pg_catalog.set_config('app.other', 'o', true)",
                tenant.replace('\'', "''")
            );
            rows(&c.simple_query(&sql).await.unwrap()).remove(0)
        } else {
            let sql =
                "SELECT set_config('app.tenant', $1, true), set_config($2, 'o'::text, true) AS o";
            let row = c.query_one(sql, &[&tenant, &"app.other"]).await.unwrap();
            vec![row.get(0), row.get(1)]
        };
        assert_eq!(answered, [Some(tenant.clone()), Some("o".into())]);
        let row = c.query_one(read, &[&k]).await.unwrap();
        let got: (String, String) = (row.get(0), row.get(1));
        assert_eq!(got, (tenant, "o".into()), "key {k}");
        c.batch_execute("COMMIT").await.unwrap();
    }
    // A setting the server refuses fails the transaction there and then.
    c.batch_execute("BEGIN").await.unwrap();
    let e = c
        .query_one(
            "SELECT set_config('statement_timeout', $1, true)",
            &[&"soon"],
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("22023"), "{e}");
    let e = c.query_one(read, &[&a]).await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("25P02"), "{e}");
    c.batch_execute("ROLLBACK").await.unwrap();
    email_of(&c, b).await;
}

/// Savepoint commands before a transaction's first routed statement (ORMs open a nested block so:
/// Django's atomic, SQLAlchemy's begin_nested, psycopg's nested transaction) wait with the held
/// BEGIN, in order with its settings. Before, a SAVEPOINT opened the transaction on a shard in turn,
/// and a statement keyed to the other shard was refused.
#[tokio::test]
async fn savepoints_wait_with_the_held_begin() {
    let (_s, a, b, c) = with_a_user_on_each_shard().await;
    let email = "SELECT email, current_setting('statement_timeout') FROM users WHERE id = $1";
    for (i, k) in [a, a, b, b].into_iter().enumerate() {
        let update = format!("UPDATE users SET email = 'e{i}' WHERE id = {k}");
        // Simple and extended protocol alike.
        // Simple and extended protocol alike.
        let extended = i % 2 == 1;
        for sql in [
            "BEGIN",
            "SAVEPOINT outer_block",
            "SET LOCAL statement_timeout = 4000",
            "SAVEPOINT inner_block",
            "SET LOCAL statement_timeout = 5000",
            "ROLLBACK TO SAVEPOINT inner_block",
            "RELEASE SAVEPOINT outer_block",
            "SAVEPOINT s",
        ] {
            send(&c, extended, sql).await.unwrap();
        }
        send(&c, extended, &update).await.unwrap();
        send(&c, extended, "RELEASE s").await.unwrap();
        let row = c.query_one(email, &[&k]).await.unwrap();
        let got: (String, String) = (row.get(0), row.get(1));
        assert_eq!(got, (format!("e{i}"), "4s".to_owned()), "key {k}");
        send(&c, extended, "COMMIT").await.unwrap();
    }
    // A savepoint the server does not know: the next statement gets its error.
    c.batch_execute("BEGIN").await.unwrap();
    c.batch_execute("RELEASE SAVEPOINT never_made")
        .await
        .unwrap();
    let e = c.query_one(email, &[&a]).await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("3B001"), "{e}");
    c.batch_execute("ROLLBACK").await.unwrap();
}

/// Sequences and advisory locks live on one shard (the default, else the first), the same for every
/// client: nextval hands out each value once, and an advisory lock keeps other clients out, whichever
/// shard came next in turn. A nextval as a transaction's first statement (ORMs draw ids so) runs
/// outside the transaction, as no transaction undoes it, so the statement after it picks the shard.
/// Before, each went to a shard in turn: the two shards' sequences gave the same values, and a lock
/// taken on one shard kept out no one on the other.
#[tokio::test]
async fn sequences_and_advisory_locks_live_on_one_shard() {
    let (s, a, b, c) = with_a_user_on_each_shard().await;
    c.batch_execute("CREATE SEQUENCE ids").await.unwrap();
    let mut drawn = std::collections::HashSet::new();
    for i in 0..8 {
        let v: i64 = if i % 2 == 0 {
            c.query_one("SELECT nextval('ids')", &[])
                .await
                .unwrap()
                .get(0)
        } else {
            let got = rows(&c.simple_query("SELECT nextval('ids')").await.unwrap());
            got[0][0].as_deref().unwrap().parse().unwrap()
        };
        assert!(drawn.insert(v), "{v} drawn twice");
    }
    for k in [a, a, b, b] {
        c.batch_execute("BEGIN").await.unwrap();
        let v: i64 = c
            .query_one("SELECT nextval('ids')", &[])
            .await
            .unwrap()
            .get(0);
        assert!(drawn.insert(v), "{v} drawn twice");
        c.execute(
            "UPDATE users SET email = $2 WHERE id = $1",
            &[&k, &v.to_string()],
        )
        .await
        .unwrap();
        c.batch_execute("COMMIT").await.unwrap();
    }
    // A read-only transaction refuses nextval, as PostgreSQL's does.
    c.batch_execute("BEGIN READ ONLY").await.unwrap();
    let e = c.query_one("SELECT nextval('ids')", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("25006"), "{e}");
    c.batch_execute("ROLLBACK").await.unwrap();
    let untouched: bool = s
        .direct(shared(), 1)
        .await
        .query_one("SELECT NOT is_called FROM ids", &[])
        .await
        .unwrap()
        .get(0);
    assert!(untouched, "the second shard's sequence was drawn from");
    // A lock one client holds keeps each other client out, whichever shard is next in turn.
    let holder = s.proxy.client().await;
    holder.batch_execute("BEGIN").await.unwrap();
    holder
        .execute("SELECT pg_advisory_xact_lock(77)", &[])
        .await
        .unwrap();
    for _ in 0..4 {
        let other = s.proxy.client().await;
        let got: bool = other
            .query_one("SELECT pg_try_advisory_xact_lock(77)", &[])
            .await
            .unwrap()
            .get(0);
        assert!(!got, "a second client took the lock");
    }
    holder.batch_execute("COMMIT").await.unwrap();
    let got: bool = c
        .query_one("SELECT pg_try_advisory_xact_lock(77)", &[])
        .await
        .unwrap()
        .get(0);
    assert!(got, "the lock is free once its transaction ended");
}

/// COMMIT AND CHAIN of a BEGIN shardgate still holds starts the next transaction with the same
/// characteristics, as on one server: the BEGIN goes to a server with it. Before, shardgate answered
/// the COMMIT itself and forgot the BEGIN, and the client's next statements ran outside any
/// transaction. Likewise a held transaction that failed keeps the savepoints made before.
#[tokio::test]
async fn commit_and_chain_of_a_held_begin_chains() {
    let (_s, _, _, c) = with_a_user_on_each_shard().await;
    let isolation = "SELECT current_setting('transaction_isolation')";
    for end in ["COMMIT AND CHAIN", "ROLLBACK AND CHAIN"] {
        c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            .await
            .unwrap();
        c.batch_execute(end).await.unwrap();
        for _ in 0..2 {
            let got = rows(&c.simple_query(isolation).await.unwrap());
            assert_eq!(got[0][0].as_deref(), Some("repeatable read"), "{end}");
        }
        c.batch_execute("COMMIT").await.unwrap();
        let got = rows(&c.simple_query(isolation).await.unwrap());
        assert_eq!(got[0][0].as_deref(), Some("read committed"), "{end}");
    }
    // A held transaction failed by a refusal keeps what came before it: ROLLBACK TO a savepoint
    // made before the error ends the failure, as on one server.
    let refused = "SELECT id FROM users FOR UPDATE";
    c.batch_execute("BEGIN").await.unwrap();
    c.batch_execute("SAVEPOINT before").await.unwrap();
    c.batch_execute(refused).await.unwrap_err();
    c.batch_execute("ROLLBACK TO SAVEPOINT before")
        .await
        .unwrap();
    c.batch_execute("SELECT 1").await.unwrap();
    c.batch_execute("COMMIT").await.unwrap();
}

/// A held BEGIN or setting the server refuses leaves the transaction failed, never not begun: the
/// statement that took it to its shard gets the server's own error (not 25P02), and nothing runs
/// outside the transaction. Before, a BEGIN the server refused went with its settings in one Query
/// that failed whole, and the client's statements ran and committed on their own.
#[tokio::test]
async fn a_held_begin_the_server_refuses_fails_the_transaction() {
    let (_s, a, b, c) = with_a_user_on_each_shard().await;
    let update = "UPDATE users SET email = 'y' WHERE id = $1";
    let cases: [(&[&str], &str); 4] = [
        (&["BEGIN ISOLATION LEVEL bogus"], "42601"),
        (&["/* app */ begin work read only"], "25006"),
        (
            &["START TRANSACTION", "SET LOCAL statement_timeout = 'soon'"],
            "22023",
        ),
        (
            &[
                "BEGIN",
                "SET TRANSACTION READ WRITE",
                "SET LOCAL lock_timeout = -5",
            ],
            "22023",
        ),
    ];
    for (i, (opening, code)) in cases.into_iter().enumerate() {
        let k = if i % 2 == 0 { a } else { b };
        for s in opening {
            c.batch_execute(s).await.unwrap();
        }
        let e = c.execute(update, &[&k]).await.unwrap_err();
        assert_eq!(sqlstate(&e), Some(code), "{opening:?}: {e}");
        let e = c.execute(update, &[&k]).await.unwrap_err();
        assert_eq!(
            sqlstate(&e),
            Some("25P02"),
            "{opening:?}, still failed: {e}"
        );
        c.batch_execute("ROLLBACK").await.unwrap();
        let email = email_of(&c, k).await;
        assert_eq!(
            email, "x",
            "{opening:?}: nothing ran outside the transaction"
        );
    }
}

/// A read on several shards as a transaction's first statements (psycopg and ORMs open a transaction
/// before any statement) runs beside the held BEGIN, under READ COMMITTED, where each statement sees
/// a snapshot of its own anyway. Refused where it would change what the transaction sees or holds:
/// REPEATABLE READ or SERIALIZABLE (asked by BEGIN, SET TRANSACTION or the session), row locks,
/// or once a statement has opened the transaction on a shard.
#[tokio::test]
async fn a_read_on_several_shards_runs_beside_a_held_begin() {
    let (_s, a, _, c) = with_a_user_on_each_shard().await;
    let count = "SELECT count(*) FROM users";
    c.batch_execute("BEGIN").await.unwrap();
    let rows = rows(&c.simple_query(count).await.unwrap());
    assert_eq!(rows, vec![vec![Some("2".to_owned())]]);
    let n: i64 = c.query_one(count, &[]).await.unwrap().get(0);
    assert_eq!(n, 2, "over the extended protocol");
    // The transaction goes on: a keyed write opens it on its shard, and ROLLBACK undoes it.
    c.execute("UPDATE users SET email = 'y' WHERE id = $1", &[&a])
        .await
        .unwrap();
    let e = c.query_one(count, &[]).await.unwrap_err();
    assert_eq!(
        sqlstate(&e),
        Some("0A000"),
        "after a statement on a shard: {e}"
    );
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(email_of(&c, a).await, "x", "rolled back");
    // Refused where the read would not be the transaction's.
    for (begin, read) in [
        ("BEGIN ISOLATION LEVEL REPEATABLE READ", count),
        ("BEGIN; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", count),
        ("BEGIN", "SELECT id FROM users FOR UPDATE"),
    ] {
        for part in begin.split("; ") {
            c.batch_execute(part).await.unwrap();
        }
        let e = c.batch_execute(read).await.unwrap_err();
        assert_eq!(sqlstate(&e), Some("0A000"), "{begin}; {read}: {e}");
        c.batch_execute("ROLLBACK").await.unwrap();
    }
    c.batch_execute("SET default_transaction_isolation = 'repeatable read'")
        .await
        .unwrap();
    c.batch_execute("BEGIN").await.unwrap();
    let e = c.batch_execute(count).await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("0A000"), "session isolation: {e}");
    c.batch_execute("ROLLBACK; RESET default_transaction_isolation")
        .await
        .unwrap();
    // A read that fails fails the transaction, as on one server.
    c.batch_execute("BEGIN").await.unwrap();
    let e = c
        .batch_execute("SELECT 1 / (id - id) FROM users")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("22012"), "{e}");
    let e = c.query_one("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("25P02"), "{e}");
    c.batch_execute("ROLLBACK").await.unwrap();
    c.query_one(count, &[]).await.unwrap();
}
