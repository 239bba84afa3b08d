//! Every command that writes to stdout treats a reader that went away
//! (`herald digest status | head -c 10`, `herald subscribers list | head`)
//! as a normal end: no panic, no `error: Broken pipe`, exit 0.

use std::process::{Output, Stdio};

use super::digest_cli::{digest_site, send_news, text};
use super::helpers::{herald_command, TestSite};

/// Runs `herald args…` with a stdout whose reader has already gone, as
/// `herald … | head -c 10` is once `head` has what it wants: the first
/// write fails with EPIPE, every time.
pub fn run_into_closed_pipe(site: &TestSite, args: &[&str]) -> Output {
    let mut child = herald_command(&site.config_path(), args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("herald starts");
    drop(child.stdout.take());
    child.wait_with_output().expect("herald ends")
}

fn assert_quiet_success(out: &Output, args: &[&str]) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
}

#[test]
fn digest_status_into_a_closed_pipe_ends_quietly_with_0() {
    let site = digest_site();
    let out = send_news(&site);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for args in [
        &["digest", "status"][..],
        &["digest", "status", "1"],
        &["digest", "send", "--schedule", "news", "--dry-run"],
    ] {
        assert_quiet_success(&run_into_closed_pipe(&site, args), args);
    }
}

#[test]
fn subscribers_list_and_export_into_a_closed_pipe_end_quietly_with_0() {
    let site = digest_site();
    let mut csv = String::from("email\n");
    for i in 0..2000 {
        csv.push_str(&format!("reader{i}@example.org\n"));
    }
    let file = site.dir.path().join("list.csv");
    std::fs::write(&file, csv).unwrap();
    let out = site.cli(&["subscribers", "import", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for args in [
        &["subscribers", "list"][..],
        &["subscribers", "list", "--format", "csv"],
        &["subscribers", "export"],
    ] {
        assert_quiet_success(&run_into_closed_pipe(&site, args), args);
    }
}
