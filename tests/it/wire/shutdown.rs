//! Graceful shutdown and the client idle timeout: running transactions finish, idle clients are told why
//! they are disconnected, new clients are turned away.

use std::time::Duration;

use crate::harness::{RawClient, TestProxy, client, connect_as, shared};

/// Starts `running.shutdown()` in the background; the handle ends when the proxy has stopped.
fn begin_shutdown(p: &mut TestProxy) -> tokio::task::JoinHandle<()> {
    let running = p.running.take().expect("a running proxy");
    tokio::spawn(running.shutdown())
}

#[tokio::test]
async fn open_transaction_commits_while_idle_and_new_clients_are_turned_away() {
    let mut p = TestProxy::start(shared(), |c| c.shutdown_timeout_ms = 20_000).await;
    let direct = client(shared(), &p.db).await;
    direct
        .batch_execute("create table t (a int)")
        .await
        .unwrap();
    let mut busy = p.client().await;
    let tx = busy.transaction().await.unwrap();
    tx.execute("insert into t values (1)", &[]).await.unwrap();
    let mut idle = RawClient::login(p.addr, "trustuser", &p.db).await;
    let stopped = begin_shutdown(&mut p);
    idle.fatal_then_closed("57P01").await;
    assert!(
        connect_as(&p.conn_str("app", "secret")).await.is_err(),
        "a new client is refused during shutdown"
    );
    tx.execute("insert into t values (2)", &[])
        .await
        .expect("the open transaction goes on");
    tx.commit().await.expect("the open transaction commits");
    let n: i64 = direct
        .query_one("select count(*) from t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    tokio::time::timeout(Duration::from_secs(15), stopped)
        .await
        .expect("shutdown ends once the transaction did")
        .unwrap();
}

/// A client pinned by a SET holds its server between transactions; idle there, it is still idle.
#[tokio::test]
async fn shutdown_disconnects_an_idle_pinned_client() {
    let mut p = TestProxy::start(shared(), |c| c.shutdown_timeout_ms = 30_000).await;
    let mut pinned = RawClient::login(p.addr, "trustuser", &p.db).await;
    pinned.simple("SET statement_timeout = 1234").await;
    let stopped = begin_shutdown(&mut p);
    tokio::time::timeout(Duration::from_secs(15), pinned.fatal_then_closed("57P01"))
        .await
        .expect("the idle pinned client is disconnected well before shutdown_timeout_ms");
    tokio::time::timeout(Duration::from_secs(15), stopped)
        .await
        .expect("shutdown ends")
        .unwrap();
}

#[tokio::test]
async fn idle_clients_time_out_but_not_inside_a_transaction() {
    let p = TestProxy::start(shared(), |c| c.client_idle_timeout_ms = 300).await;
    let mut idle = RawClient::login(p.addr, "trustuser", &p.db).await;
    idle.simple("select 1").await;
    let c = p.client().await;
    c.batch_execute("begin").await.unwrap();
    idle.fatal_then_closed("57P05").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    c.batch_execute("select 1; commit")
        .await
        .expect("a client inside a transaction is not idle");
}

#[tokio::test]
async fn idle_timeout_applies_to_pinned_clients() {
    let p = TestProxy::start(shared(), |c| c.client_idle_timeout_ms = 300).await;
    let mut pinned = RawClient::login(p.addr, "trustuser", &p.db).await;
    pinned.simple("SET statement_timeout = 1234").await;
    tokio::time::timeout(Duration::from_secs(10), pinned.fatal_then_closed("57P05"))
        .await
        .expect("a pinned client idle outside a transaction times out too");
}
