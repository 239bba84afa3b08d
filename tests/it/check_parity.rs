//! `herald check` refuses what `herald run` refuses, through the real
//! binary: templates (built in and overridden) rendered with sample data in
//! strict mode, includes that loop, digest subjects, the signing secret.
//! `run` fails at start on each of them instead of answering 500 later or
//! aborting, and a misnamed override file is a warning.

use std::io::{Read, Write};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use super::digest_cli::{digest_site, run_within, text};
use super::helpers::{free_port, herald_command, start_herald, KillOnDrop, TestSite};

/// `digest_site` with a templates folder holding `files`.
fn site_with_templates(files: &[(&str, &str)]) -> TestSite {
    let mut site = digest_site();
    let dir = site.dir.path().join("templates");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    site.top = format!("templates_dir = {:?}", dir.display().to_string());
    site
}

/// `herald run` on a free port: it either stops by itself within `limit`
/// (its output is returned) or is still running (`None`, and it is
/// stopped).
fn run_briefly(site: &TestSite, limit: Duration) -> Option<Output> {
    let port = free_port();
    let config = site.config_path();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}\n[server]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let mut child = KillOnDrop(
        herald_command(&config, &["run"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while start.elapsed() < limit {
        if child.0.try_wait().unwrap().is_some() {
            let child = std::mem::replace(&mut child.0, dummy());
            return Some(child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn dummy() -> std::process::Child {
    std::process::Command::new("true").spawn().unwrap()
}

fn assert_check_and_run_refuse(site: &TestSite, expect: &[&str]) {
    let out = site.cli(&["check"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "check: {err}");
    for e in expect {
        assert!(err.contains(e), "check names {e}: {err}");
    }
    let out = run_briefly(site, Duration::from_secs(20)).expect("run stops at start");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "run: {err}");
    for e in expect {
        assert!(err.contains(e), "run names {e}: {err}");
    }
}

#[test]
fn a_page_template_naming_an_unknown_field_fails_check_and_run_at_start() {
    let site = site_with_templates(&[(
        "subscribe.html.hbs",
        "{{#> layout title=\"Subscribe\"}}\n<h1>{{site.nmae}}</h1>\n{{/layout}}\n",
    )]);
    assert_check_and_run_refuse(&site, &["subscribe.html.hbs", "line 2", "`site.nmae`"]);
    let err = text(&site.cli(&["check"]).stderr);
    assert_eq!(err.matches("site.nmae").count(), 1, "said once: {err}");
    assert!(!err.contains("Some(\""), "{err}");
}

#[test]
fn check_refuses_what_run_refuses() {
    for (files, expect) in [
        (
            vec![("digest.txt.hbs", "{{#each articles}}{{title}\n")],
            vec!["digest.txt.hbs"],
        ),
        (
            vec![("digest_article.html.hbs", "<p>{{subtitle}}</p>\n")],
            vec!["digest_article.html", "subtitle"],
        ),
        (
            vec![(
                "message.html.hbs",
                "{{#> layout}}{{#if link}}{{lnk}}{{/if}}{{/layout}}",
            )],
            vec!["message.html", "lnk"],
        ),
        (
            vec![("confirm.txt.hbs", "Confirm: {{url}}\n")],
            vec!["confirm.txt", "url"],
        ),
    ] {
        let site = site_with_templates(&files);
        assert_check_and_run_refuse(&site, &expect);
    }
    // A subject naming a field the digest has not.
    let mut site = digest_site();
    site.extra = site.extra.replace(
        "first_digest_articles = 3",
        "first_digest_articles = 3\nsubject = \"{{site.name}} digest\"",
    );
    assert_check_and_run_refuse(&site, &["digest[0].subject", "site.name"]);
}

#[test]
fn a_signing_secret_shorter_than_32_bytes_fails_check_and_run() {
    let site = digest_site();
    for args in [&["check"][..], &["run"]] {
        let out = herald_command(&site.config_path(), args)
            .env("HERALD_SUBSCRIBERS__SECRET", "short-s3cret")
            .env(
                "HERALD_SERVER__LISTEN",
                format!("127.0.0.1:{}", free_port()),
            )
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("HERALD_SUBSCRIBERS__SECRET"), "{err}");
        assert!(err.contains("32 bytes"), "{err}");
        assert!(!err.contains("short-s3cret"), "{err}");
    }
}

/// `GET path` over a fresh connection (HTTP/1.0 by hand): status and body.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    conn.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, response))
}

#[test]
fn templates_that_include_each_other_stop_herald_at_start_instead_of_aborting() {
    // The case as reported: an overridden layout includes the message page,
    // which is laid out in the layout.
    let site = site_with_templates(&[(
        "layout.html.hbs",
        "<main>{{> message.html}}{{> @partial-block}}</main>\n",
    )]);
    let chain = "layout.html -> message.html -> layout.html";
    let out = site.cli(&["check"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(chain), "{}", text(&out.stderr));
    // `run` ends with its error (exit 2), not killed by SIGABRT (134).
    let out = run_briefly(&site, Duration::from_secs(20)).expect("run stops at start");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(chain), "{}", text(&out.stderr));
}

#[test]
fn the_daemon_serves_pages_through_layered_includes_and_keeps_serving() {
    // An overridden layout, included by every page.
    let mut site = site_with_templates(&[(
        "layout.html.hbs",
        "<main data-layout><h1>{{title}}</h1>{{> @partial-block}}</main>\n",
    )]);
    let (mut daemon, port) = start_herald(&mut site);
    let start = Instant::now();
    while get(port, "/readyz").map(|(s, _)| s) != Some(200) {
        assert!(start.elapsed() < Duration::from_secs(30), "not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..20 {
        let (status, body) = get(port, "/subscribe").unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("data-layout"), "{body}");
    }
    assert!(daemon.0.try_wait().unwrap().is_none(), "still running");
    assert_eq!(get(port, "/healthz").map(|(s, _)| s), Some(200));
}

#[test]
fn a_misnamed_override_file_is_a_warning_naming_the_known_ones() {
    let site = site_with_templates(&[("digset.txt.hbs", "{{count}}\n")]);
    let out = run_within(&site, &["check"], Duration::from_secs(30));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let warning = err
        .lines()
        .find(|l| l.starts_with("warning:") && l.contains("digset.txt.hbs"))
        .unwrap_or_else(|| panic!("no warning in {err}"));
    assert!(warning.contains("digest.txt.hbs"), "{warning}");
    assert!(warning.contains("subscribe.html.hbs"), "{warning}");
}
