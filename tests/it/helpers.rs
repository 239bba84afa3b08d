//! Shared test helpers: a temporary site (content, feeds and data
//! directories plus a config), running builds through the library or the
//! real binary, the shared corpora, and Python's feedparser.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use herald::cli::site::{build, BuildOptions, BuildOutcome};
use herald::config::Config;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/corpus/<name>`, or `None` (with a message saying the test is
/// skipped) when the checkout has no shared corpus beside it.
pub fn shared_corpus(name: &str) -> Option<PathBuf> {
    let p = repo_root().join("../shared/corpus").join(name);
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!(
            "SKIPPED: shared corpus {} is absent (it sits beside the repository in CI)",
            p.display()
        );
        None
    }
}

/// A site in a temporary directory.
pub struct TestSite {
    pub dir: tempfile::TempDir,
    pub content: PathBuf,
    pub feeds: PathBuf,
    pub data: PathBuf,
    /// Extra TOML appended to the generated config (sections such as
    /// `[feeds]` may be given in full here; do not repeat a section the
    /// base config already has, see `base_config`).
    pub extra: String,
    /// Top-level keys (`templates_dir = …`), written before any section.
    pub top: String,
    /// Content directory override (for building a shared corpus in place).
    pub content_override: Option<PathBuf>,
    pub feeds_section: String,
}

impl TestSite {
    pub fn new() -> TestSite {
        let dir = tempfile::tempdir().expect("temp dir");
        let content = dir.path().join("content");
        std::fs::create_dir_all(&content).unwrap();
        TestSite {
            feeds: dir.path().join("feeds"),
            data: dir.path().join("data"),
            content,
            dir,
            extra: String::new(),
            top: String::new(),
            content_override: None,
            feeds_section: String::new(),
        }
    }

    /// A site whose content directory is `content` (read only).
    pub fn over(content: &Path) -> TestSite {
        let mut s = TestSite::new();
        s.content_override = Some(content.to_path_buf());
        s
    }

    pub fn content_dir(&self) -> &Path {
        self.content_override.as_deref().unwrap_or(&self.content)
    }

    /// Writes `text` to `rel` under the content directory.
    pub fn write(&self, rel: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let p = self.content.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// The config text: site section, content dir, feeds dir, plus
    /// `feeds_section` lines inside `[feeds]` and `extra` at the end.
    pub fn config_text(&self) -> String {
        format!(
            r#"data_dir = {data:?}
{top}

[site]
title = "Test Site"
description = "A site for tests"
base_url = "https://example.org/"
author = {{ name = "Site Author" }}

[content]
dir = {content:?}

[feeds]
dir = {feeds:?}
{feeds_section}

{extra}
"#,
            data = self.data.display().to_string(),
            top = self.top,
            content = self.content_dir().display().to_string(),
            feeds = self.feeds.display().to_string(),
            feeds_section = self.feeds_section,
            extra = self.extra,
        )
    }

    pub fn config_path(&self) -> PathBuf {
        let p = self.dir.path().join("herald.toml");
        std::fs::write(&p, self.config_text()).unwrap();
        p
    }

    pub fn config(&self) -> Config {
        Config::parse(&self.config_text()).expect("test config parses")
    }

    /// Builds through the library, writing feeds.
    pub fn build(&self) -> BuildOutcome {
        build(
            &self.config(),
            BuildOptions {
                write: true,
                now: chrono::Utc::now(),
            },
        )
        .expect("build runs")
    }

    /// Runs the real `herald` binary with `args` and this site's config.
    pub fn cli(&self, args: &[&str]) -> Output {
        herald_command(&self.config_path(), args)
            .output()
            .expect("herald runs")
    }

    pub fn feed(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.feeds.join(rel)).unwrap_or_else(|e| panic!("feed {rel}: {e}"))
    }
}

/// Parses feed files with Python's feedparser (`tests/feedparser_check.py`)
/// and returns its JSON report, one object per file. Returns `None` (after
/// saying so) when python3 or feedparser is missing outside CI; in CI
/// (`CI` set) a missing feedparser fails the test.
pub fn feedparser(files: &[PathBuf]) -> Option<serde_json::Value> {
    let script = repo_root().join("tests/feedparser_check.py");
    let out = Command::new("python3").arg(&script).args(files).output();
    match out {
        Ok(o) if o.status.success() => {
            Some(serde_json::from_slice(&o.stdout).expect("feedparser_check.py prints JSON"))
        }
        Ok(o) if o.status.code() == Some(3) && std::env::var_os("CI").is_none() => {
            eprintln!(
                "SKIPPED feedparser checks: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            None
        }
        Ok(o) => panic!(
            "feedparser_check.py failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED feedparser checks: python3 not runnable: {e}");
            None
        }
        Err(e) => panic!("python3 not runnable in CI: {e}"),
    }
}

/// Polls `check` until it holds, for at most 30 s (a bound on a hung test,
/// not a speed assertion).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

/// `herald run` in this process on a free loopback port: its base URL, the
/// shutdown that stops it, and the task to await for its result.
pub async fn spawn_daemon(
    config: Config,
) -> (
    String,
    herald::base::shutdown::Shutdown,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = herald::base::shutdown::Shutdown::new();
    let runtime = herald::daemon::Runtime {
        clock: std::sync::Arc::new(herald::base::clock::SystemClock),
        shutdown: shutdown.clone(),
    };
    let task = tokio::spawn(herald::daemon::run(config, listener, runtime));
    (base, shutdown, task)
}

/// A child process that is killed when the guard is dropped, so that a
/// failing test does not leave a daemon running.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The real `herald` binary with `args` and `--config config`, without the
/// `HERALD_…` variables of the environment the tests run in.
pub fn herald_command(config: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.args(args).arg("--config").arg(config);
    for (k, _) in std::env::vars() {
        if k.starts_with("HERALD_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `herald run` (the real binary) for `site` on a free loopback port,
/// once it accepts connections: the process (killed when dropped) and the
/// port. `[server]` and `[rescan]` (no file watching) are added to the
/// site's `extra`, which must not have them already.
pub fn start_herald(site: &mut TestSite) -> (KillOnDrop, u16) {
    let port = free_port();
    site.extra.push_str(&format!(
        "\n[server]\nlisten = \"127.0.0.1:{port}\"\n[rescan]\nwatch = false\n"
    ));
    let mut daemon = KillOnDrop(
        herald_command(&site.config_path(), &["run"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("herald run starts"),
    );
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(daemon.0.try_wait().unwrap().is_none(), "herald run stopped");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "herald run does not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    (daemon, port)
}

/// One finding of the W3C feed validator.
#[derive(Debug, Clone)]
pub struct ValidatorEvent {
    pub file: String,
    pub level: String,
    pub class: String,
    pub line: Option<u64>,
    pub text: String,
}

/// Runs the W3C Feed Validator (`../shared/tools/validate-feed`, offline)
/// on each `(file, self URL)` and returns every error and warning. `None`
/// (after saying so) when the tool or its `html5lib` is missing outside
/// CI; in CI (`CI` set) that fails the test.
pub fn validate_feeds(files: &[(PathBuf, String)]) -> Option<Vec<ValidatorEvent>> {
    let tool = repo_root().join("../shared/tools/validate-feed");
    let missing = |why: String| {
        if std::env::var_os("CI").is_some() {
            panic!("the W3C feed validator cannot run in CI: {why}");
        }
        eprintln!("SKIPPED validator checks: {why}");
        None
    };
    if !tool.is_file() {
        return missing(format!("{} is absent", tool.display()));
    }
    match Command::new("python3")
        .args(["-c", "import html5lib"])
        .output()
    {
        Ok(o) if o.status.success() => {}
        Ok(_) => {
            return missing("python module html5lib is not installed (pip install html5lib)".into())
        }
        Err(e) => return missing(format!("python3 not runnable: {e}")),
    }
    let mut events = Vec::new();
    for (file, self_url) in files {
        let out = Command::new("python3")
            .arg(&tool)
            .arg(file)
            .args(["--self", self_url, "--json", "--max-bytes", "50000000"])
            .output()
            .expect("python3 runs");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "validate-feed {}: no JSON ({e}): {}",
                file.display(),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        for e in report["events"].as_array().expect("events") {
            events.push(ValidatorEvent {
                file: file.display().to_string(),
                level: e["level"].as_str().unwrap_or("").to_string(),
                class: e["class"].as_str().unwrap_or("").to_string(),
                line: e["line"].as_u64(),
                text: e["text"].as_str().unwrap_or("").to_string(),
            });
        }
    }
    Some(events)
}

/// Waits (bounded, not a speed assertion) until `check` holds, from a
/// plain thread.
pub fn wait_until(what: &str, limit: std::time::Duration, mut check: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "timed out waiting until {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Active subscribers (consent given elsewhere, source `import`):
/// `(address, schedules, tags)`.
pub async fn add_active(store: &dyn herald::store::Store, rows: &[(&str, &[&str], &[&str])]) {
    let rows = rows
        .iter()
        .map(|(email, schedules, tags)| herald::store::NewSubscription {
            email: herald::store::SubscriberEmail::parse(email).unwrap(),
            name: None,
            schedules: schedules.iter().map(|s| s.to_string()).collect(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            at: chrono::Utc::now(),
            ip: None,
            source: "import".into(),
            confirmed_note: Some("added by a test".into()),
        })
        .collect::<Vec<_>>();
    let n = rows.len() as u64;
    assert_eq!(store.import(rows).await.unwrap().added, n);
}

/// [`add_active`] into the SQLite database at `db`, from a plain thread.
pub fn import_active(db: &Path, rows: &[(&str, &[&str], &[&str])]) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = herald::store::SqliteStore::open(db).await.unwrap();
        add_active(&store, rows).await;
        herald::store::Store::close(&store).await;
    });
}
