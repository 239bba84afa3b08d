//! A private, throwaway PostgreSQL cluster for the tests: `initdb` and
//! `pg_ctl` from Debian's packages (or PATH), run as an unprivileged user
//! when the tests run as root (PostgreSQL refuses root), in a temporary
//! folder, listening on a free loopback port, with a password. Started
//! once per test binary; a watcher process stops it and removes the folder
//! when the test binary exits, however it exits. Every test gets a fresh
//! database of its own.
//!
//! Outside CI a machine without PostgreSQL skips these tests (saying so);
//! with `CI` set a missing PostgreSQL fails them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use herald::config::DatabaseLocation;
use herald::store::{OpenOptions, PgStore};
use sqlx::Connection;

use super::helpers::free_port;

pub const PASSWORD: &str = "herald-test-password";

pub struct Cluster {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    found.sort();
    if let Some(p) = found.pop() {
        return Some(p);
    }
    let which = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .ok()?;
    let path = String::from_utf8(which.stdout).ok()?;
    Path::new(path.trim()).parent().map(Path::to_path_buf)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `program args…`, as `nobody` when we are root.
fn as_db_user(program: &Path, args: &[&str]) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(program).args(args);
        c
    } else {
        let mut c = Command::new(program);
        c.args(args);
        c
    }
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start() -> Option<Cluster> {
    let Some(bin) = bin_dir() else {
        if std::env::var_os("CI").is_some() {
            panic!("PostgreSQL is not installed (.ci/run installs Debian's postgresql)");
        }
        eprintln!("SKIPPED: PostgreSQL is not installed (apt-get install postgresql)");
        return None;
    };
    let dir = std::env::temp_dir().join(format!("herald-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("pw"), PASSWORD).unwrap();
    if is_root() {
        run(
            {
                let mut c = Command::new("chown");
                c.args(["-R", "nobody"]).arg(&dir);
                c
            },
            "chown",
        );
    }
    let data = dir.join("data");
    let pw = dir.join("pw");
    run(
        as_db_user(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "herald",
                "--auth=scram-sha-256",
                "--pwfile",
                pw.to_str().unwrap(),
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        ),
        "initdb",
    );
    let port = free_port();
    let opts = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c max_connections=200 -c shared_buffers=64MB",
        dir.display()
    );
    run(
        as_db_user(
            &bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                dir.join("log").to_str().unwrap(),
                "-o",
                &opts,
                "-w",
                "start",
            ],
        ),
        "pg_ctl start",
    );
    // Stops the cluster when this test process is gone, whatever ended it.
    let stop = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {runuser}{pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        runuser = if is_root() { "runuser -u nobody -- " } else { "" },
        pg_ctl = bin.join("pg_ctl").display(),
        data = data.display(),
        dir = dir.display(),
    );
    // Never waited for: it outlives this process on purpose.
    #[allow(clippy::zombie_processes)]
    let _watcher = Command::new("sh")
        .args(["-c", &stop])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the cluster's watcher starts");
    Some(Cluster { port, dir, bin })
}

/// The cluster, started on first use; `None` when PostgreSQL is missing
/// outside CI.
pub fn cluster() -> Option<&'static Cluster> {
    CLUSTER.get_or_init(start).as_ref()
}

impl Cluster {
    pub fn url(&self, db: &str) -> url::Url {
        format!("postgres://herald@127.0.0.1:{}/{db}", self.port)
            .parse()
            .unwrap()
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new, empty database; its URL (without the password).
    pub async fn fresh_db(&self) -> url::Url {
        let name = format!("t{}", NEXT_DB.fetch_add(1, Ordering::SeqCst));
        let mut admin = sqlx::PgConnection::connect(&format!(
            "postgres://herald:{PASSWORD}@127.0.0.1:{}/postgres",
            self.port
        ))
        .await
        .expect("admin connection");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        self.url(&name)
    }

    pub fn location(&self, url: &url::Url) -> DatabaseLocation {
        DatabaseLocation::Postgres(url.clone())
    }
}

pub fn options() -> OpenOptions {
    OpenOptions {
        pool_size: 8,
        statement_timeout: std::time::Duration::from_secs(30),
        connect_timeout: std::time::Duration::from_secs(10),
        migrate: true,
        password: Some(PASSWORD.into()),
    }
}

/// A fresh database in the cluster, opened and migrated.
pub async fn fresh_store() -> Option<(PgStore, url::Url)> {
    let c = cluster()?;
    let url = c.fresh_db().await;
    let store = PgStore::open(&url, &options()).await.expect("opens");
    Some((store, url))
}
