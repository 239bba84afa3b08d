//! The crash test: `herald run` as a child process sends one digest run to
//! 5,000 subscribers through a real SMTP server, and is killed with
//! SIGKILL three times in the middle of it, then started again. Afterwards
//! the messages the server received are counted against the ledger:
//! nobody gets the run twice, everything recorded as sent arrived exactly
//! once, and every recipient that did not get it is accounted for as
//! `uncertain` (at most two batches per kill), which `herald digest retry
//! --uncertain` then sends.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use herald::store::{
    DeliveryState, Ledger, NewSubscription, SqliteStore, Store, SubscriberEmail, Subscribers,
};
use serde_json::json;

use super::helpers::{free_port, herald_command, wait_until, KillOnDrop, TestSite};
use super::smtp::SmtpServer;

const SUBSCRIBERS: usize = 5_000;
const BATCH: u64 = 50;
/// Kill when the server has accepted this many messages.
const KILL_AT: [u64; 3] = [600, 1_800, 3_200];

fn start_daemon(config: &Path, log: &Path) -> KillOnDrop {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    KillOnDrop(
        herald_command(config, &["run"])
            .env(
                "HERALD_LOG",
                std::env::var("CRASH_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("herald run starts"),
    )
}

/// `GET /readyz` answers 200 (HTTP/1.0 by hand: no client needed).
fn ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    if conn
        .write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).is_ok() && head.ends_with(b" 200")
}

#[test]
fn sigkill_during_a_run_to_5000_subscribers_never_duplicates_and_forgets_nobody() {
    crash_test(|config, _site| {
        herald_command(config, &["digest", "send", "--schedule", "news"])
            .output()
            .unwrap()
    });
}

/// The crash test on the run that `start` plans while the daemon runs
/// (its output names the run and says it was queued): SIGKILLs mid-run,
/// then the counts. Returns the site and the run's id for more checks.
pub(crate) fn crash_test(
    start: impl FnOnce(&Path, &TestSite) -> std::process::Output,
) -> Option<(TestSite, i64)> {
    let smtp = SmtpServer::start()?;
    let mut site = TestSite::new();
    let now = Utc::now();
    for (i, hours) in [3, 2, 1].iter().enumerate() {
        let date =
            (now - chrono::Duration::hours(*hours)).to_rfc3339_opts(SecondsFormat::Secs, true);
        site.write(
            &format!("a{i}.md"),
            format!("+++\ntitle = \"Article {i}\"\ndate = {date}\n+++\n\nText {i}.\n"),
        );
    }
    let port = free_port();
    site.extra = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
shutdown_grace = "10s"

[rescan]
watch = false

[mail]
transport = "smtp"
from = "Crash Test <news@example.org>"
batch_size = {BATCH}
queue_poll = "100ms"
retry_base = "100ms"
retry_max = "500ms"

[mail.smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
pool_size = 4
timeout = "10s"

[[digest]]
name = "news"
# Never fires by itself: the run is started from the command line.
schedule = "0 0 0 1 1 * 2099"
first_digest_articles = 3
"#,
        smtp_port = smtp.port()
    );
    let config = site.config_path();
    let db = site.config().database_path();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(&db).await.unwrap();
        let rows = (0..SUBSCRIBERS)
            .map(|i| NewSubscription {
                email: SubscriberEmail::parse(&format!("reader{i:05}@example.net")).unwrap(),
                name: None,
                schedules: vec!["news".into()],
                tags: vec![],
                at: now,
                ip: None,
                source: "import".into(),
                confirmed_note: Some("crash test".into()),
            })
            .collect();
        let counts = store.import(rows).await.unwrap();
        assert_eq!(counts.added, SUBSCRIBERS as u64);
        store.close().await;
    });
    // Slow the server a little so that the kills land mid-run.
    smtp.set_control(json!({"data_delay_ms": 2}));

    let log = site.dir.path().join("daemon.log");
    let mut daemon = start_daemon(&config, &log);
    let t0 = Instant::now();
    wait_until("the daemon is ready", Duration::from_secs(60), || {
        ready(port)
    });
    eprintln!("{:?}: daemon ready", t0.elapsed());
    // The daemon takes the send lock right after its first build.
    std::thread::sleep(Duration::from_millis(500));
    let out = start(&config, &site);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("queued"), "the daemon sends it: {said}");
    let run_id: i64 = said
        .split_whitespace()
        .nth(1)
        .and_then(|w| w.trim_end_matches(':').parse().ok())
        .unwrap_or_else(|| panic!("run id in {said}"));

    let started = Instant::now();
    for at in KILL_AT {
        wait_until(
            &format!("{at} messages arrived"),
            Duration::from_secs(120),
            || smtp.accepted() >= at,
        );
        eprintln!(
            "{:?}: SIGKILL after {} messages",
            started.elapsed(),
            smtp.accepted()
        );
        daemon.0.kill().unwrap(); // SIGKILL
        daemon.0.wait().unwrap();
        daemon = start_daemon(&config, &log);
    }
    let done = || {
        rt.block_on(async {
            let store = SqliteStore::open(&db).await.unwrap();
            let run = store.run(run_id).await.unwrap().unwrap();
            store.close().await;
            run.done
        })
    };
    wait_until("the run is finished", Duration::from_secs(180), done);
    eprintln!(
        "{:?}: run finished; server stats {}",
        started.elapsed(),
        smtp.stats()
    );
    // SIGTERM: a clean stop.
    let term = Command::new("kill")
        .args(["-TERM", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let exit = daemon.0.wait().unwrap();
    let daemon_log = std::fs::read_to_string(&log).unwrap_or_default();
    if std::env::var_os("CRASH_LOG").is_some() {
        eprintln!("{daemon_log}");
    }
    assert_eq!(exit.code(), Some(0), "{daemon_log}");

    let status = rt.block_on(async {
        let store = SqliteStore::open(&db).await.unwrap();
        let s = store.run_status(run_id).await.unwrap();
        store.close().await;
        s
    });
    let received = smtp.message_ids();
    let uncertain: BTreeSet<String> = status
        .problems
        .iter()
        .filter(|p| p.state == DeliveryState::Uncertain)
        .map(|p| p.email.clone())
        .collect();
    let sent = status.count(DeliveryState::Sent);
    eprintln!(
        "crash test: {sent} sent, {} uncertain, {} recipients received one copy",
        uncertain.len(),
        received.len()
    );
    assert_eq!(status.total(), SUBSCRIBERS as u64, "{status:?}");
    assert_eq!(
        sent + uncertain.len() as u64,
        SUBSCRIBERS as u64,
        "every recipient is sent or uncertain: {:?}",
        status.counts
    );
    assert!(
        uncertain.len() as u64 <= 2 * BATCH * KILL_AT.len() as u64,
        "at most two batches in flight per kill: {}",
        uncertain.len()
    );
    for (rcpt, ids) in &received {
        assert_eq!(ids.len(), 1, "{rcpt} received the run {} times", ids.len());
    }
    // Everything recorded as sent arrived; whatever did not arrive is
    // uncertain.
    for i in 0..SUBSCRIBERS {
        let rcpt = format!("reader{i:05}@example.net");
        if !received.contains_key(&rcpt) {
            assert!(
                uncertain.contains(&rcpt),
                "{rcpt} got nothing and is not uncertain"
            );
        }
    }
    let missing = SUBSCRIBERS - received.len();
    assert!(missing <= uncertain.len());

    // `herald digest status` accounts for everybody.
    let out = herald_command(&config, &["digest", "status", &run_id.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains(&format!("recipients: {SUBSCRIBERS}")),
        "{text}"
    );
    assert!(text.contains(&format!("sent: {sent}")), "{text}");
    if !uncertain.is_empty() {
        assert!(
            text.contains(&format!("uncertain: {}", uncertain.len())),
            "{text}"
        );
    }

    // The operator re-sends the uncertain ones: now everybody has it, and
    // the only duplicates are among them, under the same Message-ID.
    let out = herald_command(
        &config,
        &["digest", "retry", "--uncertain", &run_id.to_string()],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let received = smtp.message_ids();
    assert_eq!(received.len(), SUBSCRIBERS);
    for (rcpt, ids) in &received {
        if ids.len() > 1 {
            assert!(uncertain.contains(rcpt), "{rcpt} duplicated");
            assert!(ids.windows(2).all(|w| w[0] == w[1]), "{rcpt}: {ids:?}");
        }
    }
    Some((site, run_id))
}
