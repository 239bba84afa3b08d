//! The web archive end to end: a digest run goes out through the real
//! SMTP server with a "view in your browser" link and `List-Archive`;
//! `herald run` then serves the run's page, the archive's index pages and
//! feed. The page is the digest as a reader of every tag got it, with no
//! subscriber's links: no token of any message the run sent, no address,
//! no unsubscribe link appears in the page, the index or the feed
//! (searched for). Every link is absolute. Paths that try to leave the
//! archive find nothing. Headless Chromium photographs the page and the
//! index (`target/test-artifacts/archive-page.png`, `archive-index.png`).

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use reqwest::StatusCode;

use super::digest_templates::{artifacts_dir, assert_png, chromium, screenshot};
use super::helpers::{import_active, start_herald, TestSite};
use super::smtp::SmtpServer;

fn get(url: &str) -> (StatusCode, String) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let res = client.get(url).send().await.unwrap();
        let status = res.status();
        (status, res.text().await.unwrap_or_default())
    })
}

/// Every `href` and `src` value in `html`.
fn links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["href=\"", "src=\""] {
        for (i, _) in html.match_indices(attr) {
            let rest = &html[i + attr.len()..];
            out.push(rest[..rest.find('"').unwrap()].to_string());
        }
    }
    out
}

#[test]
fn each_run_is_published_without_any_subscribers_links() {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let mut site = TestSite::new();
    let now = Utc::now();
    for (i, tag) in ["rust", "web", "rust"].iter().enumerate() {
        let date = (now - chrono::Duration::hours(3 - i as i64))
            .to_rfc3339_opts(SecondsFormat::Secs, true);
        site.write(
            &format!("a{i}.md"),
            format!(
                "+++\ntitle = \"Archived article {i}\"\ndate = {date}\ntags = [\"{tag}\"]\n+++\n\nText {i}, [relative link](../other/).\n"
            ),
        );
    }
    site.extra = format!(
        r#"
[mail]
transport = "smtp"
from = "News <news@example.org>"
bounce_address = "bounces@example.org"
postal_address = "Example Ltd\n1 Main Street"

[mail.smtp]
host = "127.0.0.1"
port = {port}
tls = "none"

[[digest]]
name = "news"
description = "Every new article"
schedule = "0 0 0 1 1 * 2099"
first_digest_articles = 3
"#,
        port = smtp.port()
    );
    import_active(
        &site.config().database_path(),
        &[
            ("ann@example.net", &["news"], &[]),
            ("bob@example.net", &["news"], &["rust"]),
        ],
    );
    let out = site.cli(&["digest", "send", "--schedule", "news"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let messages = smtp.messages();
    assert_eq!(messages.len(), 2);
    let date = Utc::now().format("%Y-%m-%d").to_string();
    let page_url = format!("https://example.org/archive/news/{date}/");
    let mut secrets = Vec::new();
    for (rcpt, bytes) in &messages {
        let parsed = mail_parser::MessageParser::default().parse(bytes).unwrap();
        assert_eq!(
            parsed.header_raw("List-Archive").map(str::trim),
            Some("<https://example.org/archive/news/>"),
            "{rcpt}"
        );
        let html = parsed.body_html(0).unwrap();
        assert!(
            html.contains(&format!("href=\"{page_url}\"")),
            "view in your browser: {html}"
        );
        assert!(parsed
            .body_text(0)
            .unwrap()
            .contains(&format!("View in your browser: {page_url}")));
        // What must never reach the archive: each reader's token, address
        // and the envelope token.
        for link in links(&html) {
            if let Some((_, token)) = link.split_once("token=") {
                secrets.push(token.to_string());
            }
        }
        secrets.push(rcpt.clone());
    }
    for (_, froms) in smtp.envelope_senders() {
        secrets.extend(froms);
    }
    assert!(secrets.len() >= 6, "{secrets:?}");

    let (_daemon, port) = start_herald(&mut site);
    let base = format!("http://127.0.0.1:{port}");
    let wait = std::time::Instant::now();
    while get(&format!("{base}/readyz")).0 != StatusCode::OK {
        assert!(wait.elapsed() < Duration::from_secs(30), "not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, page) = get(&format!("{base}/archive/news/{date}/"));
    assert_eq!(code, StatusCode::OK, "{page}");
    let (code, index) = get(&format!("{base}/archive/"));
    assert_eq!(code, StatusCode::OK, "{index}");
    let (code, schedule_index) = get(&format!("{base}/archive/news/"));
    assert_eq!(code, StatusCode::OK);
    let (code, feed) = get(&format!("{base}/archive/news/atom.xml"));
    assert_eq!(code, StatusCode::OK, "{feed}");
    // The page is the digest of every article of the run, for nobody.
    for i in 0..3 {
        assert!(page.contains(&format!("Archived article {i}")), "{page}");
    }
    assert!(page.contains("Subscribe") && page.contains("https://example.org/subscribe"));
    assert!(index.contains(&page_url) && schedule_index.contains(&page_url));
    assert!(
        index.contains("Test Site: Archived article 2"),
        "the run's subject: {index}"
    );
    for (what, text) in [
        ("page", &page),
        ("index", &index),
        ("schedule index", &schedule_index),
        ("feed", &feed),
    ] {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{what} holds `{secret}`");
        }
        for needle in [
            "token=",
            "unsubscribe",
            "preferences",
            "bounces+",
            "@example.net",
        ] {
            assert!(
                !text.to_lowercase().contains(needle),
                "{what} holds `{needle}`"
            );
        }
    }
    for (what, text) in [("page", &page), ("index", &index)] {
        for link in links(text) {
            assert!(
                link.starts_with("https://") || link.starts_with("#article-"),
                "{what}: link `{link}` is not absolute"
            );
        }
    }
    let parsed = feed_rs::parser::parse(feed.as_bytes()).unwrap();
    assert_eq!(parsed.entries.len(), 1);
    assert_eq!(parsed.entries[0].links[0].href, page_url);
    // Nothing outside the archive is reachable through it.
    for path in [
        "/archive/..%2F..%2Fetc%2Fpasswd/",
        "/archive/news/..%2F..%2F/",
        &format!("/archive/news/{date}%2F..%2F..%2F/"),
        "/archive/news/2026-13-99-../",
        "/archive/no-such-schedule/",
        "/archive/news/1999-01-01/",
    ] {
        let (code, _) = get(&format!("{base}{path}"));
        assert!(
            code == StatusCode::NOT_FOUND || code == StatusCode::PERMANENT_REDIRECT,
            "{path}: {code}"
        );
        assert_ne!(code, StatusCode::OK, "{path}");
    }
    // Both pages as a browser shows them.
    let chromium = match chromium() {
        Ok(c) => c,
        Err(why) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: {why}");
            return;
        }
        Err(why) => panic!("{why}"),
    };
    let dir = artifacts_dir();
    std::fs::write(dir.join("archive-page.html"), &page).unwrap();
    let png = dir.join("archive-page.png");
    let _ = std::fs::remove_file(&png);
    let url = format!("{base}/archive/news/{date}/");
    screenshot(
        &chromium,
        std::path::Path::new(&url),
        &png,
        (800, 1200),
        false,
    );
    let bytes = assert_png(&png, (800, 1200));
    eprintln!("screenshot: {} ({bytes} bytes)", png.display());
    // The index is a short page: a PNG of the window with its text drawn.
    let png = dir.join("archive-index.png");
    let _ = std::fs::remove_file(&png);
    let url = format!("{base}/archive/");
    screenshot(
        &chromium,
        std::path::Path::new(&url),
        &png,
        (800, 600),
        false,
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    assert!(bytes.len() > 8_000, "{} bytes: nothing drawn?", bytes.len());
    eprintln!("screenshot: {} ({} bytes)", png.display(), bytes.len());
}

#[test]
fn a_schedule_with_the_archive_off_names_the_feed_and_publishes_nothing() {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let mut site = TestSite::new();
    let date = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339_opts(SecondsFormat::Secs, true);
    site.write(
        "a.md",
        format!("+++\ntitle = \"A\"\ndate = {date}\n+++\n\nText.\n"),
    );
    site.extra = format!(
        "[mail]\ntransport = \"smtp\"\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
         [[digest]]\nname = \"quiet\"\nschedule = \"0 0 0 1 1 * 2099\"\nfirst_digest_articles = 1\narchive = false\n",
        smtp.port()
    );
    import_active(
        &site.config().database_path(),
        &[("ann@example.net", &["quiet"], &[])],
    );
    let out = site.cli(&["digest", "send", "--schedule", "quiet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, raw) = &smtp.messages()[0];
    let parsed = mail_parser::MessageParser::default().parse(raw).unwrap();
    // The site's feed, in the first configured format.
    assert_eq!(
        parsed.header_raw("List-Archive").map(str::trim),
        Some("<https://example.org/rss.xml>")
    );
    assert!(!parsed
        .body_html(0)
        .unwrap()
        .contains("View in your browser"));
    let db = site.config().database_path();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use herald::store::{Newsletter, Store};
        let store = herald::store::SqliteStore::open(&db).await.unwrap();
        assert!(store.issues(None, 10).await.unwrap().is_empty());
        store.close().await;
    });
}
