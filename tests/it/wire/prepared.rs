//! tokio-postgres prepared statements and explicit transactions through a small, busy pool.

use std::time::Duration;

use bytes::BytesMut;
use postgres_protocol::message::frontend;

use crate::harness::raw::bind_execute;
use crate::harness::{RawClient, Reply, TestProxy, first_error, one, shared, sqlstate};

/// A prepared statement's int8 result for one int8 parameter.
async fn int8(c: &tokio_postgres::Client, stmt: &tokio_postgres::Statement, v: i64) -> i64 {
    c.query_one(stmt, &[&v]).await.unwrap().get(0)
}

/// Runs short transactions with statements of its own until `rounds` are done.
async fn churn(c: tokio_postgres::Client, n: i64, rounds: i64) {
    let stmt = c.prepare("select $1::int8 * 3").await.unwrap();
    for i in 0..rounds {
        let v = n * 1000 + i;
        assert_eq!(
            c.query_one(&stmt, &[&v]).await.unwrap().get::<_, i64>(0),
            v * 3
        );
        // A fresh named statement each time: prepared, used and closed again.
        let row = c
            .query_one("select $1::text || '-churn'", &[&v.to_string()])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), format!("{v}-churn"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_reused_across_transactions_while_the_pool_churns() {
    let p = TestProxy::start(shared(), |c| c.pool.max_size = 3).await;
    let mut churners = Vec::new();
    for n in 0..8 {
        churners.push(tokio::spawn(churn(p.client().await, n, 150)));
    }
    let mut c = p.client().await;
    let stmt = c.prepare("select $1::int4 + 1000, $2::text").await.unwrap();
    for i in 0..300i32 {
        let tx = c.transaction().await.unwrap();
        let row = tx.query_one(&stmt, &[&i, &format!("t{i}")]).await.unwrap();
        assert_eq!(
            (row.get::<_, i32>(0), row.get::<_, String>(1)),
            (i + 1000, format!("t{i}"))
        );
        tx.commit().await.unwrap();
        // And outside any transaction, on whichever server is free.
        assert_eq!(
            c.query_one(&stmt, &[&i, &"x"])
                .await
                .unwrap()
                .get::<_, i32>(0),
            i + 1000
        );
    }
    for t in churners {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn commit_and_rollback() {
    let p = TestProxy::start(shared(), |c| c.pool.max_size = 2).await;
    let mut c = p.client().await;
    c.batch_execute("create table t (a int)").await.unwrap();
    let tx = c.transaction().await.unwrap();
    tx.execute("insert into t values (1)", &[]).await.unwrap();
    tx.commit().await.unwrap();
    let tx = c.transaction().await.unwrap();
    tx.execute("insert into t values (2)", &[]).await.unwrap();
    assert_eq!(
        tx.query_one("select count(*) from t", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        2
    );
    tx.rollback().await.unwrap();
    let other = p.client().await;
    let rows = other.query("select a from t", &[]).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>(),
        vec![1]
    );
}

#[tokio::test]
async fn error_inside_a_transaction_then_rollback() {
    let p = TestProxy::start(shared(), |c| c.pool.max_size = 1).await;
    let mut c = p.client().await;
    c.batch_execute("create table t (a int)").await.unwrap();
    let stmt = c.prepare("insert into t values ($1)").await.unwrap();
    let tx = c.transaction().await.unwrap();
    tx.execute(&stmt, &[&1i32]).await.unwrap();
    let e = tx
        .query_one("select 1 / $1::int", &[&0i32])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("22012"), "{e}");
    let e = tx.execute(&stmt, &[&2i32]).await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("25P02"), "{e}");
    tx.rollback().await.unwrap();
    // The only server is back, clean: the statement still works and nothing was kept.
    c.execute(&stmt, &[&3i32]).await.unwrap();
    let rows = p
        .client()
        .await
        .query("select a from t", &[])
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>(),
        vec![3]
    );
}

/// libpq's PQprepare (Parse, Sync) blocks its caller; pgbench -M prepared calls it while sibling
/// connections of the same thread hold every server. A statement some server already accepted needs no
/// server to be prepared again under another client's name: shardgate prepares it where it runs.
#[tokio::test]
async fn parse_of_a_known_statement_needs_no_server() {
    let p = TestProxy::start(shared(), |c| {
        c.pool.max_size = 1;
        c.pool.checkout_timeout_ms = 2000;
    })
    .await;
    let sql = "select $1::int + 1";
    let holder = p.client().await;
    holder.prepare(sql).await.unwrap();
    holder.batch_execute("begin").await.unwrap();
    // The only server is held; this client's Parse of the same text must still be answered.
    let mut c = RawClient::login(p.addr, "trustuser", &p.db).await;
    c.send(|b| {
        frontend::parse("mine", sql, [], b).unwrap();
        frontend::sync(b);
    })
    .await;
    let replies = c.until_ready().await;
    assert_eq!(first_error(&replies), None, "{replies:?}");
    assert_eq!(replies, vec![Reply::Other(b'1'), Reply::Ready(b'I')]);
    holder.batch_execute("commit").await.unwrap();
    c.execute_prepared("mine", &["41"]).await;
    let replies = c.until_ready().await;
    assert!(
        replies.contains(&Reply::Row(vec![Some("42".into())])),
        "{replies:?}"
    );
}

/// The ParseComplete shardgate gives for a statement already prepared waits for the server's replies
/// to the rest of the batch and goes out with them, as PostgreSQL buffers its output up to the Sync
/// (one wake-up of the client, not two); without a Sync or Flush behind it, it goes out at once.
#[tokio::test]
async fn an_answered_parse_goes_out_with_the_servers_replies() {
    let p = TestProxy::start(shared(), |c| c.pool.max_size = 1).await;
    let sql = "select pg_sleep($1::float8)::text";
    let mut c = RawClient::login(p.addr, "trustuser", &p.db).await;
    let run = |delay: &'static str| {
        move |b: &mut BytesMut| {
            frontend::parse("", sql, [], b).unwrap();
            bind_execute(b, "", &[delay]);
            frontend::sync(b);
        }
    };
    c.send(run("0")).await;
    assert_eq!(first_error(&c.until_ready().await), None);
    // Known now: shardgate answers the Parse itself, and the server sleeps half a second.
    c.send(run("0.5")).await;
    assert!(
        c.quiet_for(Duration::from_millis(250)).await,
        "the ParseComplete went out before the server's replies"
    );
    let replies = c.until_ready().await;
    assert_eq!(
        replies,
        vec![
            Reply::Other(b'1'),
            Reply::Other(b'2'),
            Reply::Row(vec![Some(String::new())]),
            Reply::Other(b'C'),
            Reply::Ready(b'I'),
        ]
    );
    // No Sync: the server owes no ReadyForQuery, so nothing is held back for one.
    c.send(|b| {
        frontend::parse("", sql, [], b).unwrap();
        frontend::flush(b);
    })
    .await;
    assert_eq!(c.recv().await, Some(Reply::Other(b'1')));
    c.send(|b| {
        bind_execute(b, "", &["0"]);
        frontend::flush(b);
    })
    .await;
    for want in [
        Reply::Other(b'2'),
        Reply::Row(vec![Some(String::new())]),
        Reply::Other(b'C'),
    ] {
        assert_eq!(c.recv().await, Some(want));
    }
    c.send(frontend::sync).await;
    assert_eq!(c.until_ready().await, vec![Reply::Ready(b'I')]);
}

#[tokio::test]
async fn a_server_keeps_at_most_max_prepared_statements() {
    let p = TestProxy::start(shared(), |c| {
        c.pool.max_size = 1;
        c.pool.max_prepared_statements = 4;
    })
    .await;
    let c = p.client().await;
    let stmts: Vec<_> = {
        let mut v = Vec::new();
        for i in 0..12i64 {
            v.push(c.prepare(&format!("select $1::int8 + {i}")).await.unwrap());
        }
        v
    };
    // Every statement still runs, in any order: those the server closed are prepared again.
    for round in 0..3i64 {
        for (i, s) in stmts.iter().enumerate().rev() {
            let got: i64 = c.query_one(s, &[&round]).await.unwrap().get(0);
            assert_eq!(got, round + i as i64);
        }
    }
    // In a pipeline too: a Bind whose statement was closed before it is prepared again first.
    let c = &c;
    let all = stmts.iter().enumerate().map(|(i, s)| async move {
        let got: i64 = c.query_one(s, &[&7i64]).await.unwrap().get(0);
        assert_eq!(got, 7 + i as i64);
    });
    futures_util::future::join_all(all).await;
    // The one server connection holds no more than 4 of them.
    let rows = c
        .simple_query("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE '__shardgate%'")
        .await
        .unwrap();
    let count = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    });
    assert_eq!(count.as_deref(), Some("4"));
}

#[tokio::test]
async fn a_close_skipped_after_an_error_leaves_the_statement_usable() {
    let p = TestProxy::start(shared(), |c| {
        c.pool.max_size = 1;
        c.pool.max_prepared_statements = 2;
    })
    .await;
    let c = p.client().await;
    let a = c.prepare("select $1::int8 + 1").await.unwrap();
    assert_eq!(int8(&c, &a, 1).await, 2);
    let divide = "select 10 / $1::int8";
    let b = c.prepare(divide).await.unwrap();
    assert_eq!(int8(&c, &b, 5).await, 2);
    // One batch: a division by zero, then a new statement, for which shardgate closes the least
    // recently used (a) first. The server skips that Close with the rest of the batch.
    let mut r = RawClient::login(p.addr, "trustuser", &p.db).await;
    r.send(|buf| {
        frontend::parse("b", divide, [], buf).unwrap();
        frontend::sync(buf);
    })
    .await;
    r.until_ready().await;
    r.send(|buf| {
        bind_execute(buf, "b", &["0"]);
        frontend::parse("c", "select 3", [], buf).unwrap();
        bind_execute(buf, "c", &[]);
        frontend::sync(buf);
    })
    .await;
    let replies = r.until_ready().await;
    assert_eq!(first_error(&replies), Some("22012"), "{replies:?}");
    // a is still prepared on the server, and shardgate knows it.
    assert_eq!(int8(&c, &a, 1).await, 2);
}

/// DISCARD ALL and DEALLOCATE from a client drop that client's statement names only: the statements
/// a shared server keeps prepared for every client stay (before, they were dropped on the server and
/// the next Bind of them failed). DISCARD ALL also resets the client's settings, and is refused inside
/// a transaction, as PostgreSQL refuses it.
#[tokio::test]
async fn discard_all_and_deallocate_drop_only_the_clients_names() {
    let p = TestProxy::start(shared(), |c| c.pool.max_size = 1).await;
    let other = p.client().await;
    let stmt = other.prepare("select $1::int8 * 2").await.unwrap();
    assert_eq!(int8(&other, &stmt, 21).await, 42);
    let mut c = RawClient::login(p.addr, "trustuser", &p.db).await;
    c.send(|b| {
        frontend::parse("mine", "select $1::int8 + 1", [], b).unwrap();
        frontend::sync(b);
    })
    .await;
    assert_eq!(first_error(&c.until_ready().await), None);
    let replies = c.simple("DEALLOCATE mine").await;
    assert_eq!(first_error(&replies), None, "{replies:?}");
    c.execute_prepared("mine", &["1"]).await;
    assert_eq!(first_error(&c.until_ready().await), Some("26000"));
    assert_eq!(
        first_error(&c.simple("DEALLOCATE mine").await),
        Some("26000")
    );
    for sql in ["SET work_mem = '8MB'", "DISCARD ALL", "DEALLOCATE ALL"] {
        let replies = c.simple(sql).await;
        assert_eq!(first_error(&replies), None, "{sql}: {replies:?}");
    }
    let replies = c.simple("show work_mem").await;
    assert!(
        replies.contains(&Reply::Row(vec![Some("4MB".into())])),
        "{replies:?}"
    );
    c.simple("BEGIN").await;
    c.simple("SELECT 1").await;
    assert_eq!(first_error(&c.simple("DISCARD ALL").await), Some("25001"));
    c.simple("ROLLBACK").await;
    // The other client's statement is still prepared on the one server (checked before the pinned
    // client below, whose DISCARD ALL does drop what that server holds).
    assert_eq!(int8(&other, &stmt, 5).await, 10);
    let rows = other
        .simple_query("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE '__shardgate%'")
        .await
        .unwrap();
    assert!(
        rows.iter().any(
            |m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) != Some("0"))
        )
    );
    // A pinned client's DISCARD ALL runs on its server; what it prepares afterwards is prepared anew.
    let pinned = p.client().await;
    pinned.batch_execute("LISTEN somewhere").await.unwrap();
    let before = pinned.prepare("select $1::int8 - 1").await.unwrap();
    assert_eq!(int8(&pinned, &before, 1).await, 0);
    pinned
        .batch_execute("SET work_mem = '8MB'; DISCARD ALL")
        .await
        .unwrap_err();
    pinned.batch_execute("SET work_mem = '8MB'").await.unwrap();
    pinned.batch_execute("DISCARD ALL").await.unwrap();
    let work_mem: String = pinned.query_one("show work_mem", &[]).await.unwrap().get(0);
    assert_eq!(work_mem, "4MB");
    let after = pinned.prepare("select $1::int8 - 1").await.unwrap();
    assert_eq!(int8(&pinned, &after, 3).await, 2);
    drop(pinned);
}

/// A statement a server prepared for one client serves the next, but DDL since may have changed the
/// columns it returns, and PostgreSQL then refuses it for ever ("cached plan must not change result
/// type"). After DDL sent through shardgate every server prepares its statements again before their
/// next use; after DDL made past it, the first refusal does the same, so at most one run fails.
#[tokio::test]
async fn statements_follow_ddl_that_changes_their_columns() {
    let p = TestProxy::start(shared(), |_| {}).await;
    let clients = [p.client().await, p.client().await, p.client().await];
    for setup in ["create table t (a int)", "insert into t values (1)"] {
        clients[0].batch_execute(setup).await.unwrap();
    }
    let sql = "select * from t";
    // At once, so that several servers prepare the statement.
    let widths = || async {
        let runs = clients
            .iter()
            .map(|c| async move { c.query(sql, &[]).await.map(|rows| rows[0].len()) });
        futures_util::future::join_all(runs).await
    };
    for w in widths().await {
        assert_eq!(w.unwrap(), 1);
    }
    clients[0]
        .batch_execute("alter table t add column b int")
        .await
        .unwrap();
    for _ in 0..3 {
        for w in widths().await {
            assert_eq!(w.map_err(|e| e.to_string()), Ok(2));
        }
    }
    // Past shardgate: one client's run may be refused once, then every server prepares it again.
    let direct = crate::harness::client(shared(), &p.db).await;
    direct
        .batch_execute("alter table t add column c int")
        .await
        .unwrap();
    let mut refused = 0;
    for _ in 0..6 {
        match clients[0].query(sql, &[]).await {
            Ok(rows) => assert_eq!(rows[0].len(), 3),
            Err(e) => {
                assert_eq!(sqlstate(&e), Some("0A000"), "{e}");
                refused += 1;
            }
        }
    }
    assert!(refused <= 1, "refused {refused} times");
    for w in widths().await {
        assert_eq!(w.map_err(|e| e.to_string()), Ok(3));
    }
}

/// DDL inside a transaction: the transaction's own server sees it at once, so a statement it kept
/// from before is prepared again there before the transaction uses it.
#[tokio::test]
async fn a_statement_after_ddl_in_the_same_transaction_sees_the_new_columns() {
    let p = TestProxy::start(shared(), |c| c.pool.max_size = 1).await;
    let mut c = p.client().await;
    c.batch_execute("create table t (a int)").await.unwrap();
    c.batch_execute("insert into t values (1)").await.unwrap();
    let sql = "select * from t";
    assert_eq!(c.query(sql, &[]).await.unwrap()[0].len(), 1);
    let tx = c.transaction().await.unwrap();
    tx.batch_execute("alter table t add column b int")
        .await
        .unwrap();
    assert_eq!(tx.query(sql, &[]).await.unwrap()[0].len(), 2);
    tx.rollback().await.unwrap();
    assert_eq!(c.query(sql, &[]).await.unwrap()[0].len(), 1);
}

/// A string literal is read once, at the Parse, under the parsing session's settings: a statement a
/// server keeps for one client must not serve a client whose TimeZone reads it otherwise.
#[tokio::test]
async fn a_literal_is_read_under_each_clients_own_settings() {
    let p = TestProxy::start(shared(), |c| c.pool.max_size = 1).await;
    let (utc, ny) = (p.client().await, p.client().await);
    utc.batch_execute("set timezone = 'UTC'").await.unwrap();
    ny.batch_execute("set timezone = 'America/New_York'")
        .await
        .unwrap();
    let sql = "select extract(epoch from '2024-01-01 00:00'::timestamptz)::int8";
    for _ in 0..2 {
        assert_eq!(one::<i64>(&utc, sql).await, 1_704_067_200);
        assert_eq!(one::<i64>(&ny, sql).await, 1_704_067_200 + 5 * 3600);
    }
}

/// A statement pipelined right behind the DDL that changes its columns (before the DDL's reply came
/// back) is prepared again too.
#[tokio::test]
async fn a_statement_pipelined_behind_ddl_sees_the_new_columns() {
    let p = TestProxy::start(shared(), |c| c.pool.max_size = 1).await;
    let c = p.client().await;
    c.batch_execute("create table t (a int)").await.unwrap();
    c.batch_execute("insert into t values (1)").await.unwrap();
    let sql = "select * from t";
    assert_eq!(c.query(sql, &[]).await.unwrap()[0].len(), 1);
    let (ddl, rows) = tokio::join!(
        c.batch_execute("alter table t add column b int"),
        c.query(sql, &[])
    );
    ddl.unwrap();
    assert_eq!(rows.map(|r| r[0].len()).map_err(|e| e.to_string()), Ok(2));
}

/// A client that changes its TimeZone after preparing a statement gets a copy of its own from then on:
/// a server preparing the shared one under the new setting would serve other clients its reading.
#[tokio::test]
async fn a_statement_prepared_before_a_settings_change_is_not_shared_after_it() {
    let p = TestProxy::start(shared(), |c| c.pool.max_size = 1).await;
    let (a, b) = (p.client().await, p.client().await);
    a.batch_execute("set timezone = 'UTC'").await.unwrap();
    b.batch_execute("set timezone = 'UTC'").await.unwrap();
    let sql = "select extract(epoch from '2024-01-01 00:00'::timestamptz)::int8";
    let stmt = a.prepare(sql).await.unwrap();
    a.batch_execute("set timezone = 'Asia/Tokyo'")
        .await
        .unwrap();
    // DDL has the server prepare its statements again: what A runs next is prepared under Tokyo.
    a.batch_execute("alter table if exists nothing_here add column x int")
        .await
        .unwrap();
    assert_eq!(
        a.query_one(&stmt, &[]).await.unwrap().get::<_, i64>(0),
        1_704_067_200 - 9 * 3600,
        "A reads it under Tokyo"
    );
    assert_eq!(
        one::<i64>(&b, sql).await,
        1_704_067_200,
        "B reads it under UTC"
    );
}
