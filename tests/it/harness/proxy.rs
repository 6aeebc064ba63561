//! An in-process shardgate in front of test databases.

use std::net::SocketAddr;
use std::path::Path;

use shardgate::{Config, Running, ShardMap};
use tokio_postgres::{Client, NoTls};

use super::cluster::Cluster;

pub struct TestProxy {
    pub running: Option<Running>,
    pub addr: SocketAddr,
    pub db: String,
}

/// The config every test starts from: users `app` (SCRAM, password `secret`), `md5user` (md5, `md5secret`),
/// `trustuser` (trust) and `admin`; servers reached as `postgres` with trust.
pub fn base_config(db: &str) -> Config {
    let yaml = format!(
        "listen: 127.0.0.1:0\ndatabase: {db}\nmetrics_listen: null\nserver_auth: {{user: postgres}}\n\
         pool: {{min_size: 0, max_size: 8, checkout_timeout_ms: 5000}}\n\
         users: [{{name: app, password: secret}}, {{name: md5user, password: md5secret, auth: md5}}, \
         {{name: trustuser, auth: trust}}, {{name: admin, password: admin, admin: true}}]\n"
    );
    Config::parse(&yaml, Path::new("test.yaml")).expect("test config")
}

/// One shard, `db` on the server at `port`.
pub fn single_shard_map(port: u16, db: &str) -> ShardMap {
    let yaml = format!(
        "version: 1\ndefault: s0\nshards:\n  - {{name: s0, host: 127.0.0.1, port: {port}, database: {db}}}\n"
    );
    ShardMap::parse(&yaml, Path::new("test-map.yaml")).expect("test map")
}

impl TestProxy {
    /// A proxy in front of a fresh database on `cluster`, the config adjusted by `tweak`.
    pub async fn start(cluster: &Cluster, tweak: impl FnOnce(&mut Config)) -> TestProxy {
        let db = cluster.create_db("t");
        TestProxy::start_on(cluster.port, &db, tweak).await
    }

    /// A proxy in front of `db` on the server at `port` (a cluster's, or something in between).
    pub async fn start_on(port: u16, db: &str, tweak: impl FnOnce(&mut Config)) -> TestProxy {
        let mut config = base_config(db);
        tweak(&mut config);
        TestProxy::serve(config, single_shard_map(port, db)).await
    }

    /// A proxy running `config` over `map`; clients ask for the config's database.
    pub async fn serve(config: Config, map: ShardMap) -> TestProxy {
        let db = config.database.clone();
        let running = shardgate::start(config, map).await.expect("proxy starts");
        TestProxy {
            addr: running.local_addr(),
            running: Some(running),
            db,
        }
    }

    pub fn conn_str(&self, user: &str, password: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} password={password} dbname={}",
            self.addr.port(),
            self.db
        )
    }

    /// A PostgreSQL client program from `bin()` (psql, pgbench) aimed at the proxy as `user`.
    pub fn command(&self, program: &str, user: &str, password: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(super::bin().join(program));
        self.aim(&mut cmd, user, password);
        cmd
    }

    /// Aims a client program at the proxy as `user`, through libpq's environment variables, which
    /// most drivers read too.
    pub fn aim(&self, cmd: &mut std::process::Command, user: &str, password: &str) {
        cmd.env("PGHOST", "127.0.0.1")
            .env("PGPORT", self.addr.port().to_string())
            .env("PGUSER", user)
            .env("PGPASSWORD", password)
            .env("PGDATABASE", &self.db)
            .env("PGSSLMODE", "disable")
            .env_remove("PGSERVICE");
    }

    /// A tokio-postgres client through the proxy as `app`.
    pub async fn client(&self) -> Client {
        connect_as(&self.conn_str("app", "secret"))
            .await
            .expect("connect through shardgate")
    }
}

pub async fn connect_as(conn_str: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(conn_str, NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A client straight to the cluster, bypassing the proxy.
pub async fn client(cluster: &Cluster, db: &str) -> Client {
    connect_as(&format!(
        "host=127.0.0.1 port={} user=postgres dbname={db}",
        cluster.port
    ))
    .await
    .expect("direct connect")
}
