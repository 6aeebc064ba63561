//! Real client drivers through shardgate: psycopg 3, asyncpg, node-postgres, pgjdbc and SQLAlchemy
//! (over psycopg) each run a script of what their users do (tests/drivers/) against two shards; then
//! every row they wrote must be on the shard that owns its key. scripts/drivers.sh installs them
//! (scripts/test.sh runs it).

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use shardgate::sharding::{KeyValue, Placement, ShardId, TableKind};

use crate::harness::sharded::Sharded;
use crate::harness::shared;
use crate::harness::tools::{run, text};

/// How long one driver's script may take before it is killed and fails.
const LIMIT_SECS: &str = "300";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// What scripts/drivers.sh installed under .drivers/.
fn installed(rel: &str) -> OsString {
    let p = repo().join(".drivers").join(rel);
    assert!(
        p.exists(),
        "{} is missing: run scripts/drivers.sh (scripts/test.sh does)",
        p.display()
    );
    p.into()
}

fn script(name: &str) -> OsString {
    repo().join("tests/drivers").join(name).into()
}

/// Runs `program` with `args` (and `env`) against two fresh shards through shardgate, as `app`
/// (SCRAM), with `map_extra` at the top level of the shard map; it must succeed and leave `users`
/// rows in the users table, each on its key's shard and some on each shard.
async fn through_shardgate(
    program: OsString,
    args: &[OsString],
    env: &[(&str, OsString)],
    users: usize,
    map_extra: &str,
) {
    let s = Sharded::start(shared(), map_extra).await;
    let mut cmd = Command::new("timeout");
    cmd.arg(LIMIT_SECS).arg(program).args(args);
    s.proxy.aim(&mut cmd, "app", "secret");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run(cmd, "").await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{:?}\n{stdout}\n{stderr}", out.status);
    let map = s.map();
    let Some(TableKind::Sharded(t)) = map.table("users").map(|t| &t.kind) else {
        panic!("users is sharded");
    };
    let mut total = 0;
    for shard in 0..2 {
        let direct = s.direct(shared(), shard).await;
        let rows = direct.query("SELECT id FROM users", &[]).await.unwrap();
        assert!(!rows.is_empty(), "no user on shard {shard}");
        for row in &rows {
            let id: i64 = row.get(0);
            assert_eq!(
                map.place(t, &KeyValue::Int(id)),
                Placement::Shard(ShardId(shard)),
                "user {id}"
            );
        }
        total += rows.len();
    }
    assert_eq!(total, users, "users written");
}

#[tokio::test]
async fn psycopg() {
    let python = installed("venv/bin/python");
    through_shardgate(python, &[script("psycopg_check.py")], &[], 90, "").await;
}

#[tokio::test]
async fn asyncpg() {
    let python = installed("venv/bin/python");
    through_shardgate(python, &[script("asyncpg_check.py")], &[], 90, "").await;
}

#[tokio::test]
async fn node_postgres() {
    let modules = installed("node/node_modules");
    let env = [("NODE_PATH", modules)];
    through_shardgate("node".into(), &[script("node_pg_check.js")], &env, 40, "").await;
}

#[tokio::test]
async fn pgjdbc() {
    let args = [
        "-cp".into(),
        "/usr/share/java/postgresql.jar".into(),
        script("JdbcCheck.java"),
    ];
    through_shardgate("java".into(), &args, &[], 40, "").await;
}

/// With unlisted tables on a default shard, as in scripts/dev.sh's map: SQLAlchemy's first connect
/// reads the catalogs inside a transaction a catalog-free statement opened on any shard.
#[tokio::test]
async fn sqlalchemy() {
    let python = installed("venv/bin/python");
    let args = [script("sqlalchemy_check.py")];
    through_shardgate(python, &args, &[], 40, "default: s0\n").await;
}
