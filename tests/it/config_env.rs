//! `HERALD_…` overrides through the real binary: a string key takes the
//! variable's text verbatim (the SMTP server receives the password as it
//! was set), an error about a variable names the variable and never the
//! config file or a secret's value, and secrets written into the file are
//! refused.

use std::process::Output;

use super::digest_cli::{digest_site, smtp_site, text};
use super::helpers::{herald_command, TestSite};
use super::smtp::SmtpServer;

fn run(site: &TestSite, args: &[&str], env: &[(&str, &str)]) -> Output {
    herald_command(&site.config_path(), args)
        .envs(env.iter().copied())
        .output()
        .expect("herald runs")
}

#[test]
fn a_password_from_the_environment_reaches_the_smtp_server_verbatim() {
    let Some(smtp) = SmtpServer::start_with(&["--auth"]) else {
        return;
    };
    let site = smtp_site(&smtp, "", "username = \"herald\"");
    let passwords = [
        "12345678",
        "true",
        "0x1F",
        "1e3",
        "\"quoted\"",
        "1979-05-27 07:32:00Z",
    ];
    for (i, password) in passwords.iter().enumerate() {
        let reader = format!("reader{i}@example.org");
        let out = site.cli(&["subscribers", "add", &reader, "--confirmed", "--note", "t"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let env = [("HERALD_MAIL__SMTP__PASSWORD", *password)];
        let out = run(&site, &["digest", "send", "--schedule", "news"], &env);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{password}: {stdout}{stderr}");
        assert!(stdout.contains("sent: 1"), "{password}: {stdout}{stderr}");
        if password.len() > 4 {
            assert!(!stdout.contains(password) && !stderr.contains(password));
        }
    }
    let logins = smtp.logins();
    let received: Vec<&str> = logins.iter().map(|(_, p)| p.as_str()).collect();
    assert_eq!(received, passwords, "{}", smtp.log());
    assert!(logins.iter().all(|(l, _)| l == "herald"));
}

#[test]
fn an_error_about_a_variable_names_it_and_never_the_file_or_a_secret() {
    let site = digest_site();
    for (env, named) in [
        (
            vec![("HERALD_MAIL__SMTP__PORT", "twenty-five")],
            "HERALD_MAIL__SMTP__PORT",
        ),
        (vec![("HERALD_FEEDS__LIMMIT", "3")], "HERALD_FEEDS__LIMMIT"),
        (
            vec![("HERALD_MAIL__SMTP", "{ password = 12345678 }")],
            "HERALD_MAIL__SMTP",
        ),
        (
            vec![("HERALD_SUBSCRIBERS__SECRET__X", "k3y-s3cret-k3y-s3cret")],
            "HERALD_SUBSCRIBERS__SECRET__X",
        ),
    ] {
        for args in [&["check"][..], &["build"]] {
            let out = run(&site, args, &env);
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{env:?} {args:?}: {stderr}");
            assert!(stderr.contains(named), "{env:?}: {stderr}");
            assert!(!stderr.contains("herald.toml"), "{env:?}: {stderr}");
            for secret in ["12345678", "k3y-s3cret"] {
                assert!(!stderr.contains(secret), "{env:?}: {stderr}");
            }
        }
    }
}

#[test]
fn a_secret_written_in_the_config_file_is_refused_without_quoting_it() {
    let mut site = digest_site();
    site.extra
        .push_str("\n[subscribers]\nsecret = \"w0rd-w0rd-w0rd-w0rd-w0rd-w0rd-w0rd\"\n");
    let out = site.cli(&["check"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("subscribers.secret"), "{stderr}");
    assert!(stderr.contains("HERALD_SUBSCRIBERS__SECRET"), "{stderr}");
    assert!(!stderr.contains("w0rd"), "{stderr}");
}
