//! docker-compose.yml, the Dockerfile and the Grafana dashboard, checked for structure so mistakes are
//! caught without a container engine.

use std::path::Path;

use yaml_serde::Value;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose
        .get("services")
        .and_then(|s| s.get(name))
        .unwrap_or_else(|| panic!("service {name} missing"))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_sequence)
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_structure() {
    let text = std::fs::read_to_string(repo("docker-compose.yml")).unwrap();
    let compose: Value = yaml_serde::from_str(&text).unwrap();
    for name in [
        "shard0",
        "shard1",
        "shard2",
        "shardgate",
        "prometheus",
        "grafana",
    ] {
        let s = service(&compose, name);
        assert!(
            s.get("healthcheck").and_then(|h| h.get("test")).is_some(),
            "{name} has no healthcheck"
        );
        for m in strings(s.get("volumes")) {
            let host = m.split(':').next().unwrap();
            assert!(repo(host).exists(), "{name} mounts missing {host}");
        }
    }
    for shard in ["shard0", "shard1", "shard2"] {
        assert!(
            strings(service(&compose, shard).get("volumes"))
                .iter()
                .any(|m| m.starts_with("./migrations:/docker-entrypoint-initdb.d"))
        );
    }
    let sg = service(&compose, "shardgate");
    assert!(sg.get("build").is_some());
    let ports = strings(sg.get("ports"));
    assert!(
        ports.contains(&"6432:6432".to_owned()) && ports.contains(&"9930:9930".to_owned()),
        "{ports:?}"
    );
    let volumes = strings(sg.get("volumes"));
    assert!(
        volumes
            .iter()
            .any(|v| v.ends_with(":/etc/shardgate/shardmap.yaml:ro")),
        "{volumes:?}"
    );
    for (svc, needs) in [
        ("shardgate", "shard0"),
        ("prometheus", "shardgate"),
        ("grafana", "prometheus"),
    ] {
        let cond = service(&compose, svc)
            .get("depends_on")
            .and_then(|d| d.get(needs))
            .and_then(|d| d.get("condition"));
        assert_eq!(
            cond.and_then(Value::as_str),
            Some("service_healthy"),
            "{svc} must wait for {needs}"
        );
    }
    // The mounted config files load.
    shardgate::Config::parse(
        &std::fs::read_to_string(repo("scripts/docker/shardgate.yaml")).unwrap(),
        Path::new("docker"),
    )
    .unwrap();
    let map = shardgate::ShardMap::load(&repo("scripts/docker/shardmap.yaml")).unwrap();
    assert_eq!(
        map.shards
            .iter()
            .map(|s| s.host.as_str())
            .collect::<Vec<_>>(),
        ["shard0", "shard1", "shard2"]
    );
}

#[test]
fn dockerfile_is_multi_stage() {
    let text = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    assert_eq!(text.lines().filter(|l| l.starts_with("FROM ")).count(), 2);
    assert!(text.contains("cargo build --release"));
    assert!(text.contains("COPY --from=build"));
}

#[test]
fn dashboard_uses_only_real_metrics() {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo("scripts/grafana/shardgate-dashboard.json")).unwrap(),
    )
    .unwrap();
    let defined = std::fs::read_to_string(repo("src/admin/metrics.rs")).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 6);
    for p in panels {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for word in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("shardgate_"))
            {
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| word.strip_suffix(s))
                    .unwrap_or(word);
                assert!(
                    defined.contains(&format!("\"{base}\"")),
                    "dashboard uses undefined metric {word}"
                );
            }
        }
    }
}
