//! The replica test: three `herald run` processes on one PostgreSQL (the
//! private cluster of `pg.rs`) and one real SMTP server on loopback send
//! one scheduled run to 20,000 subscribers, moved there from SQLite with
//! `herald db copy`. Mid-run one replica is SIGKILLed and started again,
//! another SIGTERMed. Counted against what the server received: exactly
//! one replica planned the tick; every subscriber got exactly one digest,
//! except deliveries marked `uncertain` (at most the killed replica's two
//! batches in hand), which `herald digest retry --uncertain` then sends
//! under the same Message-ID. Beside that: the three serve byte-identical
//! feeds with identical ETags (an undated article, whose file has another
//! modification time on each replica, included), and a link signed by one
//! is accepted by the others.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{Datelike, SecondsFormat, Timelike, Utc};
use filetime::FileTime;
use herald::config::DatabaseLocation;
use herald::store::{
    open_location, DeliveryState, NewSubscription, SqliteStore, SubscriberEmail, Subscribers,
};
use mail_parser::MessageParser;

use super::helpers::{free_port, herald_command, wait_until, KillOnDrop, TestSite};
use super::pg::{self, PASSWORD};
use super::smtp::SmtpServer;

const SUBSCRIBERS: usize = 20_000;
const BATCH: u64 = 50;
const REPLICAS: usize = 3;
/// Kill replica 0 when the server has this many messages; stop replica 1
/// at the second figure.
const KILL_AT: u64 = 4_000;
const TERM_AT: u64 = 9_000;

struct Replica {
    config: PathBuf,
    log: PathBuf,
    port: u16,
}

impl Replica {
    fn start(&self) -> KillOnDrop {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        KillOnDrop(
            herald_command(&self.config, &["run"])
                .env("HERALD_SUBSCRIBERS__DATABASE_PASSWORD", PASSWORD)
                .env("HERALD_LOG", "info")
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .spawn()
                .expect("herald run starts"),
        )
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn cli(config: &Path, args: &[&str]) -> (bool, String) {
    let out = herald_command(config, args)
        .env("HERALD_SUBSCRIBERS__DATABASE_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A plain HTTP client for a test without an async body of its own.
struct Http<'a> {
    rt: &'a tokio::runtime::Runtime,
    client: reqwest::Client,
}

/// Status, ETag and body of an answer.
type Answer = (u16, Option<String>, Vec<u8>);

impl Http<'_> {
    fn answer(&self, req: reqwest::RequestBuilder) -> Option<Answer> {
        self.rt.block_on(async {
            let res = req.send().await.ok()?;
            let status = res.status().as_u16();
            let etag = res
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            Some((status, etag, res.bytes().await.ok()?.to_vec()))
        })
    }

    fn get(&self, url: &str) -> Option<Answer> {
        self.answer(self.client.get(url))
    }

    fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Option<Answer> {
        self.answer(self.client.post(url).form(form))
    }
}

/// The first `https://…` link in `text` that starts with `prefix`.
fn link(text: &str, prefix: &str) -> Option<String> {
    let start = text.find(prefix)?;
    let end = text[start..]
        .find(|c: char| c.is_whitespace() || c == '>' || c == '"' || c == '<')
        .map_or(text.len(), |e| start + e);
    Some(text[start..end].replace("=\r\n", "").replace("&amp;", "&"))
}

#[test]
fn three_replicas_on_one_postgres_send_one_run_once_through_a_kill_and_a_stop() {
    let Some(cluster) = pg::cluster() else {
        return;
    };
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(cluster.fresh_db());
    let now = Utc::now();
    let started = Instant::now();

    // One site; each replica reads its own copy of the content, where the
    // undated note has another modification time.
    let site = TestSite::new();
    for (i, hours) in [3, 2, 1].iter().enumerate() {
        let date =
            (now - chrono::Duration::hours(*hours)).to_rfc3339_opts(SecondsFormat::Secs, true);
        site.write(
            &format!("a{i}.md"),
            format!("+++\ntitle = \"Article {i}\"\ndate = {date}\n+++\n\nText {i}.\n"),
        );
    }
    site.write("note.txt", "An undated note\n\nNothing says when.\n");
    // The tick all three see: far enough ahead for them to start.
    let tick = (now + chrono::Duration::seconds(15))
        .with_nanosecond(0)
        .unwrap();
    let cron = format!(
        "{} {} {} {} {} *",
        tick.second(),
        tick.minute(),
        tick.hour(),
        tick.day(),
        tick.month()
    );
    let replicas: Vec<Replica> = (0..REPLICAS)
        .map(|i| {
            let root = site.dir.path().join(format!("replica{i}"));
            let content = root.join("content");
            std::fs::create_dir_all(&content).unwrap();
            for e in std::fs::read_dir(&site.content).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), content.join(e.file_name())).unwrap();
            }
            let mtime = now.timestamp() - 3600 * (i as i64 + 1);
            filetime::set_file_mtime(content.join("note.txt"), FileTime::from_unix_time(mtime, 0))
                .unwrap();
            let port = free_port();
            let text = format!(
                r#"data_dir = {data:?}

[site]
title = "Replica Test"
base_url = "https://example.org/"
author = {{ name = "Site Author" }}

[content]
dir = {content:?}

[feeds]
dir = {feeds:?}

[server]
listen = "127.0.0.1:{port}"
shutdown_grace = "10s"

[rescan]
watch = false

[subscribers]
database = "{url}"
database_pool_size = 6

[mail]
transport = "smtp"
from = "Replica Test <news@example.org>"
batch_size = {BATCH}
queue_poll = "200ms"
claim_lease = "3s"
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
schedule = "{cron}"
timezone = "UTC"
first_digest_articles = 3
"#,
                data = root.join("data").display().to_string(),
                content = content.display().to_string(),
                feeds = root.join("feeds").display().to_string(),
                smtp_port = smtp.port(),
            );
            let config = root.join("herald.toml");
            std::fs::write(&config, text).unwrap();
            Replica {
                config,
                log: root.join("herald.log"),
                port,
            }
        })
        .collect();

    // The list grew up on SQLite; `herald db copy` moves it.
    let sqlite = site.dir.path().join("old/herald.sqlite3");
    rt.block_on(async {
        let store = SqliteStore::open(&sqlite).await.unwrap();
        let rows = (0..SUBSCRIBERS)
            .map(|i| NewSubscription {
                email: SubscriberEmail::parse(&format!("reader{i:05}@example.net")).unwrap(),
                name: None,
                schedules: vec!["news".into()],
                tags: vec![],
                at: now - chrono::Duration::days(7),
                ip: None,
                source: "import".into(),
                confirmed_note: Some("replica test".into()),
            })
            .collect();
        assert_eq!(store.import(rows).await.unwrap().added, SUBSCRIBERS as u64);
        herald::store::Store::close(&store).await;
    });
    let (ok, said) = cli(
        &replicas[0].config,
        &[
            "db",
            "copy",
            "--from",
            &format!("sqlite:{}", sqlite.display()),
            "--to",
            url.as_str(),
        ],
    );
    assert!(ok, "{said}");
    assert!(
        said.contains(&format!("subscribers: {SUBSCRIBERS}")),
        "{said}"
    );
    eprintln!("{:?}: {SUBSCRIBERS} subscribers copied", started.elapsed());
    let location = DatabaseLocation::Postgres(url.clone());
    let store = rt
        .block_on(open_location(&location, &pg::options()))
        .unwrap();
    // Armed now: should the replicas start after the tick (a slow
    // machine), they catch it up rather than skip it.
    rt.block_on(store.arm_schedule("news", now)).unwrap();

    let mut running: Vec<KillOnDrop> = replicas.iter().map(Replica::start).collect();
    let http = Http {
        rt: &rt,
        client: reqwest::Client::new(),
    };
    let ready = |r: &Replica| {
        http.get(&format!("{}/readyz", r.base()))
            .is_some_and(|a| a.0 == 200)
    };
    for r in &replicas {
        wait_until("the replicas are ready", Duration::from_secs(180), || {
            ready(r)
        });
    }
    eprintln!("{:?}: replicas ready", started.elapsed());

    // The same bytes and ETags from all three, the undated note included.
    for feed in ["rss.xml", "atom.xml", "feed.json"] {
        let got: Vec<(String, Vec<u8>)> = replicas
            .iter()
            .map(|r| {
                let (status, etag, body) = http.get(&format!("{}/{feed}", r.base())).unwrap();
                assert_eq!(status, 200, "{feed}");
                (etag.expect("an ETag"), body)
            })
            .collect();
        assert!(
            String::from_utf8_lossy(&got[0].1).contains("An undated note"),
            "{feed}"
        );
        for other in &got[1..] {
            assert_eq!(other.0, got[0].0, "{feed}: the same ETag on every replica");
            assert!(
                other.1 == got[0].1,
                "{feed}: the same bytes on every replica"
            );
        }
    }

    // Replica 0 is killed mid-run and started again; replica 1 is stopped.
    wait_until(
        &format!("{KILL_AT} messages arrived"),
        Duration::from_secs(300),
        || smtp.accepted() >= KILL_AT,
    );
    running[0].0.kill().unwrap(); // SIGKILL
    running[0].0.wait().unwrap();
    eprintln!(
        "{:?}: replica 0 killed at {} messages",
        started.elapsed(),
        smtp.accepted()
    );
    running[0] = replicas[0].start();
    wait_until(
        &format!("{TERM_AT} messages arrived"),
        Duration::from_secs(300),
        || smtp.accepted() >= TERM_AT,
    );
    let term = Command::new("kill")
        .args(["-TERM", &running[1].0.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let exit = running[1].0.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "SIGTERM is a clean stop");
    eprintln!(
        "{:?}: replica 1 stopped at {} messages",
        started.elapsed(),
        smtp.accepted()
    );

    let run = rt.block_on(async {
        let runs = store.runs(10).await.unwrap();
        assert_eq!(
            runs.len(),
            1,
            "exactly one replica planned the tick: {runs:?}"
        );
        runs[0].clone()
    });
    assert_eq!(run.tick, tick, "{run:?}");
    wait_until("the run is finished", Duration::from_secs(300), || {
        rt.block_on(store.run(run.id)).unwrap().unwrap().done
    });
    eprintln!("{:?}: run finished", started.elapsed());
    let status = rt.block_on(store.run_status(run.id)).unwrap();
    let uncertain: BTreeSet<String> = status
        .problems
        .iter()
        .filter(|p| p.state == DeliveryState::Uncertain)
        .map(|p| p.email.clone())
        .collect();
    let sent = status.count(DeliveryState::Sent);
    let received = smtp.message_ids();
    eprintln!(
        "replica test: {sent} sent, {} uncertain, {} recipients received a copy",
        uncertain.len(),
        received.len()
    );
    let by_sender: Vec<(Option<String>, i64)> = rt.block_on(async {
        let mut url = url.clone();
        url.set_password(Some(PASSWORD)).unwrap();
        let pool = sqlx::PgPool::connect(url.as_str()).await.unwrap();
        let rows = sqlx::query_as(
            "SELECT claimed_by, count(*) FROM digest_deliveries WHERE state = 'uncertain'
             GROUP BY 1 ORDER BY 1",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows
    });
    eprintln!("uncertain by sender: {by_sender:?}");
    if std::env::var_os("REPLICA_LOG").is_some() {
        for r in &replicas {
            let log = std::fs::read_to_string(&r.log).unwrap_or_default();
            for line in log
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            {
                eprintln!("replica {}: {line}", r.port);
            }
        }
    }
    assert_eq!(status.total(), SUBSCRIBERS as u64, "{status:?}");
    assert_eq!(
        sent + uncertain.len() as u64,
        SUBSCRIBERS as u64,
        "{:?}",
        status.counts
    );
    assert!(
        uncertain.len() as u64 <= 2 * BATCH,
        "only the killed replica's batches in hand: {}",
        uncertain.len()
    );
    for (rcpt, ids) in &received {
        assert_eq!(ids.len(), 1, "{rcpt} received the run {} times", ids.len());
    }
    for i in 0..SUBSCRIBERS {
        let rcpt = format!("reader{i:05}@example.net");
        assert!(
            received.contains_key(&rcpt) || uncertain.contains(&rcpt),
            "{rcpt} got nothing and is not uncertain"
        );
    }
    // Every replica took a share (the restarted one is a fourth sender).
    let senders: i64 = rt.block_on(async {
        let mut url = url.clone();
        url.set_password(Some(PASSWORD)).unwrap();
        let pool = sqlx::PgPool::connect(url.as_str()).await.unwrap();
        let n = sqlx::query_scalar(
            "SELECT count(DISTINCT claimed_by) FROM digest_deliveries WHERE state = 'sent'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        n
    });
    assert!(senders >= 3, "{senders} replicas sent");

    // The operator sends the uncertain ones: now everybody has it, and
    // the only duplicates are among them, under the same Message-ID.
    let (ok, said) = cli(
        &replicas[2].config,
        &["digest", "retry", "--uncertain", &run.id.to_string()],
    );
    assert!(ok, "{said}");
    let received = smtp.message_ids();
    assert_eq!(received.len(), SUBSCRIBERS);
    for (rcpt, ids) in &received {
        if ids.len() > 1 {
            assert!(uncertain.contains(rcpt), "{rcpt} duplicated");
            assert!(ids.windows(2).all(|w| w[0] == w[1]), "{rcpt}: {ids:?}");
        }
    }

    // Links signed by one replica work on the others: a digest's
    // unsubscribe page, and a confirmation link mailed by replica 0.
    let live = [&replicas[0], &replicas[2]];
    let (_, first) = smtp.messages().into_iter().next().unwrap();
    let first = String::from_utf8_lossy(&first).to_string();
    let unsubscribe = link(&first, "https://example.org/unsubscribe?token=").expect("link");
    let token = unsubscribe.split("token=").nth(1).unwrap().to_string();
    for r in live {
        let (status, _, _) = http
            .get(&format!("{}/unsubscribe?token={token}", r.base()))
            .unwrap();
        assert_eq!(status, 200, "replica on {}", r.port);
    }
    let (status, _, body) = http
        .post_form(
            &format!("{}/subscribe", replicas[0].base()),
            &[("email", "newcomer@example.net")],
        )
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let mut confirm = None;
    wait_until(
        "the confirmation mail arrives",
        Duration::from_secs(20),
        || {
            confirm = smtp
                .messages()
                .into_iter()
                .find(|(rcpt, _)| rcpt == "newcomer@example.net")
                .and_then(|(_, raw)| {
                    let text = MessageParser::default()
                        .parse(&raw)?
                        .body_text(0)?
                        .to_string();
                    link(&text, "https://example.org/confirm?token=")
                });
            confirm.is_some()
        },
    );
    let token = confirm.unwrap().split("token=").nth(1).unwrap().to_string();
    let (status, _, body) = http
        .get(&format!("{}/confirm?token={token}", replicas[2].base()))
        .unwrap();
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("You are subscribed"));
    let newcomer = rt
        .block_on(store.find(&SubscriberEmail::parse("newcomer@example.net").unwrap()))
        .unwrap()
        .unwrap();
    assert_eq!(newcomer.status, herald::store::Status::Active);
    rt.block_on(herald::store::Store::close(&*store));
    eprintln!("{:?}: replica test done", started.elapsed());
}
