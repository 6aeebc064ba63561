//! The two engines behind one small trait, at the same durability settings:
//! a non-sync write reaches the OS before it returns (survives a process
//! crash), a sync write is fdatasynced before it returns.

use std::path::Path;

pub trait Engine: Send + Sync {
    fn put(&self, key: &[u8], value: &[u8], sync: bool);
    fn get(&self, key: &[u8]) -> bool;
    /// Flushes memtables and waits for background compaction to go quiet.
    fn settle(&self);
    /// What the engine counts of its sync writes, if it does.
    fn sync_counts(&self) -> Option<SyncCounts>;
}

#[derive(Clone, Copy)]
pub struct SyncCounts {
    pub writes: u64,
    pub syncs: u64,
    /// Time spent in fdatasync.
    pub sync_micros: u64,
}

impl SyncCounts {
    pub fn per_sync(&self) -> f64 {
        self.writes as f64 / self.syncs.max(1) as f64
    }
    /// (average fdatasync in us, share of `secs` spent in one)
    pub fn sync_time(&self, secs: f64) -> (f64, f64) {
        let us = self.sync_micros as f64;
        (us / self.syncs.max(1) as f64, us / (secs * 1e6))
    }
}

pub struct Ours(pub shardgate::lsm::Db);

pub fn ours_options() -> shardgate::lsm::Options {
    shardgate::lsm::Options { wal_buffer_size: 0, ..shardgate::lsm::Options::default() }
}

pub fn open_ours(dir: &Path, opts: shardgate::lsm::Options) -> Ours {
    Ours(shardgate::lsm::Db::open(dir, opts).expect("open shardgate lsm"))
}

impl Engine for Ours {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) {
        self.0.put(key, value, shardgate::lsm::WriteOptions { sync }).expect("put");
    }
    fn get(&self, key: &[u8]) -> bool {
        self.0.get(key).expect("get").is_some()
    }
    fn settle(&self) {
        self.0.flush().expect("flush");
        self.0.wait_idle().expect("wait idle");
    }
    fn sync_counts(&self) -> Option<SyncCounts> {
        let s = self.0.stats();
        Some(SyncCounts { writes: s.sync_writes, syncs: s.wal_syncs, sync_micros: s.wal_sync_micros })
    }
}

pub struct Fjall {
    pub db: fjall::Database,
    pub ks: fjall::Keyspace,
}

pub fn open_fjall(dir: &Path, memtable: u64) -> Fjall {
    let db = fjall::Database::builder(dir)
        .cache_size(64 << 20)
        .max_journaling_size(2 << 30)
        .open()
        .expect("open fjall");
    let ks = db
        .keyspace("bench", || fjall::KeyspaceCreateOptions::default().max_memtable_size(memtable))
        .expect("fjall keyspace");
    Fjall { db, ks }
}

impl Engine for Fjall {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) {
        self.ks.insert(key, value).expect("fjall insert");
        if sync {
            self.db.persist(fjall::PersistMode::SyncData).expect("fjall persist");
        }
    }
    fn get(&self, key: &[u8]) -> bool {
        self.ks.get(key).expect("fjall get").is_some()
    }
    fn settle(&self) {
        self.ks.rotate_memtable_and_wait().expect("fjall flush");
        let mut quiet = 0;
        while quiet < 20 {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let busy = self.db.outstanding_flushes() > 0 || self.db.active_compactions() > 0;
            quiet = if busy { 0 } else { quiet + 1 };
        }
    }
    fn sync_counts(&self) -> Option<SyncCounts> {
        None
    }
}
