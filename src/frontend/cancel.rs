//! Cancel keys: shardgate issues each client its own key, and forwards a CancelRequest bearing it to the
//! servers that client holds at that moment (one, or every shard of a fan-out or scatter-gather). The
//! slot's lock is held while a cancel is being delivered, and a session takes the same lock before it
//! gives its server back, so a cancel can never land on a server that already serves another client.
//! A cancel that failed or timed out may still land later: its server is marked and closed, not reused.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::backend::server::ServerConn;
use crate::protocol::startup::CancelKey;

/// The server a client is using right now, as a cancel must address it.
#[derive(Debug, Clone)]
pub(crate) struct ServerKey {
    pub addr: SocketAddr,
    pub key: CancelKey,
    /// The server's mark for a cancel in doubt (`ServerConn::cancel_in_doubt`).
    in_doubt: Arc<AtomicBool>,
}

impl ServerKey {
    /// Where a client's cancel must go to reach this server.
    pub(crate) fn of(conn: &ServerConn) -> ServerKey {
        ServerKey {
            addr: conn.addr,
            key: conn.key,
            in_doubt: conn.cancel_in_doubt.clone(),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Slot {
    servers: tokio::sync::Mutex<Vec<ServerKey>>,
}

impl Slot {
    pub(crate) async fn attach(&self, s: ServerKey) {
        self.attach_all([s]).await;
    }

    /// The servers of a statement running on several shards. (The list keeps its allocation from
    /// one transaction to the next.)
    pub(crate) async fn attach_all(&self, servers: impl IntoIterator<Item = ServerKey>) {
        let mut held = self.servers.lock().await;
        held.clear();
        held.extend(servers);
    }

    /// Waits for any cancel in flight, then forgets the servers.
    pub(crate) async fn detach(&self) {
        self.servers.lock().await.clear();
    }
}

#[derive(Debug, Default)]
pub(crate) struct Registry {
    slots: Mutex<HashMap<CancelKey, Arc<Slot>>>,
}

/// Removes the client's key when its session ends.
pub(crate) struct Registration<'a> {
    registry: &'a Registry,
    pub key: CancelKey,
    pub slot: Arc<Slot>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.registry
            .slots
            .lock()
            .expect("cancel lock")
            .remove(&self.key);
    }
}

impl Registry {
    pub(crate) fn register(&self) -> Registration<'_> {
        let mut slots = self.slots.lock().expect("cancel lock");
        loop {
            let key = CancelKey {
                pid: rand::random::<i32>() & i32::MAX,
                secret: rand::random(),
            };
            if let std::collections::hash_map::Entry::Vacant(e) = slots.entry(key) {
                let slot = Arc::new(Slot::default());
                e.insert(slot.clone());
                return Registration {
                    registry: self,
                    key,
                    slot,
                };
            }
        }
    }

    /// Delivers a client's cancel to its servers, if it holds any. Unknown keys are ignored silently,
    /// as PostgreSQL does.
    pub(crate) async fn cancel(&self, key: CancelKey) {
        let Some(slot) = self.slots.lock().expect("cancel lock").get(&key).cloned() else {
            tracing::info!("cancel request with an unknown key ignored");
            return;
        };
        let guard = slot.servers.lock().await;
        let sends = guard.iter().map(|server| async move {
            let sent =
                tokio::time::timeout(Duration::from_secs(5), send_cancel(server)).await;
            if let Err(e) = sent.unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "cancel timed out",
                ))
            }) {
                // Set before the slot's lock is let go, so before the server can be given back.
                server.in_doubt.store(true, Ordering::Release);
                tracing::warn!(error = %e, "could not forward a cancel request; its server will be closed");
            }
        });
        futures_util::future::join_all(sends).await;
    }
}

/// Sends a CancelRequest (55.7) and waits until the postmaster closes the connection, which it does after
/// signalling the backend.
pub(crate) async fn send_cancel(server: &ServerKey) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(server.addr).await?;
    let mut buf = BytesMut::new();
    postgres_protocol::message::frontend::cancel_request(
        server.key.pid,
        server.key.secret,
        &mut buf,
    );
    stream.write_all(&buf).await?;
    let mut sink = [0u8; 64];
    while stream.read(&mut sink).await? > 0 {}
    Ok(())
}
