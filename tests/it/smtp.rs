//! A real SMTP server on loopback for the mail tests: `tests/smtp_server.py`
//! (Python, aiosmtpd) as a child process whose replies a test steers
//! through a JSON control file. Killed when dropped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::helpers::repo_root;

const READY_WITHIN: Duration = Duration::from_secs(20);

pub struct SmtpServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    /// Extra options of `tests/smtp_server.py` (`--smtputf8`, `--auth`).
    options: Vec<&'static str>,
    /// Certificate and key files for STARTTLS.
    tls: Option<(PathBuf, PathBuf)>,
}

impl SmtpServer {
    /// Starts the server on a free port. Without aiosmtpd: `None` and a
    /// SKIPPED message, except in CI (`CI` set), where it panics.
    pub fn start() -> Option<SmtpServer> {
        SmtpServer::start_configured(&[], None)
    }

    /// [`SmtpServer::start`] with options of `tests/smtp_server.py`:
    /// `--smtputf8` (offer SMTPUTF8), `--auth` (offer AUTH, record logins
    /// for [`SmtpServer::logins`]).
    pub fn start_with(options: &[&'static str]) -> Option<SmtpServer> {
        SmtpServer::start_configured(options, None)
    }

    /// Starts a server that offers STARTTLS with the certificate (chain)
    /// and key in these PEM files; see [`SmtpServer::start`].
    pub fn start_with_tls(tls: Option<(PathBuf, PathBuf)>) -> Option<SmtpServer> {
        SmtpServer::start_configured(&[], tls)
    }

    fn start_configured(
        options: &[&'static str],
        tls: Option<(PathBuf, PathBuf)>,
    ) -> Option<SmtpServer> {
        if !aiosmtpd_available() {
            if std::env::var_os("CI").is_some() {
                panic!("aiosmtpd is not installed (python3 -m pip install aiosmtpd); CI must run the SMTP tests");
            }
            eprintln!("SKIPPED: Python's aiosmtpd is not installed (pip install aiosmtpd); SMTP test not run");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = SmtpServer {
            dir,
            port: 0,
            child: None,
            options: options.to_vec(),
            tls,
        };
        server.spawn(0);
        Some(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where received messages (`<seq>-<rcpt>.eml`) and `stats.json` are.
    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn control_path(&self) -> PathBuf {
        self.dir.path().join("control.json")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The server's stderr so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self, port: u16) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("server log");
        let mut cmd = Command::new("python3");
        cmd.arg(repo_root().join("tests/smtp_server.py"))
            .args(["--port", &port.to_string()])
            .arg("--store")
            .arg(self.store())
            .arg("--control")
            .arg(self.control_path())
            .args(&self.options);
        if let Some((cert, key)) = &self.tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start python3 tests/smtp_server.py");
        let stdout = child.stdout.take().expect("piped stdout");
        self.child = Some(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(p) = line.strip_prefix("READY ") {
                        self.port = p.trim().parse().expect("READY <port>");
                        return;
                    }
                }
                Err(_) => panic!(
                    "the SMTP test server did not say READY within {READY_WITHIN:?}; its log:\n{}",
                    self.log()
                ),
            }
        }
    }

    /// Stops the server: connections to its port are refused until
    /// [`SmtpServer::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same store, after
    /// [`SmtpServer::stop`]. Counters in `stats.json` carry on.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart() needs stop() first");
        let port = self.port;
        self.spawn(port);
        assert_eq!(self.port, port, "restarted on another port");
    }

    /// Every stored message as (recipient, raw bytes), in arrival order.
    pub fn messages(&self) -> Vec<(String, Vec<u8>)> {
        let mut names: Vec<String> = std::fs::read_dir(self.store())
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.') && n.ends_with(".eml"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
            .into_iter()
            .map(|name| {
                let rcpt = name
                    .trim_end_matches(".eml")
                    .split_once('-')
                    .map(|(_, r)| r.to_string())
                    .unwrap_or_default();
                let bytes = std::fs::read(self.store().join(&name)).expect("stored message");
                (rcpt, bytes)
            })
            .collect()
    }

    /// Replaces the control file (see `tests/smtp_server.py`); the server
    /// reads it at the next connection or command, and counts "first N"
    /// failures afresh from then on.
    pub fn set_control(&self, control: serde_json::Value) {
        write_atomically(
            &self.control_path(),
            serde_json::to_vec_pretty(&control).unwrap().as_slice(),
        );
    }

    /// The (login, password) of every AUTH so far, with `--auth`.
    pub fn logins(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(self.store().join("auth.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: serde_json::Value =
                    serde_json::from_str(l).expect("auth.jsonl is JSON lines");
                (
                    v["login"].as_str().unwrap_or_default().to_string(),
                    v["password"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Messages accepted so far (0 before the first): read while the
    /// server runs, so a half-written stats file counts as nothing yet.
    pub fn accepted(&self) -> u64 {
        std::fs::read(self.store().join("stats.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["messages_accepted"].as_u64())
            .unwrap_or(0)
    }

    /// The Message-IDs received, by recipient.
    pub fn message_ids(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut by: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (rcpt, raw) in self.messages() {
            let parsed = mail_parser::MessageParser::default()
                .parse(&raw)
                .expect("parses");
            let id = parsed.message_id().expect("Message-ID").to_string();
            by.entry(rcpt).or_default().push(id);
        }
        by
    }

    /// The server's counters: connections, messages_accepted,
    /// recipients_accepted, temp_failures, rejects, dropped.
    /// The envelope sender (MAIL FROM) of each message, by recipient, in
    /// the order received.
    pub fn envelope_senders(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        let text =
            std::fs::read_to_string(self.store().join("envelopes.jsonl")).unwrap_or_default();
        let mut out = std::collections::BTreeMap::<String, Vec<String>>::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("envelope JSON");
            let from = v["from"].as_str().unwrap_or("").to_string();
            for to in v["to"].as_array().into_iter().flatten() {
                out.entry(to.as_str().unwrap_or("").to_lowercase())
                    .or_default()
                    .push(from.clone());
            }
        }
        out
    }

    pub fn stats(&self) -> serde_json::Value {
        let text = std::fs::read(self.store().join("stats.json")).expect("stats.json");
        serde_json::from_slice(&text).expect("stats.json is JSON")
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn aiosmtpd_available() -> bool {
    Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}
