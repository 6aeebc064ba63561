//! Throwaway PostgreSQL clusters on loopback ports, run as the `postgres` user, stopped when the test
//! process exits (parent-death signal), data under the cargo target tmp dir.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub struct Cluster {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

/// The directory holding initdb, postgres, pgbench and psql (the newest installed major version).
pub fn bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed under /usr/lib/postgresql")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").exists())
        .collect();
    dirs.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    dirs.pop().expect("a PostgreSQL server binary")
}

fn postgres_ids() -> (u32, u32) {
    let out = Command::new("id")
        .args(["-u", "postgres"])
        .output()
        .expect("id");
    let uid = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("postgres uid");
    let out = Command::new("id")
        .args(["-g", "postgres"])
        .output()
        .expect("id");
    let gid = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("postgres gid");
    (uid, gid)
}

fn as_postgres(cmd: &mut Command) -> &mut Command {
    let (uid, gid) = postgres_ids();
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Removes data dirs left by test runs whose process is gone.
fn sweep(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid: i32 = name
            .split('-')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if pid > 0 && unsafe { libc::kill(pid, 0) } != 0 {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

const HBA: &str = "\
host all sg_md5 127.0.0.1/32 md5
host all sg_scram 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
local all all trust
";

impl Cluster {
    /// Starts a new cluster; it lives until dropped or until the test process ends.
    pub fn start() -> Cluster {
        static N: AtomicU32 = AtomicU32::new(0);
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pg");
        std::fs::create_dir_all(&root).unwrap();
        sweep(&root);
        let dir = root.join(format!(
            "{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (uid, gid) = postgres_ids();
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        let data = dir.join("data");
        let st = as_postgres(&mut Command::new(bin().join("initdb")))
            .args([
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .stdout(Stdio::null())
            .status()
            .expect("initdb");
        assert!(st.success(), "initdb failed");
        std::fs::write(data.join("pg_hba.conf"), HBA).unwrap();
        let port = free_port();
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\nmax_connections = 300\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nshared_buffers = 64MB\n",
            dir.display()
        );
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        std::io::Write::write_all(&mut f, conf.as_bytes()).unwrap();
        let child = spawn_postgres(&data, &dir.join("log"));
        let c = Cluster {
            port,
            dir,
            child: Some(child),
        };
        c.wait_ready();
        c.psql(
            "postgres",
            "SET password_encryption = 'md5'; CREATE ROLE sg_md5 LOGIN SUPERUSER PASSWORD 'md5pw';",
        );
        c.psql("postgres", "SET password_encryption = 'scram-sha-256'; CREATE ROLE sg_scram LOGIN SUPERUSER PASSWORD 'scrampw';");
        c
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let ok = Command::new(bin().join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("postgres on port {} did not start", self.port);
    }

    /// Runs SQL with psql directly against the cluster; returns unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(bin().join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .args(["-p", &self.port.to_string(), "-d", db, "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A fresh database for one test.
    pub fn create_db(&self, prefix: &str) -> String {
        self.create_db_with(prefix, "")
    }

    /// A new database created with `options` (e.g. a locale provider).
    pub fn create_db_with(&self, prefix: &str, options: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("{prefix}_{}", N.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name} {options}"));
        name
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            unsafe { libc::kill(c.id() as i32, libc::SIGQUIT) };
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Spawns postgres from a thread that lives as long as the process, because the parent-death signal
/// fires when the spawning *thread* exits.
fn spawn_postgres(data: &Path, log: &Path) -> Child {
    let (tx, rx) = std::sync::mpsc::channel();
    let (data, log) = (data.to_owned(), log.to_owned());
    std::thread::spawn(move || {
        let logfile = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(bin().join("postgres"));
        as_postgres(&mut cmd)
            .args(["-D", data.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(logfile);
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT);
                Ok(())
            });
        }
        tx.send(cmd.spawn().expect("spawn postgres")).unwrap();
        loop {
            std::thread::park();
        }
    });
    rx.recv().unwrap()
}

/// The cluster shared by every test of this run.
pub fn shared() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::start)
}
