//! The `herald` command line as a user meets it: help text, exit codes,
//! `check` writing nothing, fatal errors naming what is wrong, the summary.

use std::process::{Command, Output};

use crate::helpers::TestSite;

fn herald(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("HERALD_") {
            cmd.env_remove(k);
        }
    }
    cmd.output().expect("herald runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn summary_line(err: &str) -> &str {
    err.lines()
        .rev()
        .find(|l| l.starts_with("published "))
        .unwrap_or_else(|| panic!("no summary line in:\n{err}"))
}

/// The line of `help` that introduces subcommand `name`.
fn command_line<'a>(help: &'a str, name: &str) -> &'a str {
    help.lines()
        .find(|l| l.trim_start().starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no `{name}` in help:\n{help}"))
}

#[test]
fn herald_help_lists_build_and_check_with_explanations() {
    let out = herald(&["--help"]);
    let help = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for name in ["build", "check"] {
        let line = command_line(&help, name);
        let explanation = line.trim_start()[name.len()..].trim();
        assert!(
            explanation.split_whitespace().count() >= 3,
            "`{name}` needs an explanation: {line:?}"
        );
    }
    assert!(
        command_line(&help, "build").to_lowercase().contains("feed"),
        "{help}"
    );
    assert!(
        command_line(&help, "check")
            .to_lowercase()
            .contains("validate"),
        "{help}"
    );
    assert!(help.contains("--config"), "{help}");
}

#[test]
fn herald_build_help_explains_writing_and_exit_codes() {
    let out = herald(&["build", "--help"]);
    let help = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lower = help.to_lowercase();
    assert!(lower.contains("content directory"), "{help}");
    assert!(lower.contains("feed"), "{help}");
    assert!(
        lower.contains("exits 1") && lower.contains("2"),
        "exit codes are documented: {help}"
    );
    assert!(help.contains("--config"), "{help}");
}

#[test]
fn herald_check_help_says_it_writes_nothing() {
    let out = herald(&["check", "--help"]);
    let help = text(&out.stdout).to_lowercase();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        help.contains("write nothing") || help.contains("writes nothing"),
        "{help}"
    );
}

#[test]
fn herald_without_a_command_fails_with_usage() {
    let out = herald(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).to_lowercase().contains("usage"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn herald_check_names_a_bad_file_exits_1_and_writes_nothing() {
    let site = TestSite::new();
    site.write(
        "good.md",
        "+++\ntitle = \"Good\"\ndate = 2024-01-01\ntags = [\"t\"]\n+++\nBody.\n",
    );
    site.write(
        "undated.txt",
        "Undated\n\nA first-seen date would be recorded by build.\n",
    );
    site.write("broken.md", "+++\ntitle = \"Broken\"\n");

    let out = site.cli(&["check"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let shown = site.content.join("broken.md").display().to_string();
    assert!(
        err.lines().any(|l| l.starts_with(&format!("rejected: {shown}:1: ")) && l.contains("never closed")),
        "{err}"
    );
    let empty = std::fs::read_dir(&site.feeds)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true);
    assert!(empty, "check wrote into {}", site.feeds.display());
    assert!(
        !site.data.join("first-seen.json").exists(),
        "check recorded first-seen dates"
    );
    let summary = summary_line(&err);
    assert!(
        summary.starts_with("published 2 articles, rejected 1 file, 0 drafts, 0 scheduled;"),
        "{summary}"
    );
    assert!(summary.contains("nothing written"), "{summary}");
}

#[test]
fn herald_check_on_a_clean_site_exits_0_and_still_writes_nothing() {
    let site = TestSite::new();
    site.write(
        "good.md",
        "+++\ntitle = \"Good\"\ndate = 2024-01-01\n+++\nBody.\n",
    );
    let out = site.cli(&["check"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        !site.feeds.exists(),
        "check created {}",
        site.feeds.display()
    );
    assert!(
        summary_line(&err).contains("feeds valid, nothing written"),
        "{err}"
    );
}

#[test]
fn herald_build_with_a_missing_content_directory_exits_2_naming_it() {
    let mut site = TestSite::new();
    let missing = site.dir.path().join("no-such-content");
    site.content_override = Some(missing.clone());
    let out = site.cli(&["build"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{err}"));
    assert!(line.contains(&missing.display().to_string()), "{line}");
    assert!(!site.feeds.exists(), "a fatal error writes nothing");
}

#[test]
fn herald_build_with_a_missing_config_file_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("absent.toml");
    let out = herald(&["build", "--config", config.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("error: ") && err.contains("absent.toml"),
        "{err}"
    );
}

#[test]
fn herald_build_prints_the_summary_line_and_exits_0_when_nothing_is_rejected() {
    let site = TestSite::new();
    site.write(
        "a.md",
        "+++\ntitle = \"A\"\ndate = 2024-01-01\ntags = [\"one\"]\n+++\nBody.\n",
    );
    site.write("b.md", "---\ntitle: B\ndate: 2024-01-02\n---\nBody.\n");
    site.write("_drafts/c.md", "+++\ntitle = \"C\"\n+++\nBody.\n");
    let far_future = "+++\ntitle = \"Later\"\ndate = 2999-01-01\n+++\nBody.\n";
    site.write("later.md", far_future);

    let out = site.cli(&["build"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let summary = summary_line(&err);
    let want = "published 2 articles, rejected 0 files, 1 draft, 1 scheduled; wrote 6 files (0 unchanged, 0 removed) in ";
    assert!(
        summary.starts_with(want),
        "summary\n  got:  {summary}\n  want: {want}…"
    );
    let rest = &summary[want.len()..];
    let (seconds, tail) = rest.split_once(" s").unwrap_or_else(|| panic!("{summary}"));
    assert!(
        seconds.parse::<f64>().is_ok(),
        "elapsed seconds: {seconds:?}"
    );
    assert!(
        tail.is_empty() || (tail.starts_with(", peak memory ") && tail.ends_with(" MiB")),
        "{summary}"
    );
    assert_eq!(
        summary,
        err.lines().last().unwrap(),
        "the summary comes last"
    );
}

#[test]
fn herald_build_exits_1_when_a_file_is_rejected_but_still_writes_feeds() {
    let site = TestSite::new();
    site.write(
        "a.md",
        "+++\ntitle = \"A\"\ndate = 2024-01-01\n+++\nBody.\n",
    );
    site.write("bad.txt", "");
    let out = site.cli(&["build"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        summary_line(&err).starts_with("published 1 article, rejected 1 file,"),
        "{err}"
    );
    for name in ["rss.xml", "atom.xml", "feed.json"] {
        assert!(site.feeds.join(name).is_file(), "{name}");
    }
}
