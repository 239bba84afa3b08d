//! `herald digest …` as an operator meets it, through the real binary:
//! a run with nobody to send to ends at once, long sends show progress,
//! `status` shows when each schedule is next due.

use std::io::Read;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use super::helpers::{herald_command, KillOnDrop, TestSite};

/// A site with one article, the outbox transport and a `news` digest that
/// never fires by itself (runs are started from the command line).
pub fn digest_site() -> TestSite {
    let mut site = TestSite::new();
    site.write(
        "hello.md",
        "+++\ntitle = \"Hello\"\ndate = 2020-01-01T00:00:00Z\n+++\n\nText.\n",
    );
    site.extra = format!(
        r#"
[mail]
outbox_dir = {outbox:?}

[[digest]]
name = "news"
schedule = "0 0 0 1 1 * 2099"
first_digest_articles = 3
"#,
        outbox = site.dir.path().join("outbox").display().to_string()
    );
    site
}

/// `digest_site` sending through the test SMTP server: `mail` lines go
/// into `[mail]`, `smtp_lines` into `[mail.smtp]`.
pub fn smtp_site(smtp: &super::smtp::SmtpServer, mail: &str, smtp_lines: &str) -> TestSite {
    let mut site = digest_site();
    site.extra = site.extra.replace(
        "[mail]\n",
        &format!(
            "[mail]\ntransport = \"smtp\"\n{mail}\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n{smtp_lines}\n",
            smtp.port()
        ),
    );
    // `outbox_dir` now stands in `[mail.smtp]`; the outbox is not used.
    site.extra = site.extra.replace("outbox_dir", "# outbox_dir");
    site
}

/// Runs `herald args…` and waits for it at most `limit`; a process still
/// running then is killed and the test fails.
pub fn run_within(site: &TestSite, args: &[&str], limit: Duration) -> Output {
    let child = herald_command(&site.config_path(), args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("herald starts");
    let mut child = KillOnDrop(child);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.0.kill();
            let _ = child.0.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let _ = child.0.stdout.take().unwrap().read_to_end(&mut stdout);
    let _ = child.0.stderr.take().unwrap().read_to_end(&mut stderr);
    match status {
        Some(status) => Output {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "herald {args:?} still running after {limit:?}\nstdout:\n{}\nstderr:\n{}",
            text(&stdout),
            text(&stderr)
        ),
    }
}

/// `herald digest send --schedule news`, at most 20 s.
pub fn send_news(site: &TestSite) -> Output {
    run_within(
        site,
        &["digest", "send", "--schedule", "news"],
        Duration::from_secs(20),
    )
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn digest_send_with_nobody_to_send_to_exits_0_within_seconds() {
    let site = digest_site();
    // No subscribers at all: the run is planned with 0 recipients.
    let out = send_news(&site);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("run 1: planned"), "{stdout}");
    assert!(stdout.contains("recipients: 0"), "{stdout}");
    assert!(!stderr.contains("waiting"), "{stderr}");

    // Nothing new for the one subscriber after their first digest: the
    // second run has no recipients either, and ends as quickly.
    let out = site.cli(&[
        "subscribers",
        "add",
        "ann@example.org",
        "--confirmed",
        "--note",
        "test",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = send_news(&site);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("sent: 1"),
        "{}",
        text(&out.stdout)
    );
    let out = send_news(&site);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("recipients: 0"),
        "{}",
        text(&out.stdout)
    );
    // A retry that finds nothing to send again ends the same way.
    let out = run_within(
        &site,
        &["digest", "retry", "--failed", "1"],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn digest_send_prints_progress_between_planned_and_done() {
    let Some(smtp) = super::smtp::SmtpServer::start() else {
        return;
    };
    let site = smtp_site(&smtp, "batch_size = 8", "pool_size = 1");
    let mut csv = String::from("email,confirmed,consent_note\n");
    for i in 0..40 {
        csv.push_str(&format!("reader{i}@example.org,yes,test\n"));
    }
    let file = site.dir.path().join("list.csv");
    std::fs::write(&file, csv).unwrap();
    let out = site.cli(&["subscribers", "import", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // 40 messages one after another at 150 ms each: about 6 s, more than
    // the 5 s between two progress lines off a terminal. Progress is read
    // from the ledger, which learns of a batch (8 here) once it is sent.
    smtp.set_control(serde_json::json!({"data_delay_ms": 150}));

    // stdout and stderr into one file, so their order is kept.
    let log = site.dir.path().join("send.log");
    let file = std::fs::File::create(&log).unwrap();
    let status = herald_command(
        &site.config_path(),
        &["digest", "send", "--schedule", "news"],
    )
    .stdout(Stdio::from(file.try_clone().unwrap()))
    .stderr(Stdio::from(file))
    .status()
    .unwrap();
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{said}");
    let at = |needle: &str| {
        said.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{said}"))
    };
    let planned = at("run 1: planned");
    let first = at("sending: 0/40 (0%)");
    let middle = at("left");
    let last = at("sending: 40/40 (100%)");
    let done = at("): done");
    assert!(
        planned < first && first < middle && middle < last && last < done,
        "{said}"
    );
}

#[cfg(unix)]
#[test]
fn outbox_messages_holding_tokens_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let site = digest_site();
    let out = site.cli(&["subscribers", "add", "ann@example.org"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = site.cli(&["subscribers", "confirm-again"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = site.cli(&[
        "subscribers",
        "add",
        "bo@example.org",
        "--confirmed",
        "--note",
        "t",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = send_news(&site);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let outbox = site.dir.path().join("outbox");
    let files: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 2, "a confirmation and a digest: {files:?}");
    for f in files {
        assert_eq!(f.extension().and_then(|e| e.to_str()), Some("eml"));
        let mode = std::fs::metadata(&f).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", f.display());
        assert!(std::fs::read_to_string(&f).unwrap().contains("token="));
    }
}
