//! Session state under transaction pooling: a SET pins its client to its server (and stays there), or is
//! refused; SET LOCAL neither pins nor leaks; pool_mode session keeps one server per client.

use postgres_protocol::message::frontend;
use shardgate::config::{PoolMode, SessionStatePolicy};
use tokio_postgres::Client;

use crate::harness::raw::{RawClient, Reply, first_error};
use crate::harness::{TestProxy, client, connect_as, shared, sqlstate};

async fn show(c: &Client, name: &str) -> String {
    c.query_one(&format!("show {name}"), &[])
        .await
        .unwrap()
        .get(0)
}

async fn pid(c: &Client) -> i32 {
    c.query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

/// Two clients in a transaction at once, so each of a two-server pool answers: neither has `name` set.
async fn both_servers_clean(p: &TestProxy, name: &str, default: &str) {
    let (x, y) = (p.client().await, p.client().await);
    x.batch_execute("begin").await.unwrap();
    y.batch_execute("begin").await.unwrap();
    assert_ne!(pid(&x).await, pid(&y).await);
    assert_eq!(show(&x, name).await, default);
    assert_eq!(show(&y, name).await, default);
    x.batch_execute("commit").await.unwrap();
    y.batch_execute("commit").await.unwrap();
}

/// Other clients run many statements while `carried` runs as many; every answer is checked.
async fn carried_and_others(carried: &Client, others: &[Client]) {
    let check_carried = async {
        for _ in 0..40 {
            assert_eq!(show(carried, "statement_timeout").await, "1234ms");
            assert_eq!(show(carried, "search_path").await, "pinned, public");
            assert_eq!(show(carried, "application_name").await, "pinned_app");
        }
    };
    let check_others = others.iter().map(|c| async move {
        for _ in 0..40 {
            assert_eq!(show(c, "statement_timeout").await, "0");
            assert_eq!(show(c, "search_path").await, "\"$user\", public");
            assert_ne!(show(c, "application_name").await, "pinned_app");
        }
    });
    tokio::join!(check_carried, futures_util::future::join_all(check_others));
}

/// A client's startup parameters are its own, read as PostgreSQL reads a startup packet (a list
/// setting stays a list), and what one client's startup packet set on a server goes back to the
/// server's default before a client that did not ask for it gets that server.
#[tokio::test]
async fn startup_settings_are_the_clients_own() {
    let p = TestProxy::start(shared(), |c| c.pool.max_size = 1).await;
    let direct = client(shared(), &p.db).await;
    let (zone, work_mem) = (
        show(&direct, "TimeZone").await,
        show(&direct, "work_mem").await,
    );
    assert_ne!(zone, "Asia/Tokyo");
    let options = "options='-c TimeZone=Asia/Tokyo -c work_mem=77MB -c search_path=nowhere,public'";
    let with = connect_as(&format!("{} {options}", p.conn_str("app", "secret")))
        .await
        .unwrap();
    let without = p.client().await;
    // One server, taken in turn.
    for _ in 0..3 {
        assert_eq!(show(&with, "TimeZone").await, "Asia/Tokyo");
        assert_eq!(show(&with, "work_mem").await, "77MB");
        assert_eq!(show(&with, "search_path").await, "nowhere,public");
        assert_eq!(schemas_of(&with).await, ["public"]);
        assert_eq!(show(&without, "TimeZone").await, zone);
        assert_eq!(show(&without, "work_mem").await, work_mem);
        assert_eq!(show(&without, "search_path").await, "\"$user\", public");
    }
}

async fn schemas_of(c: &Client) -> Vec<String> {
    c.query_one("select current_schemas(false)", &[])
        .await
        .unwrap()
        .get(0)
}

const SETS: &str = "SET statement_timeout = 1234; SET search_path = pinned, public; SET application_name = 'pinned_app'";

/// A session's settings are the client's: they follow it to every server it uses, and no other client
/// sees them, although the server it set them on goes back to the pool at once.
#[tokio::test]
async fn settings_follow_their_client_and_never_leak() {
    let p = TestProxy::start(shared(), |c| c.pool.max_size = 2).await;
    let carried = p.client().await;
    let others = [p.client().await, p.client().await, p.client().await];
    carried.batch_execute(SETS).await.unwrap();
    let first = pid(&carried).await;
    // Another client holds the server the settings were made on, so the next statement runs on the
    // other one: the first holder takes either; if it took the other, a second one gets `first`.
    let holders = [p.client().await, p.client().await];
    holders[0].batch_execute("begin").await.unwrap();
    let holder = if pid(&holders[0]).await == first {
        &holders[0]
    } else {
        holders[1].batch_execute("begin").await.unwrap();
        assert_eq!(pid(&holders[1]).await, first);
        holders[0].batch_execute("commit").await.unwrap();
        &holders[1]
    };
    assert_ne!(
        pid(&carried).await,
        first,
        "the client moved to the other server"
    );
    assert_eq!(show(&carried, "statement_timeout").await, "1234ms");
    assert_eq!(show(&carried, "search_path").await, "pinned, public");
    assert_eq!(show(holder, "statement_timeout").await, "0");
    holder.batch_execute("commit").await.unwrap();
    carried_and_others(&carried, &others).await;
    // RESET ALL goes back to the startup parameters, on whichever server.
    carried.batch_execute("RESET ALL").await.unwrap();
    for _ in 0..4 {
        assert_eq!(show(&carried, "statement_timeout").await, "0");
    }
    drop(carried);
    both_servers_clean(&p, "statement_timeout", "0").await;
    both_servers_clean(&p, "search_path", "\"$user\", public").await;
}

/// State transaction pooling cannot carry (a temporary table, a role) pins its client to its server
/// for the rest of the session; the server is reset before anyone else gets it.
#[tokio::test]
async fn other_session_state_pins_and_never_leaks() {
    let p = TestProxy::start(shared(), |c| c.pool.max_size = 2).await;
    let role = format!("{}_reader", p.db);
    let direct = client(shared(), &p.db).await;
    direct
        .batch_execute(&format!("DROP ROLE IF EXISTS {role}; CREATE ROLE {role}"))
        .await
        .unwrap();
    for pin in [
        "CREATE TEMP TABLE mine (a int)".to_owned(),
        format!("SET ROLE {role}"),
        format!("SET statement_timeout = 1234; SET ROLE {role}"),
        format!("SELECT set_config('role', '{role}', false)"),
    ] {
        let pinned = p.client().await;
        let others = [p.client().await, p.client().await];
        pinned.batch_execute(&pin).await.unwrap();
        let at = pid(&pinned).await;
        let check_pinned = async {
            for _ in 0..20 {
                assert_eq!(
                    pid(&pinned).await,
                    at,
                    "{pin}: a pinned client keeps its server"
                );
            }
        };
        let check_others = others.iter().map(|c| async move {
            for _ in 0..20 {
                assert_eq!(show(c, "role").await, "none");
                assert_eq!(show(c, "statement_timeout").await, "0");
            }
        });
        tokio::join!(check_pinned, futures_util::future::join_all(check_others));
        drop(pinned);
        both_servers_clean(&p, "role", "none").await;
    }
    direct
        .batch_execute(&format!("DROP ROLE {role}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn refuse_policy() {
    let p = TestProxy::start(shared(), |c| c.session_state = SessionStatePolicy::Refuse).await;
    let c = p.client().await;
    let e = c
        .batch_execute("SET statement_timeout = 1234")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("0A000"), "{e}");
    let e = c
        .execute("SET search_path = elsewhere", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("0A000"), "{e}");
    assert_eq!(show(&c, "statement_timeout").await, "0");
    assert_eq!(show(&c, "search_path").await, "\"$user\", public");
    c.batch_execute("begin; set local statement_timeout = 999")
        .await
        .unwrap();
    assert_eq!(show(&c, "statement_timeout").await, "999ms");
    c.batch_execute("commit").await.unwrap();
    assert_eq!(show(&c, "statement_timeout").await, "0");
}

/// An error inside a transaction aborts it, in PostgreSQL; a refusal from shardgate must too, or the
/// client's COMMIT would keep work it believes lost.
#[tokio::test]
async fn refusal_inside_a_transaction_aborts_it() {
    let p = TestProxy::start(shared(), |c| c.session_state = SessionStatePolicy::Refuse).await;
    let mut c = p.client().await;
    c.batch_execute("create table t (a int)").await.unwrap();
    // Simple protocol, then extended: either way the refusal is raised on the transaction's server.
    for extended in [false, true] {
        let tx = c.transaction().await.unwrap();
        tx.execute("insert into t values (1)", &[]).await.unwrap();
        let set = "SET statement_timeout = 1234";
        let refused = if extended {
            tx.execute(set, &[]).await.map(|_| ())
        } else {
            tx.batch_execute(set).await
        };
        let e = refused.unwrap_err();
        assert_eq!(sqlstate(&e), Some("0A000"), "{e}");
        let after = tx.query("select 1", &[]).await;
        assert_eq!(
            after.as_ref().err().and_then(sqlstate),
            Some("25P02"),
            "the transaction is aborted (extended: {extended}): {after:?}"
        );
        let _ = tx.commit().await;
        let n: i64 = c
            .query_one("select count(*) from t", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            n, 0,
            "the insert before the refused SET must not be committed"
        );
    }
}

#[tokio::test]
async fn set_local_neither_pins_nor_leaks() {
    let p = TestProxy::start(shared(), |c| {
        c.pool.max_size = 1;
        c.pool.checkout_timeout_ms = 2000;
    })
    .await;
    let (a, b) = (p.client().await, p.client().await);
    for _ in 0..5 {
        a.batch_execute("begin; set local statement_timeout = 4321")
            .await
            .unwrap();
        assert_eq!(show(&a, "statement_timeout").await, "4321ms");
        a.batch_execute("commit").await.unwrap();
        // One server: B gets it only if A was not pinned.
        assert_eq!(show(&b, "statement_timeout").await, "0");
        assert_eq!(show(&a, "statement_timeout").await, "0");
    }
}

#[tokio::test]
async fn session_pool_mode() {
    let p = TestProxy::start(shared(), |c| {
        c.pool_mode = PoolMode::Session;
        c.pool.max_size = 2;
    })
    .await;
    let pinned = p.client().await;
    let others = [p.client().await];
    pinned.batch_execute(SETS).await.unwrap();
    carried_and_others(&pinned, &others).await;
    let mut tx_client = p.client().await;
    drop(others);
    let first = pid(&tx_client).await;
    for _ in 0..5 {
        let tx = tx_client.transaction().await.unwrap();
        tx.execute("select 1", &[]).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            pid(&tx_client).await,
            first,
            "one server for the whole session"
        );
    }
    drop((pinned, tx_client));
    both_servers_clean(&p, "statement_timeout", "0").await;
}

/// A refusal in the middle of an extended-protocol batch rolls back the batch's implicit transaction,
/// as an error there does in PostgreSQL: the INSERT before it is not kept.
#[tokio::test]
async fn a_refusal_inside_a_batch_rolls_it_back() {
    let p = TestProxy::start(shared(), |c| c.session_state = SessionStatePolicy::Refuse).await;
    let c = p.client().await;
    c.batch_execute("create table t (a int)").await.unwrap();
    let mut raw = RawClient::login(p.addr, "trustuser", &p.db).await;
    raw.send(|b| {
        for sql in ["insert into t values (1)", "LISTEN x"] {
            frontend::parse("", sql, [], b).unwrap();
            frontend::bind(
                "",
                "",
                [],
                [] as [Option<&[u8]>; 0],
                |_, _| Ok(postgres_protocol::IsNull::Yes),
                [],
                b,
            )
            .map_err(|_| "bind")
            .unwrap();
            frontend::execute("", 0, b).unwrap();
        }
        frontend::sync(b);
    })
    .await;
    let replies = raw.until_ready().await;
    assert_eq!(first_error(&replies), Some("0A000"), "{replies:?}");
    assert_eq!(replies.last(), Some(&Reply::Ready(b'I')), "{replies:?}");
    let n: i64 = c
        .query_one("select count(*) from t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "the insert of the failed batch is rolled back");
}

/// What a client's session left on a server goes, however it was left: a custom setting (named with
/// a reserved word), a setting whose name differs only in case from another client's, settings changed
/// in a query string that ended inside a transaction (the client leaves before they are read back).
#[tokio::test]
async fn settings_never_leak_however_they_were_made() {
    let p = TestProxy::start(shared(), |c| c.pool.max_size = 1).await;
    // A custom setting pins (PostgreSQL does not list those): the server is reset before the next.
    let a = p.client().await;
    a.batch_execute("select set_config('app.user', '42', false)")
        .await
        .unwrap();
    assert_eq!(custom(&a).await, "42");
    drop(a);
    let b = p.client().await;
    assert_eq!(custom(&b).await, "");
    drop(b);
    // One client names the time zone in lowercase, the other in PostgreSQL's own spelling.
    let lower = connect_as(&format!(
        "{} options='-c timezone=America/New_York'",
        p.conn_str("app", "secret")
    ))
    .await
    .unwrap();
    let canonical = connect_as(&format!(
        "{} options='-c TimeZone=Asia/Tokyo'",
        p.conn_str("app", "secret")
    ))
    .await
    .unwrap();
    for _ in 0..3 {
        assert_eq!(show(&lower, "TimeZone").await, "America/New_York");
        assert_eq!(show(&canonical, "TimeZone").await, "Asia/Tokyo");
    }
    drop((lower, canonical));
    let leaving = p.client().await;
    leaving
        // Committed before the open transaction: the ROLLBACK at the end does not undo it.
        .batch_execute("BEGIN; SET statement_timeout = 4242; COMMIT; BEGIN")
        .await
        .unwrap();
    drop(leaving);
    let next = p.client().await;
    assert_eq!(show(&next, "statement_timeout").await, "0");
}

/// DO and CALL run code on the server, whose changes shardgate cannot see (a custom setting is not
/// even listed in pg_settings): they pin, and the server is reset before anyone else gets it.
#[tokio::test]
async fn code_on_the_server_pins() {
    let p = TestProxy::start(shared(), |c| c.pool.max_size = 2).await;
    let pinned = p.client().await;
    let others = [p.client().await, p.client().await];
    pinned
        .batch_execute(
            "/* shardgate: shard=s0 */ DO $$BEGIN PERFORM set_config('app.user', 'code', false); END$$",
        )
        .await
        .unwrap();
    let at = pid(&pinned).await;
    let check_pinned = async {
        for _ in 0..20 {
            assert_eq!(pid(&pinned).await, at, "a pinned client keeps its server");
            assert_eq!(custom(&pinned).await, "code");
        }
    };
    let check_others = others.iter().map(|c| async move {
        for _ in 0..20 {
            assert_eq!(custom(c).await, "");
        }
    });
    tokio::join!(check_pinned, futures_util::future::join_all(check_others));
    drop(pinned);
    for c in &others {
        assert_eq!(custom(c).await, "");
    }
}

async fn custom(c: &Client) -> String {
    let row = c
        .query_one("select current_setting('app.user', true)", &[])
        .await
        .unwrap();
    row.get::<_, Option<String>>(0).unwrap_or_default()
}
