//! The running proxy: shared state built once from the config and the shard map, the accept loop, live
//! reload of the shard map, and graceful shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::admin::metrics::{self, ProxyMetrics};
use crate::backend::pool::Pool;
use crate::backend::prepared::SchemaEpoch;
use crate::backend::server::ServerTarget;
use crate::config::{Config, User};
use crate::execute::directory::DirectoryCache;
use crate::frontend::tls::TlsError;
use crate::frontend::{cancel, clients, login, statements, tls};
use crate::router::Router;
use crate::sharding::{ShardId, ShardMap, ShardSpec};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The shard map in use with one pool per shard, swapped together on reload.
pub(crate) struct Topology {
    pub map: ShardMap,
    pub pools: Vec<Arc<Pool>>,
}

/// State every session shares. Built once; passed explicitly.
pub struct Proxy {
    pub(crate) config: Config,
    pub(crate) users: HashMap<String, User>,
    pub(crate) topology: ArcSwap<Topology>,
    pub(crate) cancels: cancel::Registry,
    pub(crate) statements: statements::Registry,
    /// Every server's statements are stamped with it (`backend::prepared`).
    schema_epoch: SchemaEpoch,
    pub(crate) clients: clients::Clients,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) client_count: AtomicUsize,
    pub(crate) metrics: ProxyMetrics,
    pub(crate) router: Router,
    pub(crate) directory: DirectoryCache,
    /// Spreads statements any shard can answer (reference reads, SELECT 1) over the shards.
    any_shard: AtomicUsize,
    pub(crate) started: Instant,
    shutdown: watch::Sender<bool>,
    shutdown_requested: Notify,
}

/// Where and as whom shardgate reaches a shard: its own user/password, else `server_auth`.
pub(crate) fn target(config: &Config, s: &ShardSpec, schema_epoch: &SchemaEpoch) -> ServerTarget {
    ServerTarget {
        shard: s.name.clone(),
        host: s.host.clone(),
        port: s.port,
        database: s.database.clone(),
        user: s
            .user
            .clone()
            .unwrap_or_else(|| config.server_auth.user.clone()),
        password: s
            .password
            .clone()
            .or_else(|| config.server_auth.password.clone()),
        max_prepared: config.pool.max_prepared_statements,
        schema_epoch: schema_epoch.clone(),
    }
}

impl Proxy {
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// The next shard, in turn, for a statement any shard can answer.
    pub(crate) fn next_any_shard(&self, shards: usize) -> ShardId {
        ShardId(self.any_shard.fetch_add(1, Ordering::Relaxed) % shards.max(1))
    }

    /// Pools for a map: unchanged shards keep their pool (and its connections), others get a new one.
    fn build_pools(&self, map: &ShardMap, old: Option<&Topology>) -> Vec<Arc<Pool>> {
        map.shards
            .iter()
            .map(|s| {
                let reuse = old.and_then(|t| {
                    t.map
                        .shards
                        .iter()
                        .position(|o| o == s)
                        .map(|i| t.pools[i].clone())
                });
                reuse.unwrap_or_else(|| {
                    let pool = Pool::new(
                        target(&self.config, s, &self.schema_epoch),
                        self.config.pool.clone(),
                    );
                    tokio::spawn(pool.clone().run_maintenance(self.shutdown_signal()));
                    pool
                })
            })
            .collect()
    }

    /// Re-reads the shard map file; a map that fails validation is refused and the old one stays.
    pub(crate) fn reload(&self) -> Result<u64, String> {
        let result = ShardMap::load(&self.config.shardmap).map_err(|e| e.to_string());
        metrics::map_reload(result.is_ok());
        let map = result.inspect_err(
            |e| tracing::warn!(error = %e, "shard map reload refused; keeping the old map"),
        )?;
        let old = self.topology.load_full();
        let pools = self.build_pools(&map, Some(&old));
        let version = map.version;
        self.topology.store(Arc::new(Topology { map, pools }));
        self.metrics.map_version.set(version as f64);
        tracing::info!(version, "shard map reloaded");
        Ok(version)
    }

    /// Asks the owner of `Running` to shut down (admin SHUTDOWN).
    pub(crate) fn request_shutdown(&self) {
        self.shutdown_requested.notify_one();
    }

    pub(crate) fn refresh_gauges(&self) {
        self.metrics
            .clients_active
            .set(self.client_count.load(Ordering::Relaxed) as f64);
        let mut waiting = 0;
        for pool in &self.topology.load().pools {
            let s = pool.stats();
            pool.metrics.idle.set(s.idle as f64);
            pool.metrics.active.set(s.active as f64);
            pool.metrics.waiting.set(s.waiting as f64);
            waiting += s.waiting;
        }
        self.metrics.clients_waiting.set(waiting as f64);
        self.metrics.statements.set(self.statements.len() as f64);
        metrics::parse_cache(self.router.hits(), self.router.misses());
    }

    /// Shards that do not answer a query on a fresh connection.
    pub(crate) async fn unhealthy_shards(&self) -> Vec<String> {
        let pools = self.topology.load().pools.clone();
        // Probe in parallel so one dead shard costs one connect timeout, not one per shard.
        let probes: Vec<_> = pools
            .into_iter()
            .map(|p| tokio::spawn(async move { (p.target.shard.clone(), p.probe().await) }))
            .collect();
        let mut down = Vec::new();
        for probe in probes {
            match probe.await {
                Ok((_, true)) => {}
                Ok((shard, false)) => down.push(shard),
                Err(_) => down.push("?".into()),
            }
        }
        down
    }
}

/// A started proxy.
pub struct Running {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    proxy: Arc<Proxy>,
    accept: JoinHandle<()>,
}

/// Binds the listeners and starts serving.
pub async fn start(config: Config, map: ShardMap) -> Result<Running, StartError> {
    let listen_err = |addr| move |source| StartError::Listen { addr, source };
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(listen_err(config.listen))?;
    let local_addr = listener.local_addr().map_err(listen_err(config.listen))?;
    let http = match config.metrics_listen {
        Some(addr) => Some(
            crate::admin::http::bind(addr)
                .await
                .map_err(listen_err(addr))?,
        ),
        None => None,
    };
    let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
    let users = config
        .users()
        .into_iter()
        .map(|u| (u.name.clone(), u))
        .collect();
    let version = map.version;
    let proxy = Arc::new(Proxy {
        config,
        users,
        topology: ArcSwap::from_pointee(Topology {
            map: map.clone(),
            pools: Vec::new(),
        }),
        cancels: cancel::Registry::default(),
        statements: statements::Registry::default(),
        schema_epoch: SchemaEpoch::default(),
        clients: clients::Clients::default(),
        tls,
        client_count: AtomicUsize::new(0),
        metrics: ProxyMetrics::new(),
        router: Router::new(10_000),
        directory: DirectoryCache::default(),
        any_shard: AtomicUsize::new(0),
        started: Instant::now(),
        shutdown: watch::channel(false).0,
        shutdown_requested: Notify::new(),
    });
    let pools = proxy.build_pools(&map, None);
    proxy.topology.store(Arc::new(Topology { map, pools }));
    proxy.metrics.map_version.set(version as f64);
    let metrics_addr = match http {
        Some(l) => {
            let addr = l.local_addr().ok();
            tokio::spawn(crate::admin::http::serve(proxy.clone(), l));
            addr
        }
        None => None,
    };
    let accept = tokio::spawn(accept_loop(proxy.clone(), listener));
    if proxy.config.shardmap_watch_ms > 0 {
        tokio::spawn(watch_map(proxy.clone()));
    }
    tracing::info!(%local_addr, ?metrics_addr, version, "shardgate listening");
    Ok(Running {
        local_addr,
        metrics_addr,
        proxy,
        accept,
    })
}

/// Reloads the shard map when its file changes (size or modification time). A DBA's editor may write
/// the file in several steps; a half-written map fails validation, is refused, and the next change
/// reloads it.
async fn watch_map(proxy: Arc<Proxy>) {
    let stamp = |p: &std::path::Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.len(), m.modified().ok()))
    };
    let mut stop = proxy.shutdown_signal();
    let mut last = stamp(&proxy.config.shardmap);
    let every = Duration::from_millis(proxy.config.shardmap_watch_ms);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let now = stamp(&proxy.config.shardmap);
        if now != last && now.is_some() {
            last = now;
            tracing::info!(path = %proxy.config.shardmap.display(), "shard map file changed");
            let _ = proxy.reload();
        }
    }
}

async fn accept_loop(proxy: Arc<Proxy>, listener: TcpListener) {
    let mut stop = proxy.shutdown_signal();
    let next_id = AtomicU64::new(1);
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, peer)) => {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    proxy.metrics.clients_total.increment(1);
                    tokio::spawn(login::serve(proxy.clone(), tcp, peer, id));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => return,
        }
    }
}

impl Running {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where `/metrics` and `/healthz` are served, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Re-reads the shard map (SIGHUP); the error says why a bad map was refused.
    pub fn reload(&self) -> Result<u64, String> {
        self.proxy.reload()
    }

    /// Resolves when an admin asked for SHUTDOWN.
    pub async fn shutdown_requested(&self) {
        self.proxy.shutdown_requested.notified().await
    }

    /// Stops accepting, lets running transactions finish up to the shutdown timeout, then closes.
    pub async fn shutdown(self) {
        let _ = self.proxy.shutdown.send(true);
        self.accept.abort();
        let deadline =
            Instant::now() + Duration::from_millis(self.proxy.config.shutdown_timeout_ms);
        while self.proxy.client_count.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for pool in &self.proxy.topology.load().pools {
            pool.close_idle();
        }
        tracing::info!(
            remaining_clients = self.proxy.client_count.load(Ordering::Relaxed),
            "shardgate stopped"
        );
    }
}
