//! Pipelined extended-protocol batches: the statements up to a Sync are one transaction on
//! PostgreSQL, so a batch whose statements route to two shards is refused whole (nothing of it stays
//! behind on a pooled server), while batches on one shard, and prepares that move on, keep working.

use bytes::BytesMut;
use postgres_protocol::message::frontend;
use shardgate::sharding::{KeyValue, Placement, ShardId, ShardMap, TableKind};

use crate::harness::raw::{RawClient, Reply, bind_execute, first_error};
use crate::harness::sharded::Sharded;
use crate::harness::shared;

/// The first user ids (from `from`) that shard 0 and shard 1 own.
fn keys_on_each_shard(map: &ShardMap, from: i64) -> (i64, i64) {
    let Some(TableKind::Sharded(t)) = map.table("users").map(|t| &t.kind) else {
        panic!("users is sharded");
    };
    let on = |shard: usize| {
        (from..from + 1000)
            .find(|&k| map.place(t, &KeyValue::Int(k)) == Placement::Shard(ShardId(shard)))
            .expect("a key on each shard")
    };
    (on(0), on(1))
}

/// Parse (unnamed, when `sql` is given), Bind with text parameters, Execute.
fn statement(b: &mut BytesMut, sql: Option<&str>, params: &[&str]) {
    if let Some(sql) = sql {
        frontend::parse("", sql, [], b).expect("Parse");
    }
    bind_execute(b, "", params);
}

const INSERT: &str = "INSERT INTO users (id, email) VALUES ($1::int8, 'x')";

async fn user_ids(s: &Sharded, shard: usize) -> Vec<i64> {
    let c = s.direct(shared(), shard).await;
    let rows = c.query("SELECT id FROM users ORDER BY id", &[]).await;
    rows.unwrap().iter().map(|r| r.get(0)).collect()
}

/// Runs a few statements on every shard through shardgate, each with its own Sync: a server left in
/// a batch's open transaction would commit it with them.
async fn traffic_on_every_shard(s: &Sharded) {
    let c = s.proxy.client().await;
    for shard in ["s0", "s1", "s0", "s1"] {
        c.batch_execute(&format!("/* shardgate: shard={shard} */ SELECT 1"))
            .await
            .unwrap();
        let one: i64 = c
            .query_one(
                &format!("/* shardgate: shard={shard} */ SELECT 1::int8"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(one, 1);
    }
}

/// Sends a batch that must be refused with 0A000 and returns its replies, once the session went on
/// and other clients used every shard's servers: a server left inside the batch's transaction would
/// have committed it with theirs, so no user row may be on any shard.
async fn refused_whole(
    s: &Sharded,
    c: &mut RawClient,
    batch: impl FnOnce(&mut BytesMut),
) -> Vec<Reply> {
    c.send(batch).await;
    let replies = c.until_ready().await;
    assert_eq!(first_error(&replies), Some("0A000"), "{replies:?}");
    assert_eq!(replies.last(), Some(&Reply::Ready(b'I')), "{replies:?}");
    assert_eq!(c.simple("SELECT 1").await.last(), Some(&Reply::Ready(b'I')));
    traffic_on_every_shard(s).await;
    assert_eq!(user_ids(s, 0).await, Vec::<i64>::new());
    assert_eq!(user_ids(s, 1).await, Vec::<i64>::new());
    replies
}

#[tokio::test]
async fn a_batch_on_two_shards_is_refused_and_nothing_of_it_stays() {
    let s = Sharded::start(shared(), "").await;
    let (a, b) = keys_on_each_shard(&s.map(), 1);
    let mut c = RawClient::login(s.proxy.addr, "trustuser", &s.proxy.db).await;
    let (a, b) = (a.to_string(), b.to_string());
    refused_whole(&s, &mut c, |buf| {
        statement(buf, Some(INSERT), &[&a]);
        statement(buf, None, &[&b]);
        frontend::sync(buf);
    })
    .await;
}

/// Two shards where user `a` (on shard 0) exists, so that inserting it again fails, and `b` is a
/// key on shard 1; with a client logged in.
async fn with_a_taken() -> (Sharded, i64, i64, RawClient) {
    let s = Sharded::start(shared(), "").await;
    let (a, b) = keys_on_each_shard(&s.map(), 1);
    let c0 = s.proxy.client().await;
    c0.execute("INSERT INTO users (id, email) VALUES ($1, 'first')", &[&a])
        .await
        .unwrap();
    let c = RawClient::login(s.proxy.addr, "trustuser", &s.proxy.db).await;
    (s, a, b, c)
}

#[tokio::test]
async fn an_error_in_a_batch_skips_a_statement_on_another_shard() {
    let (s, a, b, mut c) = with_a_taken().await;
    let (a_text, b_text) = (a.to_string(), b.to_string());
    c.send(|buf| {
        statement(buf, Some(INSERT), &[&a_text]); // a duplicate key: fails on shard 0
        statement(buf, None, &[&b_text]);
        frontend::sync(buf);
    })
    .await;
    let replies = c.until_ready().await;
    let errors: Vec<_> = replies
        .iter()
        .filter(|r| matches!(r, Reply::Error { .. }))
        .collect();
    assert_eq!(errors.len(), 1, "{replies:?}");
    assert_eq!(first_error(&replies), Some("23505"), "{replies:?}");
    traffic_on_every_shard(&s).await;
    assert_eq!(user_ids(&s, 0).await, vec![a]);
    assert_eq!(user_ids(&s, 1).await, Vec::<i64>::new());
}

#[tokio::test]
async fn a_statement_after_one_on_several_shards_is_refused_before_either_runs() {
    let s = Sharded::start(shared(), "").await;
    let (a, b) = keys_on_each_shard(&s.map(), 1);
    let mut c = RawClient::login(s.proxy.addr, "trustuser", &s.proxy.db).await;
    // A read merged from every shard, then a statement for one shard.
    let replies = refused_whole(&s, &mut c, |buf| {
        statement(buf, Some("SELECT count(*) FROM users"), &[]);
        statement(buf, Some("SELECT 1"), &[]);
        frontend::sync(buf);
    })
    .await;
    // Parse and Bind were answered, then the error at the statement after it; no rows.
    assert_eq!(
        replies[..2],
        [Reply::Other(b'1'), Reply::Other(b'2')],
        "{replies:?}"
    );
    let errors = replies.iter().filter(|r| matches!(r, Reply::Error { .. }));
    assert_eq!(errors.count(), 1, "{replies:?}");
    assert!(
        replies.iter().all(|r| matches!(
            r,
            Reply::Other(b'1' | b'2') | Reply::Error { .. } | Reply::Ready(b'I')
        )),
        "{replies:?}"
    );
    // A split INSERT, then another statement: neither part of the INSERT runs.
    let split = format!("INSERT INTO users (id, email) VALUES ({a}, 'a'), ({b}, 'b')");
    refused_whole(&s, &mut c, |buf| {
        statement(buf, Some(&split), &[]);
        statement(buf, Some(INSERT), &["7"]);
        frontend::sync(buf);
    })
    .await;
}

#[tokio::test]
async fn a_batch_on_one_shard_runs_whole() {
    let s = Sharded::start(shared(), "").await;
    let (a, _) = keys_on_each_shard(&s.map(), 1);
    let (a2, _) = keys_on_each_shard(&s.map(), a + 1);
    let mut c = RawClient::login(s.proxy.addr, "trustuser", &s.proxy.db).await;
    let (a_text, a2_text) = (a.to_string(), a2.to_string());
    c.send(|buf| {
        statement(buf, Some(INSERT), &[&a_text]);
        statement(buf, None, &[&a2_text]);
        frontend::sync(buf);
    })
    .await;
    let replies = c.until_ready().await;
    assert_eq!(first_error(&replies), None, "{replies:?}");
    assert_eq!(user_ids(&s, 0).await, vec![a, a2]);
}

#[tokio::test]
async fn a_prepare_flushed_on_one_shard_binds_on_another() {
    let s = Sharded::start(shared(), "").await;
    let (a, b) = keys_on_each_shard(&s.map(), 1);
    let (a2, _) = keys_on_each_shard(&s.map(), a + 1);
    let mut c = RawClient::login(s.proxy.addr, "trustuser", &s.proxy.db).await;
    // The prepares go to the shards in turn (X, Y, X): with keys on shards 0, 0, 1 at least one
    // round binds on a shard other than the one that answered its prepare.
    for key in [a, a2, b] {
        c.send(|buf| {
            frontend::parse("", INSERT, [], buf).expect("Parse");
            frontend::describe(b'S', "", buf).expect("Describe");
            frontend::flush(buf);
        })
        .await;
        let mut prepared = Vec::new();
        while prepared.last() != Some(&Reply::Other(b'n')) {
            prepared.push(c.recv().await.expect("the prepare's replies"));
        }
        assert_eq!(
            prepared,
            [Reply::Other(b'1'), Reply::Other(b't'), Reply::Other(b'n')]
        );
        let key = key.to_string();
        c.send(|buf| {
            statement(buf, None, &[&key]);
            frontend::sync(buf);
        })
        .await;
        let replies = c.until_ready().await;
        assert_eq!(first_error(&replies), None, "{replies:?}");
    }
    assert_eq!(user_ids(&s, 0).await, vec![a, a2]);
    assert_eq!(user_ids(&s, 1).await, vec![b]);
}

#[tokio::test]
async fn a_merged_read_answers_a_flush_before_its_sync() {
    let s = Sharded::start(shared(), "").await;
    let (a, b) = keys_on_each_shard(&s.map(), 1);
    let c0 = s.proxy.client().await;
    c0.batch_execute(&format!(
        "INSERT INTO users (id, email) VALUES ({a}, 'a'), ({b}, 'b')"
    ))
    .await
    .unwrap();
    let mut c = RawClient::login(s.proxy.addr, "trustuser", &s.proxy.db).await;
    for then_more in [false, true] {
        c.send(|buf| {
            statement(buf, Some("SELECT id FROM users ORDER BY id"), &[]);
            frontend::flush(buf);
        })
        .await;
        // The rows come before any Sync: a client may wait for them.
        let mut got = Vec::new();
        while !matches!(got.last(), Some(Reply::Other(b'C'))) {
            got.push(c.recv().await.expect("the read's replies"));
        }
        let rows: Vec<_> = got.iter().filter(|r| matches!(r, Reply::Row(_))).collect();
        assert_eq!(rows.len(), 2, "{got:?}");
        c.send(|buf| {
            if then_more {
                // Another statement before the Sync: refused, as it would have to join the read's batch.
                statement(buf, Some("SELECT 1"), &[]);
            }
            frontend::sync(buf);
        })
        .await;
        let end = c.until_ready().await;
        let want_error = then_more.then_some("0A000");
        assert_eq!(first_error(&end), want_error, "{end:?}");
        assert_eq!(end.last(), Some(&Reply::Ready(b'I')), "{end:?}");
    }
}

/// Reads replies up to and including the first ErrorResponse.
async fn until_error(c: &mut RawClient) -> Vec<Reply> {
    let mut got = Vec::new();
    while first_error(&got).is_none() {
        got.push(c.recv().await.expect("replies up to an error"));
    }
    got
}

#[tokio::test]
async fn after_a_servers_error_the_rest_up_to_the_sync_is_skipped() {
    let (s, a, b, mut c) = with_a_taken().await;
    let (a_text, b_text) = (a.to_string(), b.to_string());
    // The error arrives before the client sends the rest of its batch.
    c.send(|buf| {
        statement(buf, Some(INSERT), &[&a_text]);
        frontend::flush(buf);
    })
    .await;
    assert_eq!(first_error(&until_error(&mut c).await), Some("23505"));
    for key in [&a_text, &b_text] {
        c.send(|buf| {
            statement(
                buf,
                Some("INSERT INTO users (id, email) VALUES ($1::int8, 'later')"),
                &[key],
            );
            frontend::sync(buf);
        })
        .await;
        // Skipped as the server skips them: only the Sync is answered.
        assert_eq!(c.until_ready().await, [Reply::Ready(b'I')]);
        c.send(|buf| {
            statement(buf, Some(INSERT), &[&a_text]);
            frontend::flush(buf);
        })
        .await;
        assert_eq!(first_error(&until_error(&mut c).await), Some("23505"));
    }
    c.send(frontend::sync).await;
    assert_eq!(c.until_ready().await, [Reply::Ready(b'I')]);
    assert_eq!(c.simple("SELECT 1").await.last(), Some(&Reply::Ready(b'I')));
    traffic_on_every_shard(&s).await;
    assert_eq!(user_ids(&s, 0).await, vec![a]);
    assert_eq!(user_ids(&s, 1).await, Vec::<i64>::new());
}

#[tokio::test]
async fn a_client_that_prepared_and_waits_holds_no_open_transaction() {
    let s = Sharded::start(shared(), "").await;
    let mut c = RawClient::login(s.proxy.addr, "trustuser", &s.proxy.db).await;
    c.send(|buf| {
        frontend::parse("", INSERT, [], buf).expect("Parse");
        frontend::describe(b'S', "", buf).expect("Describe");
        frontend::flush(buf);
    })
    .await;
    for want in [b'1', b't', b'n'] {
        assert_eq!(c.recv().await, Some(Reply::Other(want)));
    }
    // The Parse began a transaction on the server; shardgate ends it, and the server goes back.
    let open = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND xact_start IS NOT NULL AND pid <> pg_backend_pid()";
    let mut left = 1;
    for _ in 0..50 {
        left = 0;
        for shard in 0..2 {
            let n: i64 = s
                .direct(shared(), shard)
                .await
                .query_one(open, &[])
                .await
                .unwrap()
                .get(0);
            left += n;
        }
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(left, 0, "a server stays in the prepare's transaction");
    // The client goes on where it left off.
    c.send(|buf| {
        statement(buf, None, &["5"]);
        frontend::sync(buf);
    })
    .await;
    let replies = c.until_ready().await;
    assert_eq!(first_error(&replies), None, "{replies:?}");
}

#[tokio::test]
async fn a_failed_prepare_fails_the_held_begin() {
    let s = Sharded::start(shared(), "").await;
    let mut c = RawClient::login(s.proxy.addr, "trustuser", &s.proxy.db).await;
    for end in ["COMMIT", "ROLLBACK"] {
        assert_eq!(c.simple("BEGIN").await.last(), Some(&Reply::Ready(b'T')));
        // The prepare goes to a server before any statement chose the transaction's shard.
        c.send(|buf| {
            let sql = "SELECT * FROM no_such_table WHERE id = $1";
            frontend::parse("", sql, [20], buf).expect("Parse");
            frontend::describe(b'S', "", buf).expect("Describe");
            frontend::flush(buf);
        })
        .await;
        assert_eq!(first_error(&until_error(&mut c).await), Some("42P01"));
        c.send(|buf| {
            statement(buf, None, &["1"]);
            frontend::sync(buf);
        })
        .await;
        // As in PostgreSQL: the transaction failed, and what follows is refused until it ends.
        assert_eq!(c.until_ready().await, [Reply::Ready(b'E')]);
        let insert = c
            .simple("INSERT INTO users (id, email) VALUES (3, 'x')")
            .await;
        assert_eq!(first_error(&insert), Some("25P02"), "{insert:?}");
        assert_eq!(insert.last(), Some(&Reply::Ready(b'E')));
        assert_eq!(c.simple(end).await.last(), Some(&Reply::Ready(b'I')));
    }
    assert_eq!(c.simple("SELECT 1").await.last(), Some(&Reply::Ready(b'I')));
    assert_eq!(user_ids(&s, 0).await, Vec::<i64>::new());
    assert_eq!(user_ids(&s, 1).await, Vec::<i64>::new());
}

#[tokio::test]
async fn a_pipelined_transaction_reports_its_status_through_shardgates_own_replies() {
    let s = Sharded::start(shared(), "").await;
    let mut c = RawClient::login(s.proxy.addr, "trustuser", &s.proxy.db).await;
    // BEGIN (held), a prepare a server answers, then shardgate's own SET: all in the transaction.
    c.send(|buf| {
        frontend::query("BEGIN", buf).unwrap();
        frontend::parse("", "SELECT 1", [], buf).expect("Parse");
        frontend::sync(buf);
        frontend::query("SET shardgate.shard = 's1'", buf).unwrap();
    })
    .await;
    for _ in 0..3 {
        let replies = c.until_ready().await;
        assert_eq!(first_error(&replies), None, "{replies:?}");
        assert_eq!(replies.last(), Some(&Reply::Ready(b'T')));
    }
    c.simple("ROLLBACK").await;
    // The same with a prepare that fails, then a statement shardgate refuses: the transaction failed
    // at the prepare, and the rest up to the Sync is skipped.
    c.send(|buf| {
        frontend::query("BEGIN", buf).unwrap();
        frontend::parse("", "SELECT * FROM no_such_table", [], buf).expect("Parse");
        frontend::flush(buf);
        frontend::parse("", "SET shardgate.shard = 's0'", [], buf).expect("Parse");
        statement(buf, None, &[]);
        frontend::sync(buf);
    })
    .await;
    assert_eq!(c.until_ready().await.last(), Some(&Reply::Ready(b'T')));
    let batch = c.until_ready().await;
    assert_eq!(first_error(&batch), Some("42P01"), "{batch:?}");
    assert_eq!(batch.last(), Some(&Reply::Ready(b'E')), "{batch:?}");
    let next = c.simple("SELECT 1").await;
    assert_eq!(first_error(&next), Some("25P02"), "{next:?}");
    assert_eq!(c.simple("ROLLBACK").await.last(), Some(&Reply::Ready(b'I')));
}

/// JDBC's first batch of a transaction: BEGIN, then the INSERT of user `key`, then Sync.
fn begin_and_insert(buf: &mut BytesMut, key: &str) {
    statement(buf, Some("BEGIN"), &[]);
    statement(buf, Some(INSERT), &[key]);
    frontend::sync(buf);
}

/// A named statement's Parse, Bind, Execute and Sync.
fn named_alone(buf: &mut BytesMut, name: &str, sql: &str) {
    frontend::parse(name, sql, [], buf).expect("Parse");
    bind_execute(buf, name, &[]);
    frontend::sync(buf);
}

/// JDBC's transactions: BEGIN over the extended protocol, in one batch with the transaction's first
/// statement, and COMMIT or ROLLBACK as a named statement of their own. The BEGIN is held like a
/// simple one until the statement picks the shard; before, it ran on whichever shard came next in
/// turn, and the statement on the other one was refused.
#[tokio::test]
async fn an_extended_begin_waits_for_the_statement_that_picks_the_shard() {
    let s = Sharded::start(shared(), "").await;
    let (a, b) = keys_on_each_shard(&s.map(), 1);
    let mut c = RawClient::login(s.proxy.addr, "trustuser", &s.proxy.db).await;
    // Each key twice in a row: the shards take turns (for statements any shard can answer, as BEGIN
    // was), so one of each pair would have landed on the other shard.
    for key in [a, a, b, b] {
        let key = key.to_string();
        c.send(|buf| begin_and_insert(buf, &key)).await;
        let replies = c.until_ready().await;
        assert_eq!(first_error(&replies), None, "{replies:?}");
        assert_eq!(replies.last(), Some(&Reply::Ready(b'T')), "{replies:?}");
        c.send(|buf| named_alone(buf, "S_1", "ROLLBACK")).await;
        let replies = c.until_ready().await;
        assert_eq!(first_error(&replies), None, "{replies:?}");
        assert_eq!(replies.last(), Some(&Reply::Ready(b'I')), "{replies:?}");
    }
    traffic_on_every_shard(&s).await;
    assert_eq!(user_ids(&s, 0).await, Vec::<i64>::new(), "rolled back");
    assert_eq!(user_ids(&s, 1).await, Vec::<i64>::new(), "rolled back");
    // Committed, each row is on its shard.
    for key in [a, b] {
        let key = key.to_string();
        c.send(|buf| begin_and_insert(buf, &key)).await;
        assert_eq!(first_error(&c.until_ready().await), None);
        c.send(|buf| named_alone(buf, "S_2", "COMMIT")).await;
        assert_eq!(c.until_ready().await.last(), Some(&Reply::Ready(b'I')));
    }
    assert_eq!(user_ids(&s, 0).await, vec![a]);
    assert_eq!(user_ids(&s, 1).await, vec![b]);
    // A transaction with no statement: BEGIN and COMMIT complete as on one server (that no server is
    // taken for them, shardgate answering both, is not seen from here).
    c.send(|buf| {
        statement(buf, Some("BEGIN"), &[]);
        frontend::sync(buf);
    })
    .await;
    assert_eq!(c.until_ready().await.last(), Some(&Reply::Ready(b'T')));
    c.send(|buf| named_alone(buf, "S_2", "COMMIT")).await;
    let replies = c.until_ready().await;
    assert_eq!(
        replies,
        vec![
            Reply::Other(b'1'),
            Reply::Other(b'2'),
            Reply::Other(b'C'),
            Reply::Ready(b'I')
        ]
    );
}
