//! A throwaway PostgreSQL server for tests (and the ledger bench): `initdb` into a fresh temp
//! directory with trust auth, `postgres` on a free loopback port with a private socket
//! directory, fsync off. `stop()` and `start()` again on the same port and data, for outage
//! tests; stopped and its directory removed on drop.
//!
//! PostgreSQL refuses to run as root: under root, the server and `initdb` run as the
//! `postgres` user that Debian's package creates, and the directory is handed to it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a start may take before the test fails with the server's log.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct TestPostgres {
    pub port: u16,
    bin: PathBuf,
    dir: PathBuf,
    /// The `postgres` user's (uid, gid) when running as root.
    run_as: Option<(u32, u32)>,
    /// `name=value` server settings given at creation, over the test defaults.
    settings: Vec<String>,
    child: Option<Child>,
}

impl TestPostgres {
    /// A fresh server with a database named `ledger`.
    pub fn start_new() -> Self {
        Self::start_new_with(&[])
    }

    /// [`Self::start_new`] with `name=value` settings over the defaults (fsync is off for
    /// tests; the bench turns it back on).
    pub fn start_new_with(settings: &[&str]) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let bin = bindir();
        let dir = std::env::temp_dir().join(format!(
            "cheapai-pg-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sock")).expect("temp dir");
        let run_as = running_as_root().then(postgres_user);
        if run_as.is_some() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(status.success(), "chown {}", dir.display());
        }
        let mut server = Self {
            port: super::free_port(),
            bin,
            dir,
            run_as,
            settings: settings.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        let out = server
            .command("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "-D",
            ])
            .arg(server.data())
            .output()
            .expect("initdb runs (scripts/setup installs postgresql)");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        server.start();
        server.create_database("ledger");
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// A command of the server's binaries, as the `postgres` user under root.
    fn command(&self, name: &str) -> Command {
        let mut c = Command::new(self.bin.join(name));
        if let Some((uid, gid)) = self.run_as {
            c.uid(uid).gid(gid);
        }
        c.env("LC_ALL", "C");
        c
    }

    /// Starts the server (again, on the same port and data) and waits until it accepts
    /// connections.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("log file");
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(self.log(), Some(uid), Some(gid)).expect("chown log");
        }
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.dir.join("sock").display()
            ))
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=200", "-c", "shared_buffers=256MB"])
            .args(self.settings.iter().flat_map(|s| ["-c", s.as_str()]))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("postgres runs");
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.accepts_connections() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("postgres exited ({status}): {}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "postgres not ready in time: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn accepts_connections(&self) -> bool {
        self.command("pg_isready")
            .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Stops the server (fast shutdown: sessions are cut, nothing is lost) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// The URL of database `db` (trust auth: no password).
    pub fn url_of(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The URL of the `ledger` database.
    pub fn url(&self) -> String {
        self.url_of("ledger")
    }

    /// Creates database `db` and returns its URL.
    pub fn create_database(&self, db: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE {db}"));
        self.url_of(db)
    }

    /// Runs SQL with psql in database `db`; returns its unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self
            .command("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", db, "-c", sql])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The server binaries: `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin.
fn bindir() -> PathBuf {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(dir) = from_pg_config.filter(|d| d.join("initdb").exists()) {
        return dir;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("PostgreSQL server binaries (scripts/setup installs postgresql)")
}

fn running_as_root() -> bool {
    id(&["-u"]) == 0
}

fn postgres_user() -> (u32, u32) {
    (id(&["-u", "postgres"]), id(&["-g", "postgres"]))
}

fn id(args: &[&str]) -> u32 {
    let out = Command::new("id").args(args).output().expect("id runs");
    assert!(
        out.status.success(),
        "id {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("numeric id")
}
