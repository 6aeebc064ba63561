//! The real psql through shardgate: queries, multi-statement strings, errors mid-session, COPY both ways.

use crate::harness::tools::{run, text};
use crate::harness::{TestProxy, shared};

/// Runs psql as `app` with `script` on its standard input (unaligned, tuples only, no psqlrc); returns
/// (success, stdout, stderr).
async fn psql(p: &TestProxy, extra: &[&str], script: &str) -> (bool, String, String) {
    let mut cmd = p.command("psql", "app", "secret");
    cmd.args(["-X", "-A", "-t", "-q"]).args(extra);
    if !extra.contains(&"-c") {
        cmd.args(["-f", "-"]);
    }
    let out = run(cmd, script).await;
    let (stdout, stderr) = text(&out);
    (out.status.success(), stdout, stderr)
}

#[tokio::test]
async fn queries_and_multi_statement_strings() {
    let p = TestProxy::start(shared(), |_| {}).await;
    let (ok, stdout, stderr) = psql(
        &p,
        &["-v", "ON_ERROR_STOP=1"],
        "select 40 + 2;\nselect 'a' || 'b'; select 7 as x, null as y;\n",
    )
    .await;
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "42\nab\n7|\n");
    // One Query message with three statements: psql 15 prints every result.
    let (ok, stdout, stderr) = psql(
        &p,
        &[
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "select 1; select 2; select 3",
        ],
        "",
    )
    .await;
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "1\n2\n3\n");
}

#[tokio::test]
async fn a_failing_statement_then_a_good_one() {
    let p = TestProxy::start(shared(), |_| {}).await;
    let script = "select 1/0;\nselect 'after error', pg_backend_pid() > 0;\nbegin;\nselect nope;\nselect 1;\nrollback;\nselect 'after rollback';\n";
    let (_, stdout, stderr) = psql(&p, &[], script).await;
    assert_eq!(
        stdout, "after error|t\nafter rollback\n",
        "stderr: {stderr}"
    );
    assert!(stderr.contains("division by zero"), "{stderr}");
    assert!(
        stderr.contains("column \"nope\" does not exist"),
        "{stderr}"
    );
    assert!(
        stderr.contains("current transaction is aborted"),
        "{stderr}"
    );
}

#[tokio::test]
async fn copy_from_stdin_then_to_stdout() {
    let p = TestProxy::start(shared(), |_| {}).await;
    let rows = 50_000;
    let mut script =
        String::from("create table t (a int primary key, b text);\ncopy t from stdin;\n");
    for i in 0..rows {
        script.push_str(&format!("{i}\tvalue {i}\n"));
    }
    script.push_str(
        "\\.\nselect count(*), sum(a), max(b) from t;\ncopy (select * from t where a < 3 order by a) to stdout;\n",
    );
    script.push_str("\\copy t to stdout\n");
    let (ok, stdout, stderr) = psql(&p, &["-v", "ON_ERROR_STOP=1"], &script).await;
    assert!(ok, "{stderr}");
    let mut lines = stdout.lines();
    let sum: i64 = (0..rows as i64).sum();
    assert_eq!(
        lines.next(),
        Some(format!("{rows}|{sum}|value 9999").as_str())
    );
    assert_eq!(lines.next(), Some("0\tvalue 0"));
    assert_eq!(lines.next(), Some("1\tvalue 1"));
    assert_eq!(lines.next(), Some("2\tvalue 2"));
    let rest: Vec<&str> = lines.collect();
    assert_eq!(rest.len(), rows, "\\copy to stdout returns every row");
    assert!(rest.contains(&"49999\tvalue 49999"));
}

#[tokio::test]
async fn copy_error_then_the_session_goes_on() {
    let p = TestProxy::start(shared(), |_| {}).await;
    let script = "create table t (a int);\ncopy t from stdin;\n1\nnot a number\n\\.\nselect count(*) from t;\n";
    let (_, stdout, stderr) = psql(&p, &[], script).await;
    assert!(
        stderr.contains("invalid input syntax for type integer"),
        "{stderr}"
    );
    assert_eq!(stdout, "0\n", "stderr: {stderr}");
}
