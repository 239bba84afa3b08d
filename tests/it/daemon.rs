//! `herald run` end to end: the daemon on port 0 over a temporary content
//! directory, spoken to over real sockets; file changes on a real file
//! system; SIGTERM to the real binary as a child process.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::base::metrics::Metrics;
use herald::base::ready::Readiness;
use herald::base::served::ServedFeeds;
use herald::base::shutdown::Shutdown;
use herald::config::Config;
use herald::daemon::engine::Engine;
use herald::http::{self, AppState};
use herald::templates::Templates;
use reqwest::header::{CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::StatusCode;

use crate::helpers::{eventually, TestSite};

struct Running {
    base: String,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    client: reqwest::Client,
}

impl Running {
    async fn start(site: &TestSite) -> Running {
        let config = site.config();
        let (base, shutdown, task) = crate::helpers::spawn_daemon(config).await;
        let client = reqwest::Client::builder()
            .no_gzip()
            .no_brotli()
            .build()
            .unwrap();
        Running {
            base,
            shutdown,
            task,
            client,
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    async fn text(&self, path: &str) -> String {
        self.get(path).await.text().await.unwrap()
    }

    async fn wait_ready(&self) {
        eventually("/readyz says 200", || async {
            self.get("/readyz").await.status() == StatusCode::OK
        })
        .await;
    }

    async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("daemon stops after shutdown")
            .unwrap()
            .expect("daemon returns Ok");
    }
}

/// A site whose daemon rebuilds quickly on change and rescans hourly.
fn daemon_site() -> TestSite {
    let mut site = TestSite::new();
    site.extra = "[rescan]\nschedule = \"0 0 * * * *\"\ndebounce = \"50ms\"\n".into();
    site
}

fn article(title: &str, date: &str, tags: &str) -> String {
    format!("+++\ntitle = \"{title}\"\ndate = {date}\ntags = [{tags}]\n+++\n\nBody of {title}.\n")
}

fn titles(xml: &str) -> Vec<String> {
    let feed = feed_rs::parser::parse(xml.as_bytes()).expect("served feed parses");
    feed.entries
        .into_iter()
        .map(|e| e.title.map(|t| t.content).unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_every_feed_with_its_content_type_after_the_first_build() {
    let site = daemon_site();
    site.write("a.md", article("Alpha", "2024-01-02T00:00:00Z", "\"rust\""));
    let d = Running::start(&site).await;
    d.wait_ready().await;
    for (path, ty) in [
        ("/rss.xml", "application/rss+xml; charset=utf-8"),
        ("/atom.xml", "application/atom+xml; charset=utf-8"),
        ("/feed.json", "application/feed+json; charset=utf-8"),
        ("/tags/rust/atom.xml", "application/atom+xml; charset=utf-8"),
    ] {
        let r = d.get(path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.headers()[CONTENT_TYPE], ty, "{path}");
        let body = r.bytes().await.unwrap();
        feed_rs::parser::parse(&body[..]).unwrap_or_else(|e| panic!("{path} parses: {e}"));
    }
    // What is served is what was written to the feeds directory.
    assert_eq!(
        d.text("/atom.xml").await.into_bytes(),
        site.feed("atom.xml")
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_gets_answer_304_until_a_new_article_changes_the_feed() {
    let site = daemon_site();
    site.write("a.md", article("Alpha", "2024-01-02T00:00:00Z", ""));
    let d = Running::start(&site).await;
    d.wait_ready().await;
    let first = d.get("/atom.xml").await;
    let etag = first.headers()[ETAG].to_str().unwrap().to_string();
    let last_modified = first.headers()[LAST_MODIFIED].to_str().unwrap().to_string();
    assert_eq!(
        last_modified, "Tue, 02 Jan 2024 00:00:00 GMT",
        "Last-Modified is the feed's own updated time"
    );

    let url = format!("{}/atom.xml", d.base);
    let r = d
        .client
        .get(&url)
        .header(IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert!(r.bytes().await.unwrap().is_empty());
    let r = d
        .client
        .get(&url)
        .header(IF_MODIFIED_SINCE, "Wed, 03 Jan 2024 00:00:00 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_MODIFIED,
        "a later If-Modified-Since"
    );

    site.write("b.md", article("Beta", "2024-02-01T00:00:00Z", ""));
    eventually("the new article is served", || async {
        titles(&d.text("/atom.xml").await).contains(&"Beta".to_string())
    })
    .await;
    let r = d
        .client
        .get(&url)
        .header(IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the old ETag no longer matches");
    let new_etag = r.headers()[ETAG].to_str().unwrap().to_string();
    assert_ne!(new_etag, etag);
    assert_eq!(titles(&r.text().await.unwrap()), ["Beta", "Alpha"]);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_and_deleted_articles_show_in_the_served_feeds_without_a_restart() {
    let site = daemon_site();
    site.write("a.md", article("Alpha", "2024-01-02T00:00:00Z", "\"news\""));
    let doomed = site.write(
        "b.md",
        article("Beta", "2024-01-03T00:00:00Z", "\"news\", \"gone\""),
    );
    let d = Running::start(&site).await;
    d.wait_ready().await;
    assert_eq!(titles(&d.text("/rss.xml").await), ["Beta", "Alpha"]);
    assert_eq!(d.get("/tags/gone/rss.xml").await.status(), StatusCode::OK);

    site.write(
        "sub/c.md",
        article("Gamma", "2024-01-04T00:00:00Z", "\"news\""),
    );
    eventually("Gamma appears", || async {
        titles(&d.text("/tags/news/rss.xml").await).len() == 3
    })
    .await;

    std::fs::remove_file(doomed).unwrap();
    eventually("Beta disappears", || async {
        titles(&d.text("/rss.xml").await) == ["Gamma", "Alpha"]
    })
    .await;
    eventually("the emptied tag's feed is gone", || async {
        d.get("/tags/gone/rss.xml").await.status() == StatusCode::NOT_FOUND
    })
    .await;
    assert!(
        !site.feeds.join("tags/gone").exists(),
        "its files are removed from disk too"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_attempts_reach_nothing_outside_the_feeds() {
    let site = daemon_site();
    site.write("a.md", article("Alpha", "2024-01-02T00:00:00Z", "\"rust\""));
    std::fs::write(site.dir.path().join("secret.txt"), "secret").unwrap();
    let d = Running::start(&site).await;
    d.wait_ready().await;
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/tags/..%2f..%2fsecret.txt",
        "/tags/rust/../../../secret.txt",
        "//etc/passwd",
        "/%2Fetc%2Fpasswd",
        "/feeds/../herald.toml",
        "/.herald-tmp-x",
    ] {
        let r = d
            .client
            .get(format!("{}{path}", d.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(!r.text().await.unwrap().contains("secret"), "{path}");
    }
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_503_until_the_first_build_has_published() {
    let mut site = daemon_site();
    // No content directory yet: the first build fails, nothing is ready.
    std::fs::remove_dir(&site.content).unwrap();
    site.extra = "[rescan]\nschedule = \"* * * * * *\"\ndebounce = \"50ms\"\n".into();
    let d = Running::start(&site).await;
    eventually("the failed first build is counted", || async {
        d.text("/metrics")
            .await
            .contains("herald_rebuild_failures_total 1")
    })
    .await;
    assert_eq!(
        d.get("/readyz").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        d.get("/healthz").await.status(),
        StatusCode::OK,
        "alive all the same"
    );
    assert_eq!(d.get("/atom.xml").await.status(), StatusCode::NOT_FOUND);

    site.write("a.md", article("Alpha", "2024-01-02T00:00:00Z", ""));
    d.wait_ready().await;
    assert_eq!(titles(&d.text("/atom.xml").await), ["Alpha"]);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_articles_rejections_rebuilds_and_requests() {
    let site = daemon_site();
    site.write("a.md", article("Alpha", "2024-01-02T00:00:00Z", ""));
    site.write("b.md", article("Beta", "2024-01-03T00:00:00Z", ""));
    site.write("broken.md", "+++\ntitle = \"x\"\n");
    let d = Running::start(&site).await;
    d.wait_ready().await;
    for _ in 0..3 {
        d.get("/atom.xml").await;
    }
    d.get("/nope.xml").await;
    let m = d.text("/metrics").await;
    assert!(m.contains("herald_articles_published 2"), "{m}");
    assert!(m.contains("herald_files_rejected 1"), "{m}");
    assert!(m.contains("herald_rebuilds_total 1"), "{m}");
    assert!(m.contains("herald_rebuild_duration_seconds_count 1"), "{m}");
    assert!(
        m.contains("herald_http_requests_total{route=\"feed\",status=\"200\"} 3"),
        "{m}"
    );
    assert!(
        m.contains("herald_http_requests_total{route=\"not_found\",status=\"404\"} 1"),
        "{m}"
    );
    assert!(
        !m.contains("herald_last_successful_build_timestamp_seconds 0\n"),
        "{m}"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_good_feeds_stay_served_but_not_ready_when_the_content_directory_disappears() {
    let mut site = daemon_site();
    site.extra = "[rescan]\nschedule = \"* * * * * *\"\ndebounce = \"50ms\"\n".into();
    site.write("a.md", article("Alpha", "2024-01-02T00:00:00Z", ""));
    let d = Running::start(&site).await;
    d.wait_ready().await;
    let before = d.get("/atom.xml").await.headers()[ETAG].clone();
    std::fs::remove_dir_all(&site.content).unwrap();
    eventually("a failed rebuild is counted", || async {
        !d.text("/metrics")
            .await
            .contains("herald_rebuild_failures_total 0")
    })
    .await;
    let r = d.get("/atom.xml").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[ETAG], before);
    assert_eq!(titles(&r.text().await.unwrap()), ["Alpha"]);
    // Readiness tells the truth: an orchestrator should send readers to a
    // replica that has its content; this one still answers whoever asks.
    let ready = d.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let why = ready.text().await.unwrap();
    assert!(why.contains("content directory cannot be read"), "{why}");
    d.stop().await;
}

/// Readers fetch all three site-wide feeds in a loop while the engine
/// republishes hundreds of times; every body must be a whole, valid feed
/// of one of the versions that existed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_a_partial_feed_while_hundreds_of_rebuilds_replace_it() {
    let mut site = TestSite::new();
    site.feeds_section = "limit = 0".into();
    for i in 0..40 {
        site.write(
            &format!("p{i}.md"),
            article(
                &format!("Post {i}"),
                &format!("2024-01-{:02}T00:00:00Z", i % 28 + 1),
                "\"t\"",
            ),
        );
    }
    let config = Arc::new(site.config());
    let served = Arc::new(ServedFeeds::new());
    let metrics = Arc::new(Metrics::new());
    let mut engine = Engine::new(
        Arc::clone(&config),
        Arc::clone(&served),
        Arc::clone(&metrics),
    )
    .unwrap();
    engine.rebuild(chrono::Utc::now()).unwrap();
    let state = AppState {
        config: Arc::clone(&config),
        served,
        metrics,
        ready: Arc::new(Readiness::ready()),
        templates: Arc::new(Templates::load(None).unwrap()),
        subscriptions: None,
        store: None,
        webhooks: None,
        counts: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = Shutdown::new();
    let server = tokio::spawn(http::serve(
        listener,
        http::router(state),
        shutdown.signal(),
        Duration::from_secs(5),
    ));

    let done = Arc::new(AtomicBool::new(false));
    let fetched = Arc::new(AtomicUsize::new(0));
    let sizes = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    let mut readers = Vec::new();
    for path in ["/atom.xml", "/rss.xml", "/feed.json", "/atom.xml"] {
        let (done, fetched, sizes) = (Arc::clone(&done), Arc::clone(&fetched), Arc::clone(&sizes));
        let url = format!("{base}{path}");
        readers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !done.load(Ordering::Acquire) {
                let body = client
                    .get(&url)
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                let feed = feed_rs::parser::parse(&body[..])
                    .unwrap_or_else(|e| panic!("{url}: partial or invalid body ({e})"));
                // 40 articles, or 41 while the extra one is present.
                let n = feed.entries.len();
                assert!(n == 40 || n == 41, "{url}: {n} entries");
                sizes.lock().unwrap().insert(n);
                fetched.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    let content = site.content.clone();
    let rebuilds = tokio::task::spawn_blocking(move || {
        let extra = content.join("extra.md");
        for i in 0..300u32 {
            if i % 2 == 0 {
                let text = article(&format!("Extra {i}"), "2024-03-01T00:00:00Z", "\"t\"");
                std::fs::write(&extra, text).unwrap();
                // Same size each time: make the change visible by mtime too.
                let t = filetime::FileTime::from_unix_time(1_700_000_000 + i as i64, 0);
                filetime::set_file_mtime(&extra, t).unwrap();
            } else {
                std::fs::remove_file(&extra).unwrap();
            }
            let r = engine.rebuild(chrono::Utc::now()).unwrap();
            assert!(
                !r.skipped && !r.changed.is_empty(),
                "rebuild {i} published new bytes"
            );
        }
    });
    rebuilds.await.unwrap();
    done.store(true, Ordering::Release);
    for r in readers {
        r.await.unwrap();
    }
    shutdown.trigger();
    server.await.unwrap().unwrap();
    assert!(fetched.load(Ordering::Relaxed) >= 4, "readers ran");
    eprintln!(
        "{} feed bodies fetched and parsed during 300 rebuilds; entry counts seen: {:?}",
        fetched.load(Ordering::Relaxed),
        sizes.lock().unwrap()
    );
}

#[test]
fn sigterm_stops_the_daemon_cleanly_with_exit_code_0() {
    let mut site = daemon_site();
    site.write("a.md", article("Alpha", "2024-01-02T00:00:00Z", ""));
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    site.extra.push_str(&format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace = \"5s\"\n"
    ));
    let config = site.config_path();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env_remove("HERALD_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        eventually("the child answers /readyz with 200", || async {
            matches!(client.get(format!("http://127.0.0.1:{port}/readyz")).send().await, Ok(r) if r.status() == StatusCode::OK)
        })
        .await;
    });
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    let mut log = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM; log:\n{log}"
    );
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(Config::load(&config).is_ok());
}
