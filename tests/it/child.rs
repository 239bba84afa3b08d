//! `herald run` as a child process on a loopback port, for the tests that
//! need a process of its own: its file descriptors counted from `/proc`,
//! its own soft fd limit, real signals. Plus clients that are slow on
//! purpose.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{free_port, KillOnDrop, TestSite};

pub struct Daemon {
    proc: KillOnDrop,
    log: PathBuf,
    pub port: u16,
}

impl Daemon {
    /// Starts `herald run` with the site's config (its `server.listen`
    /// replaced by a free port), with the soft open-file limit set to
    /// `soft_nofile` first when given, as `ulimit -Sn` would.
    pub fn start(site: &TestSite, soft_nofile: Option<u64>) -> Daemon {
        let port = free_port();
        let config = site.config_path();
        let log = site.dir.path().join(format!("herald-{port}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let bin = env!("CARGO_BIN_EXE_herald");
        let mut cmd = match soft_nofile {
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -Sn {n} && exec \"$0\" \"$@\""))
                    .arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.args(["run", "--config"]).arg(&config);
        for (k, _) in std::env::vars() {
            if k.starts_with("HERALD_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("HERALD_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("HERALD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file));
        Daemon {
            proc: KillOnDrop(cmd.spawn().expect("herald run starts")),
            log,
            port,
        }
    }

    pub fn pid(&self) -> u32 {
        self.proc.0.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (at most 30 s) until `/readyz` answers 200.
    pub async fn wait_ready(&mut self) {
        let client = plain_client();
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.proc.0.try_wait() {
                panic!(
                    "herald exited ({status}) before it was ready:\n{}",
                    self.log()
                );
            }
            if let Ok(r) = client.get(self.url("/readyz")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "not ready within 30 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name}");
    }

    /// Waits for the exit, at most `limit`; the status and how long it took.
    pub async fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.proc.0.try_wait().unwrap() {
                return (status, start.elapsed());
            }
            assert!(
                start.elapsed() < limit,
                "still running {limit:?} after the signal:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The daemon's open sockets (its listener and connections among them).
    pub fn sockets(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|fds| {
                fds.filter_map(|e| e.ok())
                    .filter_map(|e| std::fs::read_link(e.path()).ok())
                    .filter(|target| target.to_string_lossy().starts_with("socket:"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// The text of `/metrics`.
    pub async fn metrics(&self) -> String {
        plain_client()
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("the metrics page")
    }

    /// The "Max open files" line of `/proc/<pid>/limits`: (soft, hard).
    pub fn open_file_limits(&self) -> (String, String) {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.pid())).unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .expect("Max open files line");
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields[3].to_string(), fields[4].to_string())
    }
}

/// Adds `email` to `store` as an active subscriber of `schedule`, as the
/// operator's `subscribers add --confirmed` would; its id.
pub async fn add_active(store: &herald::store::SqliteStore, email: &str, schedule: &str) -> i64 {
    use herald::store::{NewSubscription, SubscribeOutcome, SubscriberEmail, Subscribers};
    let outcome = store
        .subscribe(NewSubscription {
            email: SubscriberEmail::parse(email).unwrap(),
            name: None,
            schedules: vec![schedule.into()],
            tags: vec![],
            at: chrono::Utc::now(),
            ip: None,
            source: "cli".into(),
            confirmed_note: Some("added by the test".into()),
        })
        .await
        .unwrap();
    match outcome {
        SubscribeOutcome::Active(s) => s.id,
        other => panic!("{email} is not new: {other:?}"),
    }
}

/// A client without proxies or pooling surprises.
pub fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// The test process's own soft fd limit raised, for holding thousands of
/// client sockets; `false` when the hard limit does not allow `need`.
pub fn enough_fds(need: u64) -> bool {
    let got = rlimit::increase_nofile_limit(need + 256).unwrap_or(0);
    got >= need + 256
}

/// `n` clients that each connect, send a request head's first line and
/// then one more byte every `every`, never finishing it. Each resolves
/// with the time from its connect until the server closed it, or `None`
/// when it was still open after `give_up`.
pub async fn slow_header_clients(
    port: u16,
    n: usize,
    every: Duration,
    give_up: Duration,
) -> Vec<tokio::task::JoinHandle<Option<Duration>>> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let start = Instant::now();
        clients.push(tokio::spawn(async move {
            if stream
                .write_all(b"GET /atom.xml HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
                .await
                .is_err()
            {
                return Some(start.elapsed());
            }
            let mut buf = [0u8; 1024];
            loop {
                if start.elapsed() > give_up {
                    return None;
                }
                tokio::select! {
                    read = stream.read(&mut buf) => match read {
                        // The server closed (perhaps after an error reply).
                        Ok(0) | Err(_) => return Some(start.elapsed()),
                        Ok(_) => {}
                    },
                    () = tokio::time::sleep(every) => {
                        if stream.write_all(b"a").await.is_err() {
                            return Some(start.elapsed());
                        }
                    }
                }
            }
        }));
    }
    clients
}

/// `n` connections that say nothing at all, held until dropped.
pub async fn silent_clients(port: u16, n: usize) -> Vec<TcpStream> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(
            TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect"),
        );
    }
    out
}

/// Whether the server has closed `stream` (a read sees EOF or an error
/// at once).
pub async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_millis(20), stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

/// One value from a text exposition: the sample line `name` (with its
/// labels as written) or 0.
pub fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}
