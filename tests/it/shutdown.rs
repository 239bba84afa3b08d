//! One deadline for the whole stop: SIGTERM to the real binary while it
//! sends a digest through a deliberately slow SMTP server (4 s per
//! message) and 500 clients trickle request heads at it. herald must exit
//! 0 within `server.shutdown_grace`, with every delivery either sent,
//! recorded uncertain (cut off in flight) or still pending; a restart
//! sends the pending ones, nobody gets the digest twice.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use herald::store::{DeliveryState, Ledger, RunStatus, SqliteStore, Store};
use serde_json::json;

use crate::child::{add_active, enough_fds, slow_header_clients, Daemon};
use crate::helpers::{herald_command, TestSite};
use crate::smtp::SmtpServer;

const READERS: usize = 24;
const SLOW_CLIENTS: usize = 500;
const GRACE: Duration = Duration::from_secs(3);

async fn run_status(db: &std::path::Path, run: i64) -> (RunStatus, bool) {
    let store = SqliteStore::open(db).await.unwrap();
    let status = store.run_status(run).await.unwrap();
    let done = store.run(run).await.unwrap().unwrap().done;
    store.close().await;
    (status, done)
}

fn emails(status: &RunStatus, state: DeliveryState) -> BTreeSet<String> {
    status
        .problems
        .iter()
        .filter(|p| p.state == state)
        .map(|p| p.email.clone())
        .collect()
}

/// Copies received, by recipient.
fn received(smtp: &SmtpServer) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for (rcpt, _) in smtp.messages() {
        *by.entry(rcpt).or_insert(0) += 1;
    }
    by
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_digest_with_slow_smtp_and_500_slow_clients_exits_0_within_the_deadline() {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    assert!(enough_fds(SLOW_CLIENTS as u64 + 100));
    smtp.set_control(json!({"data_delay_ms": 4000}));
    let mut site = TestSite::new();
    let date = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339_opts(SecondsFormat::Secs, true);
    site.write(
        "a.md",
        format!("+++\ntitle = \"News\"\ndate = {date}\n+++\nText.\n"),
    );
    site.extra = format!(
        r#"[server]
shutdown_grace = "{grace}s"
header_read_timeout = "30s"
[rescan]
watch = false
[mail]
transport = "smtp"
from = "Shutdown Test <news@example.org>"
batch_size = 8
queue_poll = "100ms"
retry_base = "100ms"
[mail.smtp]
host = "127.0.0.1"
port = {port}
tls = "none"
pool_size = 4
timeout = "30s"
[[digest]]
name = "news"
schedule = "0 0 0 1 1 * 2099"
first_digest_articles = 1
"#,
        grace = GRACE.as_secs(),
        port = smtp.port()
    );
    let config = site.config();
    let db = config.database_path();
    let store = SqliteStore::open(&db).await.unwrap();
    for i in 0..READERS {
        add_active(&store, &format!("reader{i:02}@example.net"), "news").await;
    }
    store.close().await;

    let mut daemon = Daemon::start(&site, None);
    daemon.wait_ready().await;
    let out = herald_command(
        &site.config_path(),
        &["digest", "send", "--schedule", "news"],
    )
    .output()
    .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    let run: i64 = said
        .strip_prefix("run ")
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a queued run: {said}"));

    // The first four are through (4 s each, four at a time); the next four
    // of the batch are on the wire.
    let start = Instant::now();
    while smtp.accepted() < 4 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let slow = slow_header_clients(
        daemon.port,
        SLOW_CLIENTS,
        Duration::from_secs(1),
        Duration::from_secs(20),
    )
    .await;
    while daemon.sockets() < SLOW_CLIENTS {
        assert!(start.elapsed() < Duration::from_secs(40));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    daemon.signal("TERM");
    let (status, took) = daemon.wait_exit(GRACE + Duration::from_secs(5)).await;
    let log = daemon.log();
    eprintln!(
        "SIGTERM with {SLOW_CLIENTS} slow clients and 4 SMTP sends in flight: exit {:?} after {took:?} (shutdown_grace {GRACE:?})",
        status.code()
    );
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        took <= GRACE + Duration::from_millis(300),
        "took {took:?}:\n{log}"
    );
    for c in slow {
        assert!(
            c.await.unwrap().is_some(),
            "a slow client still connected after the exit"
        );
    }

    // Every delivery is accounted for, none is left `sending`.
    let (first, _) = run_status(&db, run).await;
    let sent = first.count(DeliveryState::Sent);
    let uncertain = emails(&first, DeliveryState::Uncertain);
    let pending = first.count(DeliveryState::Pending);
    eprintln!(
        "ledger after the stop: {sent} sent, {} uncertain, {pending} pending",
        uncertain.len()
    );
    assert_eq!(first.count(DeliveryState::Sending), 0, "{:?}", first.counts);
    assert_eq!(first.total(), READERS as u64);
    assert_eq!(
        sent + uncertain.len() as u64 + pending,
        READERS as u64,
        "{:?}",
        first.counts
    );
    assert!(sent >= 4, "{:?}", first.counts);
    assert!(!uncertain.is_empty(), "the sends cut off are uncertain");
    assert!(log.contains("marked uncertain"), "{log}");

    // A restart sends what was pending; the uncertain ones are left to the
    // operator, and nothing was lost at the stop: the second start finds
    // nothing in flight.
    smtp.set_control(json!({}));
    let mut again = Daemon::start(&site, None);
    again.wait_ready().await;
    let start = Instant::now();
    loop {
        if run_status(&db, run).await.1 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{}", again.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    again.signal("TERM");
    let (status, _) = again.wait_exit(GRACE + Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0));
    assert!(
        !again.log().contains("in flight when herald last stopped"),
        "{}",
        again.log()
    );

    let (last, done) = run_status(&db, run).await;
    assert!(done);
    let still_uncertain = emails(&last, DeliveryState::Uncertain);
    assert_eq!(
        still_uncertain, uncertain,
        "uncertain ones are not resent by themselves"
    );
    assert_eq!(
        last.count(DeliveryState::Sent) + still_uncertain.len() as u64,
        READERS as u64,
        "{:?}",
        last.counts
    );
    let got = received(&smtp);
    for i in 0..READERS {
        let rcpt = format!("reader{i:02}@example.net");
        let copies = got.get(&rcpt).copied().unwrap_or(0);
        if uncertain.contains(&rcpt) {
            assert!(copies <= 1, "{rcpt}: {copies} copies");
        } else {
            assert_eq!(copies, 1, "{rcpt}: sent exactly once");
        }
    }
}
