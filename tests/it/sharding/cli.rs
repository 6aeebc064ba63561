//! The shard map tools of the binary, and the binary refusing to start on a bad map.

use std::process::Command;

fn shardgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shardgate"))
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const MAP: &str = "version: 4
buckets: 1024
shards:
  - {name: a, host: 127.0.0.1, port: 1, database: d, buckets: [0-255]}
  - {name: b, host: 127.0.0.1, port: 2, database: d, buckets: [256-511]}
  - {name: c, host: 127.0.0.1, port: 3, database: d, buckets: [512-767]}
  - {name: d, host: 127.0.0.1, port: 4, database: d, buckets: [768-1023]}
tables:
  - {name: users, key: id, type: int8, strategy: hash}
";

#[test]
fn check_route_and_plan_add_shard() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.yaml");
    std::fs::write(&file, MAP).unwrap();
    let (ok, out, _) = run(shardgate().args(["map", "check"]).arg(&file));
    assert!(
        ok && out.contains("ok (version 4, 4 shards, 1 tables, 1024 buckets)"),
        "{out}"
    );

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, MAP.replace("[768-1023]", "[768-1000]")).unwrap();
    let (ok, _, err) = run(shardgate().args(["map", "check"]).arg(&bad));
    assert!(!ok && err.contains("bad.yaml:2: buckets: "), "{err}");

    let (ok, out, _) = run(shardgate()
        .args(["map", "route"])
        .arg(&file)
        .args(["SELECT * FROM users WHERE id = $1", "42"]));
    assert!(ok, "{out}");
    assert!(out.contains("users.id = 42 -> bucket 610 -> c"), "{out}");
    assert!(out.starts_with("route: shard c"), "{out}");

    let (ok, out, err) = run(shardgate()
        .args(["map", "plan-add-shard", "e", "--port", "5"])
        .arg("--file")
        .arg(&file));
    assert!(ok, "{err}");
    assert!(
        out.contains("version: 5") && out.contains("name: e"),
        "{out}"
    );
    // 205 of 1024 buckets (20.02%) move, all to the new shard.
    assert!(
        err.contains("205 of 1024 buckets move to e (20.02% of keys)"),
        "{err}"
    );
}

#[test]
fn a_bad_map_stops_the_start_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("shardmap.yaml");
    std::fs::write(&map, MAP.replace("name: d, host", "name: a, host")).unwrap();
    let config = dir.path().join("shardgate.yaml");
    std::fs::write(
        &config,
        "listen: 127.0.0.1:0\ndatabase: app\nmetrics_listen: null\nserver_auth: {user: postgres}\nusers: [{name: app, password: x}]\n",
    )
    .unwrap();
    let (ok, _, err) = run(shardgate().arg("--config").arg(&config));
    assert!(!ok);
    assert!(
        err.contains("shardmap.yaml:7: shards[3].name: duplicate shard \"a\""),
        "{err}"
    );
}
