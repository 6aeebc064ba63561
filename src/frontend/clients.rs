//! The live client sessions, for SHOW CLIENTS and SHOW SERVERS. Each session updates its own entry with
//! atomics; the map itself changes only at login and logout.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum ClientState {
    Idle = 0,
    Waiting = 1,
    Active = 2,
}

impl ClientState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ClientState::Idle => "idle",
            ClientState::Waiting => "waiting",
            ClientState::Active => "active",
        }
    }
}

#[derive(Debug)]
pub(crate) struct ClientInfo {
    pub id: u64,
    pub user: String,
    pub peer: Option<SocketAddr>,
    pub connected: Instant,
    state: AtomicU8,
    /// Index of the shard it holds a server of, and that server's pid; 0 pid means none.
    server_shard: AtomicI32,
    server_pid: AtomicI32,
}

impl ClientInfo {
    pub(crate) fn set(&self, state: ClientState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }

    pub(crate) fn state(&self) -> ClientState {
        match self.state.load(Ordering::Relaxed) {
            1 => ClientState::Waiting,
            2 => ClientState::Active,
            _ => ClientState::Idle,
        }
    }

    pub(crate) fn set_server(&self, shard: usize, pid: i32) {
        self.server_shard.store(shard as i32, Ordering::Relaxed);
        self.server_pid.store(pid, Ordering::Relaxed);
    }

    /// (shard index, server pid) while the client holds a server.
    pub(crate) fn server(&self) -> Option<(usize, i32)> {
        let pid = self.server_pid.load(Ordering::Relaxed);
        (pid != 0).then(|| (self.server_shard.load(Ordering::Relaxed) as usize, pid))
    }
}

#[derive(Debug, Default)]
pub(crate) struct Clients {
    map: Mutex<BTreeMap<u64, Arc<ClientInfo>>>,
}

/// Removes the entry when the session ends.
pub(crate) struct Entry<'a> {
    clients: &'a Clients,
    pub info: Arc<ClientInfo>,
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        self.clients
            .map
            .lock()
            .expect("clients lock")
            .remove(&self.info.id);
    }
}

impl Clients {
    pub(crate) fn add(&self, id: u64, user: &str, peer: Option<SocketAddr>) -> Entry<'_> {
        let info = Arc::new(ClientInfo {
            id,
            user: user.to_owned(),
            peer,
            connected: Instant::now(),
            state: AtomicU8::new(0),
            server_shard: AtomicI32::new(0),
            server_pid: AtomicI32::new(0),
        });
        self.map
            .lock()
            .expect("clients lock")
            .insert(id, info.clone());
        Entry {
            clients: self,
            info,
        }
    }

    pub(crate) fn all(&self) -> Vec<Arc<ClientInfo>> {
        self.map
            .lock()
            .expect("clients lock")
            .values()
            .cloned()
            .collect()
    }
}
