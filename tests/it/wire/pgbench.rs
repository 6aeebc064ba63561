//! pgbench through shardgate: initialisation (COPY) and the simple, extended and prepared protocols under a
//! pool smaller than the client count. Sequential in one test, so the runs do not share the two cores.

use crate::harness::tools::{run, text};
use crate::harness::{TestProxy, shared};

/// The number after `label` in pgbench's report.
fn number_after(report: &str, label: &str) -> Option<u64> {
    let line = report.lines().find(|l| l.trim_start().starts_with(label))?;
    line[line.find(label)? + label.len()..]
        .split_whitespace()
        .next()?
        .split('/')
        .next()?
        .parse()
        .ok()
}

async fn pgbench(p: &TestProxy, args: &[&str]) -> (String, String) {
    let mut cmd = p.command("pgbench", "app", "secret");
    cmd.args(args);
    let out = run(cmd, "").await;
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "pgbench {args:?} exited with {}\n{stdout}\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_then_three_protocols() {
    let p = TestProxy::start(shared(), |c| c.pool.max_size = 8).await;
    pgbench(&p, &["-i", "-s", "1", "-q"]).await;
    let direct = crate::harness::client(shared(), &p.db).await;
    let accounts: i64 = direct
        .query_one("select count(*) from pgbench_accounts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        accounts, 100_000,
        "pgbench -i loaded every account through COPY"
    );
    for mode in ["simple", "extended", "prepared"] {
        let (stdout, stderr) =
            pgbench(&p, &["-M", mode, "-T", "10", "-c", "16", "-j", "2", "-n"]).await;
        let report = format!("{stdout}\n{stderr}");
        let processed = number_after(&stdout, "number of transactions actually processed:");
        assert!(
            processed.is_some_and(|n| n > 0),
            "-M {mode}: no transactions processed\n{report}"
        );
        assert_eq!(
            number_after(&stdout, "number of failed transactions:"),
            Some(0),
            "-M {mode}\n{report}"
        );
        assert!(
            !report.contains("aborted"),
            "-M {mode}: a client aborted\n{report}"
        );
        println!("-M {mode}: {} transactions", processed.unwrap());
    }
    // Money moved, none created: every transaction ran whole.
    let sums = direct
        .query_one("select (select sum(abalance) from pgbench_accounts), (select sum(bbalance) from pgbench_branches), (select sum(delta) from pgbench_history)", &[])
        .await
        .unwrap();
    let (a, b, h): (i64, i64, i64) = (sums.get(0), sums.get(1), sums.get(2));
    assert_eq!((a, b), (h, h));
}

/// pgbench against two shards whose map sends unlisted tables to shard s0 (as scripts/dev.sh's does):
/// `-i` creates its tables on every shard and truncates and loads them on s0, in one transaction; then
/// its transactions (BEGIN over the extended protocol, held until the first statement) all run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_and_run_over_two_shards_with_a_default_shard() {
    let s = crate::harness::sharded::Sharded::start(shared(), "default: s0\n").await;
    pgbench(&s.proxy, &["-i", "-s", "1", "-q"]).await;
    let mut accounts = Vec::new();
    for shard in 0..2 {
        let direct = s.direct(shared(), shard).await;
        let n: i64 = direct
            .query_one("select count(*) from pgbench_accounts", &[])
            .await
            .unwrap()
            .get(0);
        accounts.push(n);
    }
    assert_eq!(
        accounts,
        [100_000, 0],
        "loaded on the default shard, created empty on the other"
    );
    for mode in ["extended", "prepared"] {
        let (stdout, stderr) = pgbench(
            &s.proxy,
            &["-M", mode, "-T", "3", "-c", "4", "-j", "2", "-n"],
        )
        .await;
        let report = format!("{stdout}\n{stderr}");
        assert!(
            number_after(&stdout, "number of transactions actually processed:")
                .is_some_and(|n| n > 0),
            "-M {mode}\n{report}"
        );
        assert_eq!(
            number_after(&stdout, "number of failed transactions:"),
            Some(0),
            "-M {mode}\n{report}"
        );
        assert!(!report.contains("aborted"), "-M {mode}\n{report}");
    }
}
