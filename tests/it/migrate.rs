//! `shardgate migrate` against two shard databases of the shared cluster: applies, catches up, refuses
//! drift, rolls back a failing migration, and reads a table made by the old `scripts/dev.sh`.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::shared;

/// Two fresh shard databases, a config and shard map naming them, and an empty migrations directory.
struct Setup {
    dir: tempfile::TempDir,
    dbs: [String; 2],
}

impl Setup {
    fn new() -> Setup {
        let pg = shared();
        let dbs = [pg.create_db("mig_a"), pg.create_db("mig_b")];
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("shardmap.yaml"),
            format!(
                "version: 1\nshards:\n  - {{name: a, host: 127.0.0.1, port: {p}, database: {}}}\n  - {{name: b, host: 127.0.0.1, port: {p}, database: {}}}\n",
                dbs[0],
                dbs[1],
                p = pg.port
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("shardgate.yaml"),
            "database: app\nmetrics_listen: null\nserver_auth: {user: postgres}\nusers: [{name: app, password: x}]\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("migrations")).unwrap();
        Setup { dir, dbs }
    }

    fn migrations(&self) -> PathBuf {
        self.dir.path().join("migrations")
    }

    fn write(&self, name: &str, sql: &str) {
        std::fs::write(self.migrations().join(name), sql).unwrap();
    }

    /// Runs `shardgate migrate` with `extra` args: (success, stdout, stderr).
    fn migrate(&self, extra: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_shardgate"))
            .env("RUST_BACKTRACE", "0")
            .arg("migrate")
            .arg("--config")
            .arg(self.dir.path().join("shardgate.yaml"))
            .arg("--shardmap")
            .arg(self.dir.path().join("shardmap.yaml"))
            .arg("--dir")
            .arg(self.migrations())
            .args(extra)
            .output()
            .expect("runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The result of `sql` on shard `i` (0 = a, 1 = b), straight from the server.
    fn sql(&self, i: usize, sql: &str) -> String {
        shared().psql(&self.dbs[i], sql)
    }

    /// The migrations shard `i` records, comma-separated in name order.
    fn recorded(&self, i: usize) -> String {
        self.sql(
            i,
            "SELECT coalesce(string_agg(name, ',' ORDER BY name), '') FROM shardgate_migrations",
        )
    }

    fn has_table(&self, i: usize, table: &str) -> bool {
        self.sql(i, &format!("SELECT to_regclass('{table}') IS NOT NULL")) == "t"
    }
}

fn ok(setup: &Setup, extra: &[&str]) -> String {
    let (ok, out, err) = setup.migrate(extra);
    assert!(ok, "stdout: {out}\nstderr: {err}");
    out
}

#[test]
fn applies_everything_then_nothing_then_only_the_new_one() {
    let s = Setup::new();
    s.write(
        "0001_users.sql",
        "CREATE TABLE users (id bigint PRIMARY KEY);",
    );
    s.write(
        "0002_orders.sql",
        "CREATE TABLE orders (id bigint PRIMARY KEY);\nCREATE INDEX orders_id ON orders (id);",
    );
    s.write("README.md", "not a migration");
    let out = ok(&s, &[]);
    assert_eq!(
        out,
        "a: applied 0001_users.sql\na: applied 0002_orders.sql\nb: applied 0001_users.sql\nb: applied 0002_orders.sql\n"
    );
    for i in 0..2 {
        assert!(s.has_table(i, "users") && s.has_table(i, "orders_id"));
        assert_eq!(s.recorded(i), "0001_users.sql,0002_orders.sql");
        assert_eq!(
            s.sql(
                i,
                "SELECT count(*) FROM shardgate_migrations WHERE length(checksum) = 64"
            ),
            "2"
        );
    }

    assert_eq!(ok(&s, &[]), "a: up to date\nb: up to date\n");

    s.write("0003_email.sql", "ALTER TABLE users ADD COLUMN email text;");
    assert_eq!(
        ok(&s, &[]),
        "a: applied 0003_email.sql\nb: applied 0003_email.sql\n"
    );
    for i in 0..2 {
        assert_eq!(
            s.recorded(i),
            "0001_users.sql,0002_orders.sql,0003_email.sql"
        );
    }
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let s = Setup::new();
    s.write(
        "0001_users.sql",
        "CREATE TABLE users (id bigint PRIMARY KEY);",
    );
    let out = ok(&s, &["--dry-run"]);
    assert_eq!(
        out,
        "a: would apply 0001_users.sql\nb: would apply 0001_users.sql\ndry run: nothing changed\n"
    );
    for i in 0..2 {
        assert!(!s.has_table(i, "users"));
        assert!(!s.has_table(i, "shardgate_migrations"));
    }

    // Shard b behind shard a is no drift: the dry run shows b catching up.
    ok(&s, &[]);
    s.write("0002_email.sql", "ALTER TABLE users ADD COLUMN email text;");
    s.sql(1, "DELETE FROM shardgate_migrations; DROP TABLE users");
    let out = ok(&s, &["--dry-run"]);
    assert_eq!(
        out,
        "a: would apply 0002_email.sql\nb: would apply 0001_users.sql\nb: would apply 0002_email.sql\ndry run: nothing changed\n"
    );
    assert_eq!(s.recorded(0), "0001_users.sql");
    assert_eq!(s.recorded(1), "");
}

#[test]
fn drift_is_refused_naming_the_shard_and_migration() {
    let s = Setup::new();
    s.write(
        "0001_users.sql",
        "CREATE TABLE users (id bigint PRIMARY KEY);",
    );
    ok(&s, &[]);
    s.write("0002_email.sql", "ALTER TABLE users ADD COLUMN email text;");
    s.write("0003_name.sql", "ALTER TABLE users ADD COLUMN name text;");
    // 0002 ran on a only, 0003 on b only: b has a hole.
    s.sql(
        0,
        "INSERT INTO shardgate_migrations (name, checksum) VALUES ('0002_email.sql', 'x')",
    );
    s.sql(
        1,
        "INSERT INTO shardgate_migrations (name, checksum) VALUES ('0003_name.sql', 'x')",
    );
    let (success, _, err) = s.migrate(&[]);
    assert!(!success);
    assert!(
        err.contains("b: 0002_email.sql was never applied, but the later 0003_name.sql was (0002_email.sql is applied on a)"),
        "{err}"
    );
    assert!(err.contains("nothing was applied"), "{err}");
    for i in 0..2 {
        // Neither 0002 nor 0003 ran anywhere: only their rows were inserted by hand.
        let columns = s.sql(
            i,
            "SELECT count(*) FROM information_schema.columns \
             WHERE table_name = 'users' AND column_name IN ('email', 'name')",
        );
        assert_eq!(columns, "0");
    }

    // A file edited after it ran.
    let s = Setup::new();
    s.write(
        "0001_users.sql",
        "CREATE TABLE users (id bigint PRIMARY KEY);",
    );
    ok(&s, &[]);
    s.write(
        "0001_users.sql",
        "CREATE TABLE users (id bigint PRIMARY KEY, x int);",
    );
    let (success, _, err) = s.migrate(&["--dry-run"]);
    assert!(!success);
    assert!(
        err.contains("a: 0001_users.sql changed after it was applied")
            && err.contains("b: 0001_users.sql changed after it was applied"),
        "{err}"
    );
}

#[test]
fn a_failing_migration_is_rolled_back_on_its_shard_and_reported() {
    let s = Setup::new();
    s.write(
        "0001_users.sql",
        "CREATE TABLE users (id bigint PRIMARY KEY);",
    );
    ok(&s, &[]);
    // 0002 fails on b only, after its first statement ran there.
    s.sql(1, "CREATE TABLE clash (id int)");
    s.write(
        "0002_clash.sql",
        "CREATE TABLE audit (id int);\nCREATE TABLE clash (id int);",
    );
    s.write("0003_later.sql", "CREATE TABLE later (id int);");
    let (success, out, err) = s.migrate(&[]);
    assert!(!success, "{out}");
    assert!(
        err.contains("b: 0002_clash.sql failed and was rolled back on b: ERROR 42P07: relation \"clash\" already exists"),
        "{err}"
    );
    assert!(
        err.contains("applied before the failure:\na: applied 0002_clash.sql\nb: nothing applied"),
        "{err}"
    );
    assert_eq!(s.recorded(0), "0001_users.sql,0002_clash.sql");
    assert!(s.has_table(0, "audit") && !s.has_table(0, "later"));
    assert_eq!(s.recorded(1), "0001_users.sql");
    assert!(!s.has_table(1, "audit") && !s.has_table(1, "later"));

    // Fixed on b, the next run picks up where it stopped.
    s.sql(1, "DROP TABLE clash");
    assert_eq!(
        ok(&s, &[]),
        "a: applied 0003_later.sql\nb: applied 0002_clash.sql\nb: applied 0003_later.sql\n"
    );
}

#[test]
fn a_table_from_the_old_dev_script_gets_its_checksums() {
    let s = Setup::new();
    s.write(
        "0001_users.sql",
        "CREATE TABLE users (id bigint PRIMARY KEY);",
    );
    for i in 0..2 {
        s.sql(
            i,
            "CREATE TABLE users (id bigint PRIMARY KEY);
             CREATE TABLE shardgate_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO shardgate_migrations (name) VALUES ('0001_users.sql')",
        );
    }
    assert_eq!(
        ok(&s, &["--dry-run"]),
        "a: up to date\nb: up to date\ndry run: nothing changed\n"
    );
    assert_eq!(ok(&s, &[]), "a: up to date\nb: up to date\n");
    for i in 0..2 {
        assert_eq!(
            s.sql(
                i,
                "SELECT count(*) FROM shardgate_migrations WHERE length(checksum) = 64"
            ),
            "1"
        );
    }
}

#[test]
fn a_bad_file_name_is_named() {
    let s = Setup::new();
    s.write("0001_users.sql", "SELECT 1;");
    s.write("2_oops.sql", "SELECT 1;");
    let (success, _, err) = s.migrate(&["--dry-run"]);
    assert!(!success);
    assert!(
        err.contains("2_oops.sql: a migration file is named NNNN_name.sql"),
        "{err}"
    );
}

/// The repository's own `migrations/` and the tables of its `shardmap.yaml` (the demo app the README
/// uses): migrated onto two shards, then used through shardgate. Orders live with their users, the
/// reference table is on every shard, and a join of users and orders merges across shards.
#[tokio::test]
async fn the_demo_schema_serves_the_demo_app() {
    let s = Setup::new();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in std::fs::read_dir(repo.join("migrations")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, s.migrations().join(f.file_name().unwrap())).unwrap();
    }
    ok(&s, &[]);
    let map = std::fs::read_to_string(repo.join("shardmap.yaml")).unwrap();
    let tables = &map[map.find("\ntables:").expect("the map lists tables")..];
    let port = shared().port;
    let yaml = format!(
        "version: 1\nbuckets: 16\nshards:\n  - {{name: a, host: 127.0.0.1, port: {port}, database: {}, buckets: [0-7]}}\n  - {{name: b, host: 127.0.0.1, port: {port}, database: {}, buckets: [8-15]}}{tables}",
        s.dbs[0], s.dbs[1]
    );
    let map_path = s.dir.path().join("demo-map.yaml");
    std::fs::write(&map_path, yaml).unwrap();
    let mut config = crate::harness::proxy::base_config("app");
    config.shardmap = map_path.clone();
    let map = shardgate::ShardMap::load(&map_path).expect("the demo map");
    let proxy = crate::harness::TestProxy::serve(config, map).await;
    let c = proxy.client().await;
    // User n lives in the Netherlands when n is even, else in Portugal; it has an order of n and one
    // of 1.50.
    let users: Vec<String> = (1..=40)
        .map(|n| format!("({n}, 'u{n}@example.com', '{}')", ["nl", "pt"][n % 2]))
        .collect();
    let orders: Vec<String> = (1..=40)
        .flat_map(|n| {
            [
                format!("({n}, {n}, {n})"),
                format!("({}, {n}, 1.50)", n + 1000),
            ]
        })
        .collect();
    for sql in [
        "INSERT INTO countries (code, name) VALUES ('nl', 'Netherlands'), ('pt', 'Portugal')"
            .into(),
        format!(
            "INSERT INTO users (id, email, country) VALUES {}",
            users.join(", ")
        ),
        format!(
            "INSERT INTO orders (id, user_id, amount) VALUES {}",
            orders.join(", ")
        ),
    ] {
        c.batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
    for i in 0..2 {
        assert_eq!(s.sql(i, "SELECT count(*) FROM countries"), "2", "shard {i}");
        // Every order is on its user's shard.
        assert_eq!(
            s.sql(
                i,
                "SELECT count(*) FROM orders o LEFT JOIN users u ON u.id = o.user_id WHERE u.id IS NULL"
            ),
            "0",
            "shard {i}"
        );
        let users: i64 = s.sql(i, "SELECT count(*) FROM users").parse().unwrap();
        assert!(users > 0 && users < 40, "shard {i} holds {users} users");
    }
    let sql = "SELECT c.name, count(*), sum(o.amount) FROM users u JOIN orders o ON o.user_id = u.id \
               JOIN countries c ON c.code = u.country GROUP BY c.name ORDER BY c.name";
    let got = crate::harness::text_rows(&c, sql).await;
    assert_eq!(
        got,
        vec![
            vec!["Netherlands", "40", "450.00"],
            vec!["Portugal", "40", "430.00"],
        ]
    );
}
