//! Cron schedules as an operator writes them, through the real binary: a
//! mistake is one line saying what is wrong and how to fix it, a schedule
//! that never fires is refused, and when each digest is next due is logged
//! by the daemon (at start and after each run) and shown by `herald digest
//! status`.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::digest_cli::{digest_site, text};
use super::helpers::{free_port, herald_command, KillOnDrop};

/// `herald check` with the `news` digest on `schedule`: its stderr.
fn check_with_schedule(schedule: &str) -> (Option<i32>, String) {
    let mut site = digest_site();
    site.extra = site
        .extra
        .replace("\"0 0 0 1 1 * 2099\"", &format!("{schedule:?}"));
    let out = site.cli(&["check"]);
    (out.status.code(), text(&out.stderr))
}

#[test]
fn cron_mistakes_are_one_line_with_the_fix_and_a_schedule_that_never_fires_is_refused() {
    let (code, err) = check_with_schedule("0 0 25 * * *");
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("digest[0].schedule"), "{err}");
    assert!(
        err.contains("hour 25 is out of range") && err.contains("0-23"),
        "{err}"
    );
    assert!(!err.contains("less than 23"), "{err}");

    let (code, err) = check_with_schedule("0 8 * * Mon");
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("5 fields") && err.contains("write `0 0 8 * * Mon`"),
        "{err}"
    );

    let (code, err) = check_with_schedule("0 0 7 30 Feb *");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("never fires"), "{err}");

    let (code, err) = check_with_schedule("0 0 23 * * *");
    assert_eq!(code, Some(0), "23 is an hour: {err}");
}

#[test]
fn digest_status_shows_when_each_schedule_is_next_due() {
    let site = digest_site();
    let out = site.cli(&["digest", "status"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout
            .contains("digest `news` (0 0 0 1 1 * 2099, UTC) is next due at 2099-01-01T00:00:00Z"),
        "{stdout}"
    );
}

#[test]
fn the_daemon_logs_when_each_digest_is_next_due_at_start_and_after_each_run() {
    let mut site = digest_site();
    site.extra = site
        .extra
        .replace("\"0 0 0 1 1 * 2099\"", "\"*/2 * * * * *\"");
    site.extra.push_str(&format!(
        "\n[server]\nlisten = \"127.0.0.1:{}\"\n[rescan]\nwatch = false\n",
        free_port()
    ));
    let mut daemon = KillOnDrop(
        herald_command(&site.config_path(), &["run"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = daemon.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut log = Vec::new();
    let mut planned = false;
    let mut due_after_a_run = false;
    while start.elapsed() < Duration::from_secs(30) && !due_after_a_run {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        if line.contains("digest run planned") {
            planned = true;
        } else if planned && line.contains("digest `news`") && line.contains("is next due at") {
            due_after_a_run = true;
        }
        log.push(line);
    }
    let log = log.join("\n");
    let first_due = log
        .find("digest `news` (*/2 * * * * *, UTC) is next due at")
        .unwrap_or_else(|| panic!("no next-due line at start:\n{log}"));
    let first_run = log.find("digest run planned").unwrap_or(usize::MAX);
    assert!(
        first_due < first_run,
        "logged at start, before any run:\n{log}"
    );
    assert!(due_after_a_run, "logged again after a run:\n{log}");
}
