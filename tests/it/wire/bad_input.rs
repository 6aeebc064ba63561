//! Bad input from one client, or a server dying under it, ends that client's session only: every test
//! also checks that a client connected before, and one connecting after, keep working.

use std::time::Duration;

use postgres_protocol::message::frontend;
use tokio_postgres::Client;

use crate::harness::{
    RawClient, Reply, TestProxy, active_backend, client, first_error, shared, sqlstate,
};

/// `before` (connected ahead of the bad input) and a new client both still get answers.
async fn still_serves(p: &TestProxy, before: &Client) {
    assert_eq!(
        before
            .query_one("select 1", &[])
            .await
            .expect("earlier client")
            .get::<_, i32>(0),
        1
    );
    assert_eq!(
        p.client()
            .await
            .query_one("select 2", &[])
            .await
            .expect("new client")
            .get::<_, i32>(0),
        2
    );
}

#[tokio::test]
async fn message_over_the_cap() {
    let p = TestProxy::start(shared(), |c| c.max_message_bytes = 4096).await;
    let before = p.client().await;
    let mut c = RawClient::login(p.addr, "trustuser", &p.db).await;
    let sql = format!("select '{}'", "x".repeat(10 * 1024));
    c.send(|b| frontend::query(&sql, b).unwrap()).await;
    c.fatal_then_closed("08P01").await;
    still_serves(&p, &before).await;
}

#[tokio::test]
async fn garbage_instead_of_a_startup_packet() {
    let p = TestProxy::start(shared(), |_| {}).await;
    let before = p.client().await;
    let mut c = RawClient::open(p.addr).await;
    c.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let replies = c.until_closed().await;
    assert!(
        replies.iter().all(|r| matches!(r, Reply::Error { .. })),
        "{replies:?}"
    );
    still_serves(&p, &before).await;
}

/// A client that does not log in within auth_timeout_ms is closed (it holds a max_clients slot), and
/// before login a message is at most 64 KiB.
#[tokio::test]
async fn slow_or_oversized_logins_are_cut_off() {
    let p = TestProxy::start(shared(), |c| c.auth_timeout_ms = 300).await;
    let before = p.client().await;
    // Silent after connecting: closed without a word.
    let mut c = RawClient::open(p.addr).await;
    let t = std::time::Instant::now();
    assert_eq!(c.until_closed().await, vec![]);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // Silent after the startup packet of a password user: told why.
    let mut c = RawClient::open(p.addr).await;
    c.send(|b| {
        frontend::startup_message([("user", "app"), ("database", p.db.as_str())], b).unwrap()
    })
    .await;
    let replies = c.until_closed().await;
    assert!(
        matches!(replies.last(), Some(Reply::Error { code, .. }) if code == "57014"),
        "{replies:?}"
    );
    // A password message of 80 KiB (small enough for the socket buffers: it is all written).
    let mut c = RawClient::open(p.addr).await;
    c.send(|b| {
        frontend::startup_message([("user", "md5user"), ("database", p.db.as_str())], b).unwrap()
    })
    .await;
    let mut big = vec![b'p'];
    big.extend_from_slice(&(4 + (80i32 << 10)).to_be_bytes());
    big.resize(5 + (80 << 10), b'x');
    c.write(&big).await;
    let replies = c.until_closed().await;
    assert!(
        matches!(replies.last(), Some(Reply::Error { code, .. }) if code == "08P01"),
        "{replies:?}"
    );
    still_serves(&p, &before).await;
}

#[tokio::test]
async fn unknown_message_type_after_login() {
    let p = TestProxy::start(shared(), |_| {}).await;
    let before = p.client().await;
    // An unknown type; a Flush and a Sync with bytes where none belong (found by the fuzzer: a server
    // given such a Flush skips everything up to a Sync, and shardgate waited for it).
    for bad in [&b"y\0\0\0\x04"[..], b"H\0\0\0\x05x", b"S\0\0\0\x05x"] {
        let mut c = RawClient::login(p.addr, "trustuser", &p.db).await;
        c.write(bad).await;
        c.fatal_then_closed("08P01").await;
    }
    still_serves(&p, &before).await;
}

/// A client vanishes (no Terminate) inside a transaction holding a row lock and an uncommitted insert.
#[tokio::test]
async fn client_gone_inside_a_transaction() {
    let p = TestProxy::start(shared(), |c| c.pool.max_size = 1).await;
    let direct = client(shared(), &p.db).await;
    direct
        .batch_execute(
            "create table t (id int primary key, v int); insert into t values (1, 0); create table m (a int)",
        )
        .await
        .unwrap();
    let mut c = RawClient::login(p.addr, "trustuser", &p.db).await;
    let replies = c
        .simple("begin; insert into m values (1); select v from t where id = 1 for update")
        .await;
    assert_eq!(replies.last(), Some(&Reply::Ready(b'T')), "{replies:?}");
    drop(c);
    // The only server: the next client gets the one the vanished client used.
    let next = p.client().await;
    let updated = tokio::time::timeout(
        Duration::from_secs(10),
        next.execute("update t set v = 2 where id = 1", &[]),
    )
    .await
    .expect("the row lock was released")
    .unwrap();
    assert_eq!(updated, 1);
    // A simple query runs in a transaction of its own: started by this very statement.
    let rows = next
        .simple_query("select (select count(*) from m), now() = statement_timestamp()")
        .await
        .unwrap();
    let row = rows
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .expect("a row");
    assert_eq!(
        row.get(0),
        Some("0"),
        "the vanished client's insert was rolled back"
    );
    assert_eq!(
        row.get(1),
        Some("t"),
        "the server is outside any old transaction"
    );
    still_serves(&p, &next).await;
}

/// The server process serving a query is terminated; the pool replaces it.
#[tokio::test]
async fn server_dies_mid_query() {
    let p = TestProxy::start(shared(), |c| c.pool.max_size = 2).await;
    let direct = client(shared(), &p.db).await;
    let before = p.client().await;
    let victim = p.client().await;
    let sql = "select pg_sleep(30) /* victim */";
    let killer = async {
        let pid = active_backend(&direct, sql).await;
        direct
            .query_one("select pg_terminate_backend($1)", &[&pid])
            .await
            .unwrap();
    };
    let (result, ()) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(victim.simple_query(sql), killer)
    })
    .await
    .expect("the client hears of the server's death");
    let e = result.expect_err("the query's server died");
    println!("client saw: {e} (SQLSTATE {:?})", sqlstate(&e));
    let code = sqlstate(&e).unwrap_or("");
    assert!(
        code.starts_with("08") || code == "57P01" || e.is_closed(),
        "{e}"
    );
    still_serves(&p, &before).await;
    // Both servers serve again: two transactions at once.
    let (x, y) = (p.client().await, p.client().await);
    x.batch_execute("begin").await.unwrap();
    y.batch_execute("begin").await.unwrap();
    x.batch_execute("commit").await.unwrap();
    y.batch_execute("commit").await.unwrap();
}

/// An idle pooled server is terminated behind shardgate's back; the next client must not get it.
#[tokio::test]
async fn idle_server_dies_in_the_pool() {
    let p = TestProxy::start(shared(), |c| c.pool.max_size = 1).await;
    let direct = client(shared(), &p.db).await;
    let before = p.client().await;
    let pid: i32 = before
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    direct
        .query_one("select pg_terminate_backend($1, 5000)", &[&pid])
        .await
        .unwrap();
    let row = before
        .query_one("select pg_backend_pid()", &[])
        .await
        .expect("a fresh server serves the client");
    assert_ne!(row.get::<_, i32>(0), pid);
    still_serves(&p, &before).await;
}

/// A refused extended-protocol message is answered once; what follows up to Sync is skipped.
#[tokio::test]
async fn bad_statement_name_in_a_pipeline() {
    let p = TestProxy::start(shared(), |_| {}).await;
    let before = p.client().await;
    let mut c = RawClient::login(p.addr, "trustuser", &p.db).await;
    c.execute_prepared("never_prepared", &[]).await;
    let replies = c.until_ready().await;
    assert_eq!(first_error(&replies), Some("26000"), "{replies:?}");
    // The unnamed statement too: a pooled server's own (say, one shardgate used) is not the client's.
    c.execute_prepared("", &[]).await;
    let replies = c.until_ready().await;
    assert_eq!(first_error(&replies), Some("26000"), "{replies:?}");
    // Answered by shardgate (a server would say "unnamed prepared statement does not exist").
    assert!(
        replies
            .iter()
            .any(|r| matches!(r, Reply::Error { message, .. }
            if message == "prepared statement \"\" does not exist")),
        "{replies:?}"
    );
    assert_eq!(
        c.simple("select 5").await.first(),
        Some(&Reply::Other(b'T'))
    );
    still_serves(&p, &before).await;
}
