//! Proxy configuration (`shardgate.yaml`): listen address, users, pool sizes, timeouts, TLS. Loaded and
//! validated once, then passed explicitly; nothing reads it from a global. The servers themselves live in
//! the shard map (`sharding::map`).

pub(crate) mod user;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use user::{AuthMethod, User, UserConfig};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Syntax {
        path: PathBuf,
        source: yaml_serde::Error,
    },
    #[error("{path}: {field}: {message}")]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

/// How long a client keeps a server connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    /// From the first statement of a transaction to its end.
    Transaction,
    /// For the whole client session.
    Session,
}

/// What happens to a statement that creates session state under transaction pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatePolicy {
    /// The client keeps its server until it disconnects; the server is reset before reuse.
    Pin,
    /// The statement is refused with 0A000.
    Refuse,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    #[serde(default = "defaults::min_size")]
    pub min_size: usize,
    #[serde(default = "defaults::max_size")]
    pub max_size: usize,
    #[serde(default = "defaults::checkout_timeout_ms")]
    pub checkout_timeout_ms: u64,
    #[serde(default = "defaults::connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "defaults::health_check_interval_ms")]
    pub health_check_interval_ms: u64,
    /// Idle server connections above `min_size` are closed after this long.
    #[serde(default = "defaults::server_idle_timeout_ms")]
    pub server_idle_timeout_ms: u64,
    /// The statement a pinned server runs before it is reused.
    #[serde(default = "defaults::reset_query")]
    pub reset_query: String,
    /// The most prepared statements one server connection keeps; past that the least recently used
    /// is closed on it (and prepared again when next used).
    #[serde(default = "defaults::max_prepared_statements")]
    pub max_prepared_statements: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        yaml_serde::from_str("{}").expect("pool defaults")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Credentials shardgate uses towards the servers, unless a shard names its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerAuth {
    pub user: String,
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// The database name clients connect to.
    pub database: String,
    #[serde(default = "defaults::admin_database")]
    pub admin_database: String,
    #[serde(default = "defaults::pool_mode")]
    pub pool_mode: PoolMode,
    #[serde(default = "defaults::session_state")]
    pub session_state: SessionStatePolicy,
    #[serde(default = "defaults::max_clients")]
    pub max_clients: usize,
    #[serde(default = "defaults::max_message_bytes")]
    pub max_message_bytes: usize,
    /// A client idle outside a transaction longer than this is disconnected; 0 disables.
    #[serde(default)]
    pub client_idle_timeout_ms: u64,
    /// A client must have sent its startup packet and logged in within this (PostgreSQL's
    /// authentication_timeout); it holds one of `max_clients` meanwhile.
    #[serde(default = "defaults::auth_timeout_ms")]
    pub auth_timeout_ms: u64,
    /// How long SIGTERM waits for running transactions.
    #[serde(default = "defaults::shutdown_timeout_ms")]
    pub shutdown_timeout_ms: u64,
    #[serde(default)]
    pub pool: PoolConfig,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    pub server_auth: ServerAuth,
    pub users: Vec<UserConfig>,
    #[serde(default = "defaults::shardmap")]
    pub shardmap: PathBuf,
    /// How often the shard map file is checked for changes (reloaded when it changed); 0 disables.
    #[serde(default = "defaults::shardmap_watch_ms")]
    pub shardmap_watch_ms: u64,
    #[serde(default = "defaults::metrics_listen")]
    pub metrics_listen: Option<SocketAddr>,
}

mod defaults {
    use std::net::SocketAddr;
    use std::path::PathBuf;

    use super::{PoolMode, SessionStatePolicy};

    pub fn listen() -> SocketAddr {
        "127.0.0.1:6432".parse().expect("literal address")
    }
    pub fn admin_database() -> String {
        "shardgate".into()
    }
    pub fn pool_mode() -> PoolMode {
        PoolMode::Transaction
    }
    pub fn session_state() -> SessionStatePolicy {
        SessionStatePolicy::Pin
    }
    pub fn max_clients() -> usize {
        1000
    }
    pub fn max_message_bytes() -> usize {
        64 << 20
    }
    pub fn shardmap_watch_ms() -> u64 {
        1_000
    }
    pub fn shutdown_timeout_ms() -> u64 {
        30_000
    }
    pub fn min_size() -> usize {
        1
    }
    pub fn max_size() -> usize {
        20
    }
    pub fn checkout_timeout_ms() -> u64 {
        5_000
    }
    pub fn connect_timeout_ms() -> u64 {
        5_000
    }
    pub fn health_check_interval_ms() -> u64 {
        10_000
    }
    pub fn auth_timeout_ms() -> u64 {
        60_000
    }
    pub fn server_idle_timeout_ms() -> u64 {
        600_000
    }
    pub fn reset_query() -> String {
        "DISCARD ALL".into()
    }
    pub fn max_prepared_statements() -> usize {
        500
    }
    pub fn shardmap() -> PathBuf {
        "shardmap.yaml".into()
    }
    pub fn metrics_listen() -> Option<SocketAddr> {
        Some("127.0.0.1:9930".parse().expect("literal address"))
    }
}

impl Config {
    /// Reads and validates a config file; a relative `shardmap` path is taken relative to the file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let mut config = Config::parse(&text, path)?;
        if config.shardmap.is_relative()
            && let Some(dir) = path.parent()
        {
            config.shardmap = dir.join(&config.shardmap);
        }
        Ok(config)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = yaml_serde::from_str(text).map_err(|source| ConfigError::Syntax {
            path: path.into(),
            source,
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: &str, message: &str| ConfigError::Invalid {
            path: path.into(),
            field: field.into(),
            message: message.into(),
        };
        if self.pool.max_size == 0 || self.pool.min_size > self.pool.max_size {
            return Err(invalid(
                "pool",
                "need 0 <= min_size <= max_size and max_size >= 1",
            ));
        }
        if self.users.is_empty() {
            return Err(invalid("users", "at least one user is required"));
        }
        for (i, u) in self.users.iter().enumerate() {
            if self.users[..i].iter().any(|o| o.name == u.name) {
                return Err(invalid(
                    &format!("users[{i}].name"),
                    &format!("duplicate user {:?}", u.name),
                ));
            }
            u.check().map_err(|m| invalid(&format!("users[{i}]"), &m))?;
        }
        if self.max_message_bytes < 1024 {
            return Err(invalid("max_message_bytes", "must be at least 1024"));
        }
        Ok(())
    }

    /// Resolves the configured users into their authentication secrets (SCRAM keys are derived here, once).
    pub fn users(&self) -> Vec<User> {
        self.users.iter().map(User::from_config).collect()
    }

    pub(crate) fn checkout_timeout(&self) -> Duration {
        Duration::from_millis(self.pool.checkout_timeout_ms)
    }

    pub(crate) fn auth_timeout(&self) -> Duration {
        Duration::from_millis(self.auth_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str, want_err: Option<&str>) {
        match (Config::parse(yaml, Path::new("t.yaml")), want_err) {
            (Ok(_), None) => {}
            (Err(e), Some(w)) => assert!(e.to_string().contains(w), "{e} does not contain {w}"),
            (got, want) => panic!("got {got:?}, want error {want:?}"),
        }
    }

    #[test]
    fn validation() {
        let base = "database: app\nserver_auth: {user: postgres}\n";
        check(&format!("{base}users: [{{name: a, password: x}}]"), None);
        check(&format!("{base}users: []"), Some("users: at least one"));
        check(
            &format!("{base}users: [{{name: a, password: x}}, {{name: a, password: y}}]"),
            Some("duplicate user"),
        );
        check(
            &format!("{base}users: [{{name: a, auth: md5}}]"),
            Some("needs a password"),
        );
        check(
            &format!("{base}users: [{{name: a, password: x}}]\npool: {{max_size: 0}}"),
            Some("pool:"),
        );
        check(
            &format!("{base}users: [{{name: a, password: x}}]\nbogus: 1"),
            Some("unknown field `bogus`"),
        );
        check(
            &format!("{base}users: [{{name: a, auth: trust}}]\npool_mode: session"),
            None,
        );
    }
}
