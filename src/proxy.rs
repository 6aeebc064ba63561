//! The running proxy: shared state built once from the config and the shard map, the accept loop, and
//! graceful shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::backend::pool::Pool;
use crate::backend::server::ServerTarget;
use crate::config::{Config, User};
use crate::frontend::tls::TlsError;
use crate::frontend::{cancel, login, statements, tls};
use crate::sharding::ShardMap;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// State every session shares. Built once; passed explicitly.
pub struct Proxy {
    pub(crate) config: Config,
    pub(crate) users: HashMap<String, User>,
    pub(crate) pools: Vec<Arc<Pool>>,
    pub(crate) cancels: cancel::Registry,
    pub(crate) statements: statements::Registry,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) clients: AtomicUsize,
    shutdown: watch::Sender<bool>,
}

impl Proxy {
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}

/// A started proxy.
pub struct Running {
    local_addr: SocketAddr,
    proxy: Arc<Proxy>,
    accept: JoinHandle<()>,
}

fn targets(config: &Config, map: &ShardMap) -> Vec<ServerTarget> {
    map.shards
        .iter()
        .map(|s| ServerTarget {
            shard: s.name.clone(),
            host: s.host.clone(),
            port: s.port,
            database: s.database.clone(),
            user: s.user.clone().unwrap_or_else(|| config.server_auth.user.clone()),
            password: s.password.clone().or_else(|| config.server_auth.password.clone()),
        })
        .collect()
}

/// Binds the listener and starts serving.
pub async fn start(config: Config, map: ShardMap) -> Result<Running, StartError> {
    let listener = TcpListener::bind(config.listen).await.map_err(|source| StartError::Listen { addr: config.listen, source })?;
    let local_addr = listener.local_addr().map_err(|source| StartError::Listen { addr: config.listen, source })?;
    let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
    let pools: Vec<_> = targets(&config, &map).into_iter().map(|t| Pool::new(t, config.pool.clone())).collect();
    let (shutdown, _) = watch::channel(false);
    let users = config.users().into_iter().map(|u| (u.name.clone(), u)).collect();
    let proxy = Arc::new(Proxy {
        config,
        users,
        pools,
        cancels: cancel::Registry::default(),
        statements: statements::Registry::default(),
        tls,
        clients: AtomicUsize::new(0),
        shutdown,
    });
    for pool in &proxy.pools {
        tokio::spawn(pool.clone().run_maintenance(proxy.shutdown_signal()));
    }
    let accept = tokio::spawn(accept_loop(proxy.clone(), listener));
    tracing::info!(%local_addr, shards = proxy.pools.len(), "shardgate listening");
    Ok(Running { local_addr, proxy, accept })
}

async fn accept_loop(proxy: Arc<Proxy>, listener: TcpListener) {
    let mut stop = proxy.shutdown_signal();
    let next_id = AtomicU64::new(1);
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, _)) => {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(login::serve(proxy.clone(), tcp, id));
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

    pub fn proxy(&self) -> &Arc<Proxy> {
        &self.proxy
    }

    /// Stops accepting, lets running transactions finish up to the shutdown timeout, then closes.
    pub async fn shutdown(self) {
        let _ = self.proxy.shutdown.send(true);
        self.accept.abort();
        let deadline = Instant::now() + Duration::from_millis(self.proxy.config.shutdown_timeout_ms);
        while self.proxy.clients.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for pool in &self.proxy.pools {
            pool.close_idle();
        }
        tracing::info!(remaining_clients = self.proxy.clients.load(Ordering::Relaxed), "shardgate stopped");
    }
}
