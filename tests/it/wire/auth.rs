//! Logging in to shardgate (SCRAM, md5, trust; unknown user or database; the client limit; TLS) and
//! shardgate logging in to the server (SCRAM, md5).

use shardgate::config::{ServerAuth, TlsConfig};

use crate::harness::tools::{run, text};
use crate::harness::{TestProxy, connect_as, shared, sqlstate};

/// The SQLSTATE of a failed login as `user`/`password` to `db`.
async fn login_error(p: &TestProxy, user: &str, password: &str, db: &str) -> String {
    match connect_as(&conn_str(p, user, password, db)).await {
        Ok(_) => panic!("login as {user}/{password} to {db} succeeded"),
        Err(e) => sqlstate(&e)
            .unwrap_or_else(|| panic!("no SQLSTATE in {e}"))
            .to_owned(),
    }
}

fn conn_str(p: &TestProxy, user: &str, password: &str, db: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user={user} password='{password}' dbname={db}",
        p.addr.port()
    )
}

async fn query_as(p: &TestProxy, user: &str, password: &str) -> String {
    let c = connect_as(&conn_str(p, user, password, &p.db))
        .await
        .unwrap_or_else(|e| panic!("login as {user}: {e}"));
    c.query_one("select current_user::text", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn scram() {
    let p = TestProxy::start(shared(), |_| {}).await;
    assert_eq!(
        query_as(&p, "app", "secret").await,
        "postgres",
        "the server sees shardgate's own role"
    );
    assert_eq!(login_error(&p, "app", "wrong", &p.db).await, "28P01");
    assert_eq!(login_error(&p, "app", "", &p.db).await, "28P01");
}

#[tokio::test]
async fn md5() {
    let p = TestProxy::start(shared(), |_| {}).await;
    query_as(&p, "md5user", "md5secret").await;
    assert_eq!(login_error(&p, "md5user", "secret", &p.db).await, "28P01");
}

#[tokio::test]
async fn trust_takes_any_password() {
    let p = TestProxy::start(shared(), |_| {}).await;
    query_as(&p, "trustuser", "").await;
    query_as(&p, "trustuser", "anything").await;
}

#[tokio::test]
async fn unknown_user_and_unknown_database() {
    let p = TestProxy::start(shared(), |_| {}).await;
    assert_eq!(login_error(&p, "nobody", "secret", &p.db).await, "28000");
    assert_eq!(
        login_error(&p, "app", "secret", "no_such_db").await,
        "3D000"
    );
}

#[tokio::test]
async fn too_many_clients() {
    let p = TestProxy::start(shared(), |c| c.max_clients = 2).await;
    let (first, second) = (p.client().await, p.client().await);
    assert_eq!(login_error(&p, "app", "secret", &p.db).await, "53300");
    first.query_one("select 1", &[]).await.unwrap();
    drop(first);
    // The slot frees once the proxy has seen the first client go.
    let mut third = None;
    for _ in 0..100 {
        if let Ok(c) = connect_as(&p.conn_str("app", "secret")).await {
            third = Some(c);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    third
        .expect("a client may connect after another left")
        .query_one("select 1", &[])
        .await
        .unwrap();
    second.query_one("select 1", &[]).await.unwrap();
}

#[tokio::test]
async fn scram_towards_the_server() {
    let p = TestProxy::start(shared(), |c| {
        c.server_auth = ServerAuth {
            user: "sg_scram".into(),
            password: Some("scrampw".into()),
        }
    })
    .await;
    assert_eq!(query_as(&p, "app", "secret").await, "sg_scram");
}

#[tokio::test]
async fn md5_towards_the_server() {
    let p = TestProxy::start(shared(), |c| {
        c.server_auth = ServerAuth {
            user: "sg_md5".into(),
            password: Some("md5pw".into()),
        }
    })
    .await;
    assert_eq!(query_as(&p, "app", "secret").await, "sg_md5");
}

#[tokio::test]
async fn wrong_server_password_is_a_connection_error() {
    let p = TestProxy::start(shared(), |c| {
        c.server_auth = ServerAuth {
            user: "sg_scram".into(),
            password: Some("nope".into()),
        }
    })
    .await;
    let code = login_error(&p, "app", "secret", &p.db).await;
    assert!(code.starts_with("08"), "got {code}");
}

/// psql with `sslmode=require`: (ok, stdout, stderr).
async fn psql_require_ssl(p: &TestProxy) -> (bool, String, String) {
    let mut cmd = p.command("psql", "app", "secret");
    cmd.env("PGSSLMODE", "require")
        .args(["-X", "-A", "-t", "-c", "select 42", "-c", "\\conninfo"]);
    let out = run(cmd, "").await;
    let (stdout, stderr) = text(&out);
    (out.status.success(), stdout, stderr)
}

#[tokio::test]
async fn tls_with_psql() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-days",
            "1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    let tls = TestProxy::start(shared(), |c| c.tls = Some(TlsConfig { cert, key })).await;
    let (ok, stdout, stderr) = psql_require_ssl(&tls).await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("42\n") && stdout.contains("SSL connection"),
        "{stdout}"
    );
    let plain = TestProxy::start(shared(), |_| {}).await;
    let (ok, _, stderr) = psql_require_ssl(&plain).await;
    assert!(!ok, "sslmode=require must fail without TLS");
    assert!(stderr.contains("does not support SSL"), "{stderr}");
}
