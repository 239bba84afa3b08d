//! The subscribe form in a real browser: headless Chromium (Debian's
//! `chromium` and `chromium-driver`), driven through Selenium by
//! `tests/browser_subscribe.py`, against the daemon running in-process with
//! the real SMTP server of `subscribe.rs`. Screenshots of the form and of
//! the answer page are kept under `target/test-artifacts/`:
//! `subscribe-form.png` (as loaded), `subscribe-form-filled.png` (just
//! before the click) and `subscribe-result.png`.
//!
//! Without Chromium, ChromeDriver or Python's selenium the test prints
//! `SKIPPED: …` and passes, except in CI (`CI` set), where it fails.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use herald::store::{Status, SubscriberEmail, Subscribers};
use reqwest::StatusCode;

use crate::helpers::repo_root;
use crate::subscribe::App;

/// Bound on the whole browser run (start, two page loads, screenshots).
const DRIVER_WITHIN: Duration = Duration::from_secs(120);
/// Bound given to the driver for each of its own waits.
const STEP_WITHIN_SECS: u32 = 30;

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Chromium and ChromeDriver, from `BROWSER_TEST_CHROMIUM` / `BROWSER_TEST_CHROMEDRIVER`
/// or Debian's paths.
struct Browser {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

/// What is missing to run the browser test, if anything.
fn browser() -> Result<Browser, String> {
    let path = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(default))
    };
    let b = Browser {
        chromium: path("BROWSER_TEST_CHROMIUM", "/usr/bin/chromium"),
        chromedriver: path("BROWSER_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"),
    };
    let mut missing = Vec::new();
    if !b.chromium.is_file() {
        missing.push(format!(
            "Chromium ({}; apt-get install chromium)",
            b.chromium.display()
        ));
    }
    if !b.chromedriver.is_file() {
        missing.push(format!(
            "ChromeDriver ({}; apt-get install chromium-driver)",
            b.chromedriver.display()
        ));
    }
    let selenium = std::process::Command::new("python3")
        .args(["-c", "import selenium"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !selenium {
        missing.push("Python's selenium (pip install selenium)".into());
    }
    if missing.is_empty() {
        Ok(b)
    } else {
        Err(missing.join(", "))
    }
}

/// Where screenshots are kept for whoever looks at a test run afterwards.
fn artifacts_dir() -> PathBuf {
    let dir = repo_root().join("target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("create target/test-artifacts");
    dir
}

/// Checks that `path` is a real, non-trivial PNG; returns its size.
fn assert_png(path: &Path) -> usize {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("screenshot {}: {e}", path.display()));
    assert!(
        bytes.len() >= 8 && bytes[..8] == PNG_SIGNATURE,
        "{} does not start with the PNG signature",
        path.display()
    );
    // A blank or one-pixel image compresses to a few hundred bytes; a
    // rendered form with text is tens of kilobytes.
    assert!(
        bytes.len() > 5_000,
        "{} is only {} bytes: nothing rendered?",
        path.display(),
        bytes.len()
    );
    // IHDR follows the signature: width and height, big-endian.
    assert_eq!(&bytes[12..16], b"IHDR", "{}", path.display());
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert!(
        width >= 300 && height >= 300,
        "{} is {width}x{height}",
        path.display()
    );
    bytes.len()
}

/// Runs the Python driver in its own process group; the whole group
/// (Python, ChromeDriver, Chromium) is killed if it overruns.
async fn run_driver(args: &[String]) -> serde_json::Value {
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(repo_root().join("tests/browser_subscribe.py"))
        .args(args)
        .env("SE_OFFLINE", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let started = Instant::now();
    let child = cmd
        .spawn()
        .expect("start python3 tests/browser_subscribe.py");
    let pid = child.id().expect("driver pid");
    let out = match tokio::time::timeout(DRIVER_WITHIN, child.wait_with_output()).await {
        Ok(out) => out.expect("wait for the browser driver"),
        Err(_) => {
            // Its group id is its pid (process_group(0)).
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
            panic!("the browser driver did not finish within {DRIVER_WITHIN:?}");
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tests/browser_subscribe.py failed ({}):\n{stderr}\nstdout:\n{stdout}",
        out.status
    );
    eprintln!(
        "browser driver finished in {:.1?}:\n{stderr}",
        started.elapsed()
    );
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("no JSON from the driver; stderr:\n{stderr}"));
    serde_json::from_str(last).unwrap_or_else(|e| panic!("driver printed {last:?}: {e}"))
}

/// The `/confirm` link in the text part of a received message.
fn link_in(raw: &[u8]) -> String {
    let msg = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("the confirmation is valid MIME");
    let text = msg.body_text(0).expect("a text part").into_owned();
    text.split_whitespace()
        .find(|w| w.contains("/confirm?token="))
        .unwrap_or_else(|| panic!("no /confirm link in:\n{text}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_fills_in_and_submits_the_subscribe_form_and_the_mailed_link_activates() {
    let browser = match browser() {
        Ok(b) => b,
        Err(missing) if std::env::var_os("CI").is_some() => {
            panic!("CI must run the browser test, but these are missing: {missing}")
        }
        Err(missing) => {
            eprintln!("SKIPPED: browser test not run; missing: {missing}");
            return;
        }
    };
    let Some(app) = App::start(1000).await else {
        return;
    };
    let artifacts = artifacts_dir();
    let form_shot = artifacts.join("subscribe-form.png");
    let filled_shot = artifacts.join("subscribe-form-filled.png");
    let result_shot = artifacts.join("subscribe-result.png");
    for stale in [&form_shot, &filled_shot, &result_shot] {
        let _ = std::fs::remove_file(stale);
    }

    // The browser's profile goes here; removed even if the driver is
    // killed.
    let work = tempfile::tempdir().expect("temp dir");
    let email = "Browser.User@Example.org";
    let args: Vec<String> = vec![
        "--url".into(),
        app.base.clone(),
        "--email".into(),
        email.into(),
        "--schedule".into(),
        "weekly".into(),
        "--tag".into(),
        "rust".into(),
        "--form-shot".into(),
        form_shot.display().to_string(),
        "--filled-shot".into(),
        filled_shot.display().to_string(),
        "--result-shot".into(),
        result_shot.display().to_string(),
        "--chromium".into(),
        browser.chromium.display().to_string(),
        "--chromedriver".into(),
        browser.chromedriver.display().to_string(),
        "--work-dir".into(),
        work.path().display().to_string(),
        "--timeout".into(),
        STEP_WITHIN_SECS.to_string(),
    ];
    let result = run_driver(&args).await;

    // The page the browser landed on after its click.
    let title = result["title"].as_str().unwrap_or_default();
    let heading = result["heading"].as_str().unwrap_or_default();
    let main_text = result["main_text"].as_str().unwrap_or_default();
    assert!(title.starts_with("Check your inbox"), "title: {result}");
    assert_eq!(heading, "Check your inbox", "{result}");
    assert!(
        main_text.contains("confirmation link is on its way"),
        "{result}"
    );
    assert!(
        result["url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/subscribe")),
        "the form posted to /subscribe: {result}"
    );
    assert!(
        result["css_rules"].as_u64().unwrap_or(0) > 0,
        "the answer page's styles were applied: {result}"
    );

    // The screenshots are real images of a rendered page.
    for shot in [&form_shot, &filled_shot, &result_shot] {
        let bytes = assert_png(shot);
        eprintln!("screenshot: {} ({bytes} bytes)", shot.display());
    }

    // Nothing active until the mailed link is followed.
    let lower = email.to_ascii_lowercase();
    assert_eq!(app.status_of(&lower).await, Some(Status::Pending));
    let raw = app.wait_for_mail(email).await;
    let link = link_in(&raw);
    let (status, page) = app.get(&app.local(&link)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("You are subscribed"), "{page}");

    let sub = app
        .db()
        .await
        .find(&SubscriberEmail::parse(&lower).unwrap())
        .await
        .unwrap()
        .expect("the subscriber is stored");
    assert_eq!(sub.status, Status::Active);
    assert_eq!(sub.schedules, ["weekly"], "daily was unticked in the form");
    assert_eq!(sub.tags, ["rust"]);
    assert_eq!(sub.consent.source, "web-form");
    assert_eq!(sub.consent.requested_ip.as_deref(), Some("127.0.0.1"));
    app.stop().await;
}
