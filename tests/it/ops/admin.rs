//! The admin console with psql and tokio-postgres: every SHOW answers, PAUSE holds new transactions until
//! RESUME, RELOAD of a bad map is refused with the reason, non-admins are turned away.

use std::time::Duration;

use crate::harness::{TestProxy, bin, connect_as, shared, text_rows};

fn admin_conn(p: &TestProxy) -> String {
    format!(
        "host=127.0.0.1 port={} user=admin password=admin dbname=shardgate",
        p.addr.port()
    )
}

#[tokio::test]
async fn every_show_answers() {
    let p = TestProxy::start(shared(), |_| {}).await;
    let app = p.client().await;
    app.simple_query("select 1").await.unwrap();
    let admin = connect_as(&admin_conn(&p)).await.unwrap();
    assert_eq!(text_rows(&admin, "SHOW SHARDS").await[0][0], "s0");
    assert_eq!(text_rows(&admin, "SHOW POOLS").await[0][0], "s0");
    let clients = text_rows(&admin, "SHOW CLIENTS").await;
    assert!(
        clients.iter().any(|r| r[1] == "app") && clients.iter().any(|r| r[1] == "admin"),
        "{clients:?}"
    );
    assert!(!text_rows(&admin, "SHOW SERVERS").await.is_empty());
    assert!(
        text_rows(&admin, "SHOW STATS").await[0][1]
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert!(
        text_rows(&admin, "SHOW CONFIG")
            .await
            .iter()
            .any(|r| r[0] == "pool_mode" && r[1] == "transaction")
    );
    assert_eq!(
        text_rows(&admin, "SHOW MAP").await[0][..2],
        ["1".to_owned(), "s0".to_owned()]
    );
    let err = admin.simple_query("SHOW NOTHING").await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "0A000");
}

// Multi-threaded: psql runs as a blocking child process while the proxy serves it on the runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_reads_the_console() {
    let p = TestProxy::start(shared(), |_| {}).await;
    let out = std::process::Command::new(bin().join("psql"))
        .args([
            "-X",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-p",
            &p.addr.port().to_string(),
            "-U",
            "admin",
            "shardgate",
            "-c",
            "SHOW POOLS",
        ])
        .env("PGPASSWORD", "admin")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("s0|"));
}

#[tokio::test]
async fn non_admin_is_refused() {
    let p = TestProxy::start(shared(), |_| {}).await;
    let err = connect_as(&format!(
        "host=127.0.0.1 port={} user=app password=secret dbname=shardgate",
        p.addr.port()
    ))
    .await
    .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "28000");
}

#[tokio::test]
async fn pause_holds_new_transactions_until_resume() {
    let p = TestProxy::start(shared(), |_| {}).await;
    let app = p.client().await;
    let admin = connect_as(&admin_conn(&p)).await.unwrap();
    admin.simple_query("PAUSE").await.unwrap();
    let held = tokio::spawn(async move {
        app.query_one("select 7", &[])
            .await
            .map(|r| r.get::<_, i32>(0))
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "a new transaction ran while paused");
    assert_eq!(text_rows(&admin, "SHOW POOLS").await[0][5], "true");
    admin.simple_query("RESUME").await.unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), held)
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
        7
    );
}

#[tokio::test]
async fn reload_of_a_bad_map_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("shardmap.yaml");
    let cluster = shared();
    let good = format!(
        "version: 1\nshards:\n  - {{name: s0, host: 127.0.0.1, port: {}, database: DB}}\n",
        cluster.port
    );
    let db = cluster.create_db("t");
    std::fs::write(&map, good.replace("DB", &db)).unwrap();
    let p = TestProxy::start_on(cluster.port, &db, |c| c.shardmap = map.clone()).await;
    let admin = connect_as(&admin_conn(&p)).await.unwrap();
    std::fs::write(
        &map,
        "version: 2\nshards:\n  - name: s0\n    host: 127.0.0.1\n    port: not-a-port\n",
    )
    .unwrap();
    let err = admin.simple_query("RELOAD").await.unwrap_err();
    let message = err.as_db_error().unwrap().message().to_owned();
    assert!(message.contains("shardmap.yaml:5"), "{message}");
    assert_eq!(text_rows(&admin, "SHOW MAP").await[0][0], "1");
    let app = p.client().await;
    app.simple_query("select 1").await.unwrap();
    std::fs::write(
        &map,
        good.replace("DB", &db).replace("version: 1", "version: 2"),
    )
    .unwrap();
    admin.simple_query("RELOAD").await.unwrap();
    assert_eq!(text_rows(&admin, "SHOW MAP").await[0][0], "2");
}
