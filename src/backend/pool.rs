//! A pool of server connections for one shard: at most `max_size` in use, LIFO idle list, health checks,
//! refilling to `min_size` with backoff. A checked-out connection that is dropped is closed: only an
//! explicit `release` (after the server is known idle) puts it back.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::BackendError;
use super::collation::TextOrder;
use super::server::{ServerConn, ServerTarget};
use crate::admin::metrics::{RouteKind, ShardMetrics};
use crate::config::PoolConfig;

/// How long a shard's answer about text order is trusted: DDL may give a column a collation.
const TEXT_ORDER_TTL: Duration = Duration::from_secs(30);

pub(crate) struct Pool {
    pub target: ServerTarget,
    config: PoolConfig,
    idle: Mutex<VecDeque<ServerConn>>,
    /// One permit per connection a client may hold; `max_size` in all.
    permits: Arc<Semaphore>,
    /// Connections that exist, idle or in use.
    open: AtomicUsize,
    waiting: AtomicUsize,
    healthy: AtomicBool,
    /// ParameterStatus values of the first connection: what a new client is told at login.
    startup_params: Mutex<Option<Vec<(String, String)>>>,
    /// While true, checkouts wait (admin PAUSE); connections in use finish their transactions.
    paused: watch::Sender<bool>,
    /// How the database orders text (see `collation`) and when it was asked, once a merge has asked.
    text_order: Mutex<Option<(Instant, Arc<TextOrder>)>>,
    pub(crate) metrics: ShardMetrics,
    pub(crate) stats: Counters,
}

/// Running totals for SHOW STATS.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub transactions: AtomicU64,
    pub queries: AtomicU64,
    pub query_micros: AtomicU64,
}

/// A connection checked out of its pool. Dropping it closes the connection.
pub(crate) struct Pooled {
    /// `None` only after `release` handed the connection back.
    conn: Option<ServerConn>,
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
}

impl Pooled {
    pub(crate) fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// The connection and its pool at once, for code that updates the one while counting in the other.
    pub(crate) fn with_pool(&mut self) -> (&mut ServerConn, &Pool) {
        let conn = self
            .conn
            .as_mut()
            .expect("a Pooled holds its connection until released");
        (conn, &self.pool)
    }

    /// Returns the connection for reuse when it is clean: idle outside a transaction, nothing unread,
    /// no cancel in doubt. Any other is closed, never reused; callers rely on that (a COPY or fan-out
    /// part that ended mid-transaction).
    pub(crate) fn release(mut self) {
        if self.conn.as_ref().is_some_and(|c| {
            c.tx_status != b'I'
                || !c.read_buf.is_empty()
                || c.cancel_in_doubt.load(Ordering::Acquire)
        }) {
            // Unread bytes may be a notice or notification that came after the last ReadyForQuery; a
            // cancel in doubt may yet land on the next client's query.
            tracing::debug!(
                "a server released inside a transaction, with bytes unread or a cancel in doubt is closed"
            );
            return;
        }
        if let Some(mut conn) = self.conn.take() {
            conn.last_used = Instant::now();
            self.pool.idle.lock().expect("pool lock").push_back(conn);
        }
    }
}

impl std::ops::Deref for Pooled {
    type Target = ServerConn;
    fn deref(&self) -> &ServerConn {
        self.conn
            .as_ref()
            .expect("a Pooled holds its connection until released")
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut ServerConn {
        self.conn
            .as_mut()
            .expect("a Pooled holds its connection until released")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if self.conn.take().is_some() {
            self.pool.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Pool {
    pub(crate) fn new(target: ServerTarget, config: PoolConfig) -> Arc<Pool> {
        let permits = Arc::new(Semaphore::new(config.max_size));
        Arc::new(Pool {
            config,
            idle: Mutex::new(VecDeque::new()),
            permits,
            open: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            startup_params: Mutex::new(None),
            paused: watch::channel(false).0,
            text_order: Mutex::new(None),
            metrics: ShardMetrics::new(&target.shard, RouteKind::Direct),
            stats: Counters::default(),
            target,
        })
    }

    fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.config.connect_timeout_ms)
    }

    async fn open_new(&self) -> Result<ServerConn, BackendError> {
        match ServerConn::connect(&self.target, self.connect_timeout()).await {
            Ok(conn) => {
                self.open.fetch_add(1, Ordering::Relaxed);
                self.healthy.store(true, Ordering::Relaxed);
                let mut params = self.startup_params.lock().expect("pool lock");
                if params.is_none() {
                    let mut p: Vec<_> = conn
                        .reported
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    p.sort();
                    *params = Some(p);
                }
                Ok(conn)
            }
            Err(e) => {
                self.healthy.store(false, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Takes an idle connection that still looks alive, closing dead ones on the way.
    fn take_idle(&self) -> Option<ServerConn> {
        let mut idle = self.idle.lock().expect("pool lock");
        while let Some(conn) = idle.pop_back() {
            if conn.looks_alive() {
                return Some(conn);
            }
            self.open.fetch_sub(1, Ordering::Relaxed);
            tracing::info!(shard = %self.target.shard, "closed a dead idle server connection");
        }
        None
    }

    pub(crate) async fn checkout(
        self: &Arc<Self>,
        timeout: Duration,
    ) -> Result<Pooled, BackendError> {
        let mut paused = self.paused.subscribe();
        while *paused.borrow_and_update() {
            self.waiting.fetch_add(1, Ordering::Relaxed);
            let _ = paused.changed().await;
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                self.waiting.fetch_add(1, Ordering::Relaxed);
                let r = tokio::time::timeout(timeout, self.permits.clone().acquire_owned()).await;
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                match r {
                    Ok(Ok(p)) => p,
                    _ => {
                        return Err(BackendError::CheckoutTimeout {
                            shard: self.target.shard.clone(),
                            ms: timeout.as_millis() as u64,
                        });
                    }
                }
            }
        };
        let conn = match self.take_idle() {
            Some(c) => c,
            None => self.open_new().await?,
        };
        Ok(Pooled {
            conn: Some(conn),
            pool: self.clone(),
            _permit: permit,
        })
    }

    /// What a client is told in ParameterStatus at login; connects once if no connection was made yet.
    pub(crate) async fn startup_params(
        self: &Arc<Self>,
        timeout: Duration,
    ) -> Result<Vec<(String, String)>, BackendError> {
        if let Some(p) = self.startup_params.lock().expect("pool lock").clone() {
            return Ok(p);
        }
        let pooled = self.checkout(timeout).await?;
        pooled.release();
        Ok(self
            .startup_params
            .lock()
            .expect("pool lock")
            .clone()
            .unwrap_or_default())
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let idle = self.idle.lock().expect("pool lock").len();
        let open = self.open.load(Ordering::Relaxed);
        PoolStats {
            idle,
            active: open.saturating_sub(idle),
            waiting: self.waiting.load(Ordering::Relaxed),
            max: self.config.max_size,
        }
    }

    /// One maintenance round: ping idle connections unused for a health interval, close surplus idle
    /// ones past the idle timeout, and open connections up to `min_size`.
    pub(crate) async fn maintain(self: &Arc<Self>) {
        let interval = Duration::from_millis(self.config.health_check_interval_ms);
        let idle_timeout = Duration::from_millis(self.config.server_idle_timeout_ms);
        let stale: Vec<ServerConn> = {
            let mut idle = self.idle.lock().expect("pool lock");
            let (stale, fresh): (VecDeque<_>, VecDeque<_>) = idle
                .drain(..)
                .partition(|c| c.last_used.elapsed() >= interval);
            *idle = fresh;
            stale.into()
        };
        for mut conn in stale {
            let surplus = self.open.load(Ordering::Relaxed) > self.config.min_size;
            let ok = !(surplus && conn.last_used.elapsed() >= idle_timeout)
                && matches!(
                    tokio::time::timeout(
                        self.connect_timeout(),
                        conn.simple(&self.target.shard, "")
                    )
                    .await,
                    Ok(Ok(None))
                );
            if ok {
                conn.last_used = Instant::now();
                self.idle.lock().expect("pool lock").push_front(conn);
            } else {
                self.open.fetch_sub(1, Ordering::Relaxed);
            }
        }
        while self.open.load(Ordering::Relaxed) < self.config.min_size {
            match self.open_new().await {
                Ok(conn) => self.idle.lock().expect("pool lock").push_front(conn),
                Err(e) => {
                    tracing::warn!(shard = %self.target.shard, error = %e, "could not refill the pool");
                    break;
                }
            }
        }
    }

    /// Maintains the pool until `stop` changes, backing off while the server is down.
    pub(crate) async fn run_maintenance(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let base = Duration::from_millis(self.config.health_check_interval_ms.clamp(50, 60_000));
        let mut backoff = Duration::from_millis(100);
        loop {
            self.maintain().await;
            let wait = if self.healthy.load(Ordering::Relaxed) {
                backoff = Duration::from_millis(100);
                base
            } else {
                backoff = (backoff * 2).min(Duration::from_secs(10));
                backoff
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
        }
    }

    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// How this shard's database orders text, asked of `conn` when not known or older than
    /// `TEXT_ORDER_TTL` (a column's collation changes with DDL). A probe that failed counts as "not
    /// bytewise" for this merge (refusing is the safe answer) and is asked again.
    pub(crate) async fn text_order(
        &self,
        conn: &mut ServerConn,
    ) -> Result<Arc<TextOrder>, BackendError> {
        if let Some((at, order)) = &*self.text_order.lock().unwrap_or_else(|p| p.into_inner())
            && at.elapsed() < TEXT_ORDER_TTL
        {
            return Ok(order.clone());
        }
        Ok(match conn.text_order(&self.target.shard).await? {
            Some(order) => {
                let order = Arc::new(order);
                *self.text_order.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((Instant::now(), order.clone()));
                order
            }
            None => Arc::new(TextOrder::default()),
        })
    }

    pub(crate) fn set_paused(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    pub(crate) fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// Idle connections as (server pid, seconds idle), for SHOW SERVERS.
    pub(crate) fn idle_servers(&self) -> Vec<(i32, u64)> {
        self.idle
            .lock()
            .expect("pool lock")
            .iter()
            .map(|c| (c.key.pid, c.last_used.elapsed().as_secs()))
            .collect()
    }

    /// Answers a trivial query on a fresh connection within the connect timeout (for /healthz).
    pub(crate) async fn probe(&self) -> bool {
        match ServerConn::connect(&self.target, self.connect_timeout()).await {
            Ok(mut c) => matches!(c.simple(&self.target.shard, "SELECT 1").await, Ok(None)),
            Err(_) => false,
        }
    }

    /// Closes every idle connection (on shutdown).
    pub(crate) fn close_idle(&self) {
        let n = {
            let mut idle = self.idle.lock().expect("pool lock");
            let n = idle.len();
            idle.clear();
            n
        };
        self.open.fetch_sub(n, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone)]
pub(crate) struct PoolStats {
    pub idle: usize,
    pub active: usize,
    pub waiting: usize,
    pub max: usize,
}
