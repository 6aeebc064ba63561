//! The prepared statement leak: many clients give the same statement name to different SQL over a small
//! pool; each must always run its own statement, never another client's under the same name.

use std::net::SocketAddr;

use postgres_protocol::message::frontend;

use crate::harness::{RawClient, Reply, TestProxy, first_error, shared};

const CLIENTS: usize = 32;
const EXECUTIONS: usize = 10_000;

/// Prepares `stmt` as `select <id>::int, $1::int`, then runs it `rounds` times, each in its own Sync (so
/// its own transaction, and possibly another server), checking every row.
async fn one_client(addr: SocketAddr, db: String, id: usize, rounds: usize) {
    let mut c = RawClient::login(addr, "trustuser", &db).await;
    let sql = format!("select {id}::int, $1::int");
    c.send(|b| {
        frontend::parse("stmt", &sql, [], b).unwrap();
        frontend::sync(b);
    })
    .await;
    let replies = c.until_ready().await;
    assert_eq!(
        first_error(&replies),
        None,
        "client {id} Parse: {replies:?}"
    );
    for round in 0..rounds {
        let param = round.to_string();
        c.execute_prepared("stmt", &[&param]).await;
        let replies = c.until_ready().await;
        let rows: Vec<_> = replies
            .iter()
            .filter(|r| matches!(r, Reply::Row(_)))
            .collect();
        let want = Reply::Row(vec![Some(id.to_string()), Some(param.clone())]);
        assert_eq!(rows, vec![&want], "client {id} round {round}: {replies:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_name_different_text_never_crosses_clients() {
    let p = TestProxy::start(shared(), |c| c.pool.max_size = 4).await;
    let rounds = EXECUTIONS / CLIENTS + 1;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|id| tokio::spawn(one_client(p.addr, p.db.clone(), id, rounds)))
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
}
