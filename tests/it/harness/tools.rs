//! Running PostgreSQL's client programs (psql, pgbench) without blocking the test's runtime, which also
//! runs the proxy under test.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `cmd` to completion on a blocking thread, feeding it `stdin`, capturing its output.
pub async fn run(mut cmd: Command, stdin: &str) -> Output {
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut pipe = child.stdin.take().expect("stdin");
        let feeder = std::thread::spawn(move || pipe.write_all(stdin.as_bytes()));
        let out = child.wait_with_output().expect("wait");
        let _ = feeder.join().expect("stdin feeder");
        out
    })
    .await
    .expect("blocking task")
}

/// Standard output and error as text.
pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
