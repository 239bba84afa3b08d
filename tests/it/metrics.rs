//! `/metrics` read the way Prometheus reads it: parsed by Prometheus' own
//! Python client (`tests/metrics_check.py`, the text format parser and the
//! strict OpenMetrics one) and linted by `promtool check metrics` from
//! Debian's `prometheus` package, after known events whose numbers are then
//! checked. Also the bearer token and the separate metrics address.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use herald::config::Config;
use herald::store::{SqliteStore, Store, Subscribers};
use serde_json::Value;

use crate::child::{add_active, sample};
use crate::helpers::{eventually, free_port, herald_command, repo_root, spawn_daemon, TestSite};

/// Every family herald exposes.
const FAMILIES: [&str; 23] = [
    "herald_articles_published",
    "herald_files_rejected",
    "herald_rebuilds",
    "herald_rebuild_failures",
    "herald_feeds_updated",
    "herald_last_successful_build_timestamp_seconds",
    "herald_rebuild_duration_seconds",
    "herald_websub_pings",
    "herald_emails",
    "herald_digest_run_duration_seconds",
    "herald_digest_last_run_duration_seconds",
    "herald_digest_run_deliveries",
    "herald_digest_run_settled",
    "herald_digest_batches",
    "herald_digest_bytes",
    "herald_http_requests",
    "herald_http_connections_open",
    "herald_http_connections_accepted",
    "herald_http_connections_closed",
    "herald_panics",
    "herald_subscribers",
    "herald_digest_runs",
    "herald_digest_deliveries",
];

/// The families `tests/metrics_check.py` read from `page`; `None` (and a
/// SKIPPED line) without prometheus_client, outside CI only.
fn parse(page: &str, openmetrics: bool) -> Option<Vec<Value>> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, page).unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg(repo_root().join("tests/metrics_check.py"))
        .arg(&file);
    if openmetrics {
        cmd.arg("--openmetrics");
    }
    let out = cmd.output().expect("python3 runs");
    match out.status.code() {
        Some(0) => Some(serde_json::from_slice(&out.stdout).expect("JSON")),
        Some(3) if std::env::var_os("CI").is_none() => {
            eprintln!(
                "SKIPPED the Prometheus parser: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            None
        }
        _ => panic!(
            "the Prometheus parser rejects /metrics: {}\n{page}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// `promtool check metrics` on `page`, when promtool is installed (in CI
/// it must be).
fn promtool(page: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is missing (apt-get install prometheus); CI must lint /metrics"
        );
        eprintln!("SKIPPED promtool: not installed (apt-get install prometheus)");
        return;
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{page}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sample values by `name{label="value",…}` (labels sorted), from parsed
/// families.
fn values(families: &[Value]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for fam in families {
        for s in fam["samples"].as_array().unwrap() {
            let labels: BTreeMap<String, String> = serde_json::from_value(s[1].clone()).unwrap();
            let key = if labels.is_empty() {
                s[0].as_str().unwrap().to_string()
            } else {
                let inner: Vec<String> =
                    labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
                format!("{}{{{}}}", s[0].as_str().unwrap(), inner.join(","))
            };
            out.insert(key, s[2].as_f64().unwrap_or(f64::NAN));
        }
    }
    out
}

fn site() -> TestSite {
    let site = TestSite::new();
    for (i, title) in ["Alpha", "Beta", "Gamma"].iter().enumerate() {
        site.write(
            &format!("{i}.md"),
            format!(
                "+++\ntitle = \"{title}\"\ndate = 2024-01-0{}T00:00:00Z\n+++\nBody.\n",
                i + 1
            ),
        );
    }
    site.write("broken.md", "+++\ntitle = \"no end\"\n");
    site
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_with_prometheus_parsers_and_count_known_events() {
    let mut site = site();
    let outbox = site.dir.path().join("outbox");
    site.extra = format!(
        r#"[rescan]
watch = false
[mail]
outbox_dir = {outbox:?}
queue_poll = "100ms"
[[digest]]
name = "weekly"
schedule = "0 0 0 1 1 * 2099"
first_digest_articles = 3
"#,
        outbox = outbox.display().to_string()
    );
    let config = site.config();
    let config_path = site.config_path();

    // Known people: three active, one who left.
    let store = SqliteStore::open(&config.database_path()).await.unwrap();
    for email in ["a@example.org", "b@example.org", "c@example.org"] {
        add_active(&store, email, "weekly").await;
    }
    let gone = add_active(&store, "gone@example.org", "weekly").await;
    store
        .unsubscribe(gone, Utc::now(), "operator")
        .await
        .unwrap();
    store.close().await;

    let (base, shutdown, task) = spawn_daemon(config).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    eventually("the first build is served", || async {
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    // Two sign-ups (pending), three feed requests, one miss.
    for email in ["p1@example.org", "p2@example.org"] {
        let r = client
            .post(format!("{base}/subscribe"))
            .form(&[("email", email)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    for _ in 0..3 {
        client.get(format!("{base}/atom.xml")).send().await.unwrap();
    }
    client.get(format!("{base}/nope.xml")).send().await.unwrap();
    // A digest run, queued from the command line, sent by the daemon.
    let out = herald_command(&config_path, &["digest", "send", "--schedule", "weekly"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = |accept: Option<&'static str>| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let mut req = client.get(format!("{base}/metrics"));
            if let Some(a) = accept {
                req = req.header("accept", a);
            }
            let r = req.send().await.unwrap();
            let ct = r.headers()["content-type"].to_str().unwrap().to_string();
            (ct, r.text().await.unwrap())
        }
    };
    eventually("the digest run is done", || async {
        page(None)
            .await
            .1
            .contains("herald_digest_runs{state=\"done\"} 1")
    })
    .await;

    let (ct, text) = page(None).await;
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
    promtool(&text);
    let Some(families) = parse(&text, false) else {
        shutdown.trigger();
        task.await.unwrap().unwrap();
        return;
    };
    let names: Vec<&str> = families
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for family in &families {
        let name = family["name"].as_str().unwrap();
        assert!(
            FAMILIES.contains(&name),
            "an unknown family `{name}`: each is named, typed and documented in the README"
        );
        assert_ne!(family["type"], "unknown", "{family}");
        assert!(!family["help"].as_str().unwrap().is_empty(), "{family}");
    }
    for name in FAMILIES {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let v = values(&families);
    let expect = [
        ("herald_articles_published", 3.0),
        ("herald_files_rejected", 1.0),
        ("herald_rebuilds_total", 1.0),
        ("herald_rebuild_failures_total", 0.0),
        ("herald_rebuild_duration_seconds_count", 1.0),
        ("herald_subscribers{status=\"active\"}", 3.0),
        ("herald_subscribers{status=\"pending\"}", 2.0),
        ("herald_subscribers{status=\"unsubscribed\"}", 1.0),
        ("herald_subscribers{status=\"bounced\"}", 0.0),
        ("herald_digest_runs{state=\"done\"}", 1.0),
        ("herald_digest_runs{state=\"sending\"}", 0.0),
        ("herald_digest_deliveries{state=\"sent\"}", 3.0),
        ("herald_digest_deliveries{state=\"pending\"}", 0.0),
        ("herald_emails_total{result=\"sent\"}", 3.0),
        ("herald_digest_run_duration_seconds_count", 1.0),
        // The run is over: no run being sent here.
        ("herald_digest_run_deliveries", 0.0),
        ("herald_digest_batches_total", 1.0),
        (
            "herald_http_requests_total{route=\"feed\",status=\"200\"}",
            3.0,
        ),
        (
            "herald_http_requests_total{route=\"not_found\",status=\"404\"}",
            1.0,
        ),
        (
            "herald_http_requests_total{route=\"subscribe\",status=\"200\"}",
            2.0,
        ),
    ];
    let bytes = v.get("herald_digest_bytes_total").copied().unwrap_or(0.0);
    assert!(
        bytes > 3.0 * 1000.0,
        "three digests of over a kilobyte each: {bytes}"
    );
    for (key, want) in expect {
        let got = v.get(key).copied().unwrap_or(0.0);
        assert_eq!(got, want, "{key} in\n{text}");
    }
    let panics: f64 = v
        .iter()
        .filter(|(k, _)| k.starts_with("herald_panics_total{"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(panics, 0.0, "{text}");
    assert_eq!(
        v["herald_panics_total{task=\"rebuild\"}"], 0.0,
        "labelled from the start"
    );
    let built = v["herald_last_successful_build_timestamp_seconds"];
    let now = Utc::now().timestamp() as f64;
    assert!(
        (now - 120.0..=now + 1.0).contains(&built),
        "{built} vs {now}"
    );
    assert!(v["herald_http_connections_accepted_total"] >= 1.0, "{v:?}");

    // OpenMetrics when asked for, which the strict parser accepts.
    let (ct, om) = page(Some(
        "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
    ))
    .await;
    assert_eq!(
        ct,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(om.ends_with("# EOF\n"));
    let om = parse(&om, true).expect("the parser ran above");
    assert_eq!(values(&om)["herald_subscribers{status=\"active\"}"], 3.0);

    shutdown.trigger();
    task.await.unwrap().expect("the daemon stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_live_on_their_own_address_behind_a_bearer_token() {
    let mut site = site();
    let metrics_port = free_port();
    site.extra = format!(
        "[server]\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n[rescan]\nwatch = false\n[mail]\noutbox_dir = {:?}\n",
        site.dir.path().join("outbox").display().to_string()
    );
    let env = [(
        "HERALD_SERVER__METRICS_TOKEN".to_string(),
        "a-long-scrape-token".to_string(),
    )];
    let config = Config::parse_with_env(&site.config_text(), env).unwrap();
    let (base, shutdown, task) = spawn_daemon(config).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let metrics = format!("http://127.0.0.1:{metrics_port}/metrics");
    eventually("the metrics address answers", || async {
        client.get(&metrics).send().await.is_ok()
    })
    .await;
    // Not on the public address at all.
    let r = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = client.get(&metrics).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let r = client
        .get(&metrics)
        .bearer_auth("a-wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client
        .get(&metrics)
        .bearer_auth("a-long-scrape-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let refused = sample(
        &text,
        "herald_http_requests_total{route=\"metrics\",status=\"401\"}",
    );
    assert!(refused >= 2.0, "{text}");
    assert!(!text.contains("a-long-scrape-token"));
    let r = client
        .get(format!("http://127.0.0.1:{metrics_port}/atom.xml"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "only /metrics there");

    shutdown.trigger();
    task.await.unwrap().expect("the daemon stops cleanly");
}
