//! Query cancellation through shardgate: a cancel reaches the server the cancelling client holds, and only
//! that one.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::NoTls;

use crate::harness::{TestProxy, active_backend, client, one, shared, sqlstate};

#[tokio::test]
async fn cancel_stops_the_running_query_and_the_client_goes_on() {
    let p = TestProxy::start(shared(), |_| {}).await;
    let direct = client(shared(), &p.db).await;
    let c = p.client().await;
    let sleeper = async { c.simple_query("select pg_sleep(30) /* cancel-me */").await };
    let canceller = async {
        active_backend(&direct, "select pg_sleep(30) /* cancel-me */").await;
        c.cancel_token()
            .cancel_query(NoTls)
            .await
            .expect("cancel request sent");
    };
    let (result, ()) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(sleeper, canceller)
    })
    .await
    .expect("the cancelled query ends long before pg_sleep would");
    let e = result.expect_err("the query was cancelled");
    assert_eq!(sqlstate(&e), Some("57014"), "{e}");
    assert_eq!(
        c.query_one("select 41 + 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        42
    );
}

/// With one server, B holds it in a transaction running pg_sleep. A's cancel, sent while A waits for the
/// server and again after A used and gave back the server now serving B, never reaches B's query.
#[tokio::test]
async fn a_cancel_never_reaches_another_clients_query() {
    let p = TestProxy::start(shared(), |c| {
        c.pool.max_size = 1;
        c.pool.checkout_timeout_ms = 20_000;
    })
    .await;
    let direct = client(shared(), &p.db).await;
    let (a, mut b) = (p.client().await, p.client().await);
    // A used the server and gave it back: its cancel key now has no server behind it.
    a.query_one("select 1", &[]).await.unwrap();
    let tx = b.transaction().await.unwrap();
    let b_sql = "select pg_sleep(2), 'b done' /* b-sleep */";
    let b_side = async {
        let r = tx
            .query_one(b_sql, &[])
            .await
            .map(|r| r.get::<_, String>(1));
        tx.commit().await.unwrap();
        r
    };
    let a_side = async {
        active_backend(&direct, b_sql).await;
        a.cancel_token().cancel_query(NoTls).await.unwrap();
        // Now A waits for the only server, and cancels while it waits.
        let waiting = async {
            a.query_one("select 'a done'", &[])
                .await
                .map(|r| r.get::<_, String>(0))
        };
        let cancel = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            a.cancel_token().cancel_query(NoTls).await.unwrap();
        };
        tokio::join!(waiting, cancel).0
    };
    let (b_result, a_result) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(b_side, a_side)
    })
    .await
    .expect("both clients finish");
    assert_eq!(
        b_result.as_deref().map_err(|e| e.to_string()),
        Ok("b done"),
        "B's query must not be cancelled"
    );
    match a_result {
        Ok(v) => assert_eq!(v, "a done"),
        Err(e) => assert_eq!(
            sqlstate(&e),
            Some("57014"),
            "A may only see its own cancel: {e}"
        ),
    }
    assert_eq!(
        a.query_one("select 2", &[]).await.unwrap().get::<_, i32>(0),
        2
    );
}

/// A cancel that could not be delivered in time may still land later, on whatever query its server runs
/// then: that server is closed, never given to the next client. The shard is reached through a
/// forwarder that holds every CancelRequest unanswered, so shardgate's delivery times out (5 s).
#[tokio::test]
async fn a_server_whose_cancel_timed_out_is_not_reused() {
    let db = shared().create_db("t");
    let forwarder = holding_cancels(shared().port).await;
    let p = TestProxy::start_on(forwarder, &db, |c| {
        c.pool.max_size = 1;
        c.pool.checkout_timeout_ms = 20_000;
    })
    .await;
    let direct = client(shared(), &db).await;
    let (a, b) = (p.client().await, p.client().await);
    let first: i32 = one(&a, "select pg_backend_pid()").await;
    let sql = "select pg_sleep(1), 'a done' /* held-cancel */";
    let sleeper = async { a.query_one(sql, &[]).await.map(|r| r.get::<_, String>(1)) };
    let canceller = async {
        active_backend(&direct, sql).await;
        a.cancel_token().cancel_query(NoTls).await.unwrap();
    };
    let (result, ()) = tokio::join!(sleeper, canceller);
    assert_eq!(result.map_err(|e| e.to_string()).as_deref(), Ok("a done"));
    // B waits for the only server until the cancel gave up, and gets a new one.
    let next = tokio::time::timeout(
        Duration::from_secs(15),
        one::<i32>(&b, "select pg_backend_pid()"),
    )
    .await
    .expect("B gets a server once the cancel timed out");
    assert_ne!(next, first, "the server with a cancel in doubt was reused");
}

/// A TCP forwarder to `port` that never answers a CancelRequest (it holds the connection open).
async fn holding_cancels(port: u16) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = [0u8; 8];
                if client.read_exact(&mut head).await.is_err() {
                    return;
                }
                // 55.7: a CancelRequest's code, after its length.
                if head[4..] == 80_877_102i32.to_be_bytes() {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                }
                let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await
                else {
                    return;
                };
                if server.write_all(&head).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    local
}
