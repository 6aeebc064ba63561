//! A shardgate in front of several shards: one database per shard on the shared cluster, the same
//! schema on each, the shard map in a file (so reloads and the file watch can be tested).

use std::path::PathBuf;

use shardgate::ShardMap;
use tokio_postgres::Client;

use super::cluster::Cluster;
use super::proxy::{TestProxy, base_config, client};

/// The demo schema the sharding tests use, applied to every shard.
pub const SCHEMA: &str = "
CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL);
CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);
CREATE TABLE orders (id bigint NOT NULL, user_id bigint NOT NULL, amount numeric NOT NULL, PRIMARY KEY (user_id, id));
CREATE TABLE accounts (id uuid PRIMARY KEY, name text);
CREATE TABLE events (day int4 NOT NULL, what text);
CREATE TABLE tenant_data (tenant text NOT NULL, v int4);
CREATE TABLE tenant_directory (tenant text PRIMARY KEY, shard text NOT NULL);
CREATE TABLE items (id bigint PRIMARY KEY, grp int4, price numeric(10, 2), score float8, name text,
    flag bool, day date, at timestamptz, uid uuid, qty int2, ts timestamp);
";

pub struct Sharded {
    pub proxy: TestProxy,
    pub dbs: Vec<String>,
    pub map_path: PathBuf,
    _dir: tempfile::TempDir,
}

/// The tables of the test map, after `shards:`.
pub const TABLES: &str = "tables:
  - {name: users, key: id, type: int8, strategy: hash}
  - {name: orders, key: user_id, colocate_with: users}
  - {name: accounts, key: id, type: uuid, strategy: hash}
  - name: events
    key: day
    type: int4
    strategy: range
    ranges:
      - {to: 100, shard: s0}
      - {from: 100, to: 200, shard: s1}
  - name: tenant_data
    key: tenant
    type: text
    strategy: directory
    entries: {acme: s0, globex: s1}
    lookup: {shard: s0, query: 'SELECT shard FROM tenant_directory WHERE tenant = $1', ttl_ms: 100}
  - {name: countries, strategy: reference}
  - {name: items, key: id, type: int8, strategy: hash}
";

impl Sharded {
    /// Two shards with 16 buckets split in halves, the test tables, `extra` appended at the top level.
    pub async fn start(cluster: &Cluster, extra: &str) -> Sharded {
        Sharded::start_n(cluster, 2, extra).await
    }

    /// `n` shards (2 to 4) sharing 16 buckets.
    pub async fn start_n(cluster: &Cluster, n: usize, extra: &str) -> Sharded {
        Sharded::start_with(cluster, n, extra, "").await
    }

    /// `n` shards whose databases are created with `db_options` (after CREATE DATABASE name).
    pub async fn start_with(cluster: &Cluster, n: usize, extra: &str, db_options: &str) -> Sharded {
        let dbs: Vec<String> = (0..n)
            .map(|_| cluster.create_db_with("shard", db_options))
            .collect();
        for db in &dbs {
            client(cluster, db)
                .await
                .batch_execute(SCHEMA)
                .await
                .unwrap();
        }
        let yaml = Sharded::map_yaml(cluster, &dbs, extra);
        let dir = tempfile::tempdir().unwrap();
        let map_path = dir.path().join("shardmap.yaml");
        std::fs::write(&map_path, &yaml).unwrap();
        let map = ShardMap::load(&map_path).expect("test map");
        let mut config = base_config("app");
        config.shardmap = map_path.clone();
        config.shardmap_watch_ms = 100;
        Sharded {
            proxy: TestProxy::serve(config, map).await,
            dbs,
            map_path,
            _dir: dir,
        }
    }

    pub fn map_yaml(cluster: &Cluster, dbs: &[String], extra: &str) -> String {
        let n = dbs.len();
        let mut shards = String::new();
        for (i, db) in dbs.iter().enumerate() {
            let (from, to) = (i * 16 / n, (i + 1) * 16 / n - 1);
            shards.push_str(&format!(
                "  - {{name: s{i}, host: 127.0.0.1, port: {}, database: {db}, buckets: [{from}-{to}]}}\n",
                cluster.port
            ));
        }
        format!("version: 1\nbuckets: 16\n{extra}shards:\n{shards}{TABLES}")
    }

    pub fn map(&self) -> ShardMap {
        ShardMap::load(&self.map_path).unwrap()
    }

    /// A client straight to shard `i`.
    pub async fn direct(&self, cluster: &Cluster, i: usize) -> Client {
        client(cluster, &self.dbs[i]).await
    }
}
