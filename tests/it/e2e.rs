//! End to end, the way a newcomer meets herald: the real binary as a child
//! process (nothing in-process) on a copy of the sample content, a real
//! SMTP server, and HTTP from outside. A reader subscribes through the
//! form, confirms from the mail, sees a new article in the feed, gets it in
//! a digest, unsubscribes with the RFC 8058 one-click POST and gets nothing
//! after that; SIGTERM stops the daemon with exit code 0.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use mail_parser::MessageParser;
use reqwest::StatusCode;

use super::helpers::{eventually, free_port, herald_command, repo_root, KillOnDrop, TestSite};
use super::smtp::SmtpServer;

const READER: &str = "reader@example.net";

fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(from).unwrap();
        let target = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Messages the server received for `rcpt`, parsed: (subject, text, raw).
fn mail_for(smtp: &SmtpServer, rcpt: &str) -> Vec<(String, String, String)> {
    smtp.messages()
        .into_iter()
        .filter(|(r, _)| r == rcpt)
        .map(|(_, raw)| {
            let parsed = MessageParser::default().parse(&raw).expect("parses");
            (
                parsed.subject().unwrap_or_default().to_string(),
                parsed.body_text(0).unwrap_or_default().to_string(),
                String::from_utf8_lossy(&raw).to_string(),
            )
        })
        .collect()
}

/// The first `http://…` URL in `text` that contains `needle`.
fn link(text: &str, needle: &str) -> String {
    text.split_whitespace()
        .map(|w| w.trim_matches(|c| c == '<' || c == '>' || c == ','))
        .find(|w| w.starts_with("http://") && w.contains(needle))
        .unwrap_or_else(|| panic!("no {needle} link in:\n{text}"))
        .to_string()
}

/// Sends the schedule from the command line (the daemon sends it) and
/// returns the run id.
fn trigger(config: &Path) -> String {
    let out = herald_command(config, &["digest", "send", "--schedule", "weekly"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    said.split_whitespace()
        .nth(1)
        .map(|w| w.trim_end_matches(':').to_string())
        .unwrap_or_else(|| panic!("run id in {said}"))
}

fn run_done(config: &Path, run: &str) -> bool {
    let out = herald_command(config, &["digest", "status", run])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .is_some_and(|l| l.ends_with(": done"))
}

fn article(title: &str) -> String {
    format!(
        "+++\ntitle = \"{title}\"\ndate = {}\ntags = [\"announcements\"]\n+++\n\n{title}: the whole story.\n",
        Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
    )
}

#[test]
fn subscribe_confirm_publish_digest_unsubscribe_and_stop() {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let started = Instant::now();
    let mut site = TestSite::new();
    copy_dir(&repo_root().join("content"), &site.content);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    site.feeds_section = format!("base_url = \"{base}/\"");
    site.extra = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
shutdown_grace = "10s"

[rescan]
debounce = "100ms"

[mail]
transport = "smtp"
from = "Sample Site <news@example.org>"
queue_poll = "200ms"
postal_address = "Sample Site\n1 Main Street"

[mail.smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
timeout = "10s"

[[digest]]
name = "weekly"
description = "Every Monday"
schedule = "0 0 8 * * Mon 2099"
"#,
        smtp_port = smtp.port()
    );
    let config = site.config_path();
    let log_path = site.dir.path().join("daemon.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut daemon = KillOnDrop(
        herald_command(&config, &["run"])
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
    );
    let daemon_log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        eventually("the daemon is ready", || async {
            matches!(client.get(format!("{base}/readyz")).send().await, Ok(r) if r.status() == StatusCode::OK)
        })
        .await;

        // Subscribe through the form.
        let res = client
            .post(format!("{base}/subscribe"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("email={}&schedule=weekly", READER.replace('@', "%40")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{}", daemon_log());
        eventually("the confirmation mail arrives", || async {
            !mail_for(&smtp, READER).is_empty()
        })
        .await;
        let (_, text, _) = mail_for(&smtp, READER).remove(0);
        let confirm = link(&text, "/confirm?token=");
        let res = client.get(&confirm).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.text().await.unwrap().contains("You are subscribed"));

        // A new article appears in the feed with a new ETag.
        let before = client.get(format!("{base}/atom.xml")).send().await.unwrap();
        let etag = before.headers()["etag"].to_str().unwrap().to_string();
        std::fs::write(
            site.content.join("fresh-news.md"),
            article("Fresh news from the end-to-end test"),
        )
        .unwrap();
        eventually("the new article is in /atom.xml", || async {
            let res = client.get(format!("{base}/atom.xml")).send().await.unwrap();
            let new_etag = res.headers()["etag"].to_str().unwrap().to_string();
            let body = res.bytes().await.unwrap();
            new_etag != etag
                && feed_rs::parser::parse(&body[..])
                    .unwrap()
                    .entries
                    .iter()
                    .any(|e| e.title.as_ref().is_some_and(|t| t.content.contains("Fresh news")))
        })
        .await;

        // The digest brings it, with a working one-click unsubscribe.
        let run = trigger(&config);
        eventually("the first run is done", || async { run_done(&config, &run) }).await;
        let out = herald_command(&config, &["digest", "status", &run]).output().unwrap();
        let status = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(status.contains("sent: 1"), "{status}\n{}", daemon_log());
        eventually("the digest arrives", || async { mail_for(&smtp, READER).len() == 2 }).await;
        let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("herald_emails_total{result=\"sent\"} 1"), "{metrics}");
        assert!(metrics.contains("herald_digest_run_duration_seconds_count 1"), "{metrics}");
        let (subject, text, raw) = mail_for(&smtp, READER).remove(1);
        assert!(subject.contains("Fresh news from the end-to-end test"), "{subject}");
        assert!(text.contains("Fresh news from the end-to-end test"), "{text}");
        // Only what is new since they confirmed.
        assert!(!text.contains("Welcome to the new Millbrook Ledger"), "{text}");
        let parsed = MessageParser::default().parse(raw.as_bytes()).unwrap();
        let header = parsed.header_raw("List-Unsubscribe").unwrap().replace("\r\n", "");
        let one_click = link(&header, "/unsubscribe?token=");
        assert_eq!(
            parsed.header_raw("List-Unsubscribe-Post").unwrap().trim(),
            "List-Unsubscribe=One-Click"
        );
        let res = client
            .post(&one_click)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.text().await.unwrap().contains("unsubscribed"));

        // Something new again, but the reader has left: nothing is sent.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        std::fs::write(site.content.join("more-news.md"), article("More news")).unwrap();
        eventually("the second article is published", || async {
            let body = client.get(format!("{base}/atom.xml")).send().await.unwrap().text().await.unwrap();
            body.contains("More news")
        })
        .await;
        let run = trigger(&config);
        eventually("the second run is done", || async { run_done(&config, &run) }).await;
        assert_eq!(mail_for(&smtp, READER).len(), 2, "nothing after unsubscribing");
    });

    let term = Command::new("kill")
        .args(["-TERM", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = daemon.0.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", daemon_log());
    eprintln!("end-to-end test took {:?}", started.elapsed());
}
