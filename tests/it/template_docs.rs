//! The template authors' reference stays honest: every field the README
//! lists for a template is in the sample data herald checks that template
//! against, every top-level field of that data is listed, and the data of
//! real pages and emails (through the real binary, with override templates
//! that print their own field names) has exactly the fields of a sample.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use herald::templates::{entry_samples, sample_digest};
use serde_json::Value;

use super::digest_cli::{digest_site, send_news, text};
use super::helpers::{repo_root, start_herald};

/// (template names, fields) of each `### ` part of the README's Templates
/// section.
fn readme_templates() -> Vec<(Vec<String>, Vec<String>)> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme
        .find("\n## Templates\n")
        .expect("a Templates section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let ticked = |line: &str| -> Vec<String> {
        line.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    section
        .split("\n### ")
        .skip(1)
        .map(|part| {
            let heading = part.lines().next().unwrap();
            let fields = part
                .lines()
                .filter(|l| l.starts_with("| `"))
                .flat_map(|l| ticked(l.split(" | ").next().unwrap()))
                .collect();
            (ticked(heading), fields)
        })
        .collect()
}

/// Whether `path` (`a.b`, `a[].b`, `a[]`) is in `data`.
fn has(data: &Value, path: &str) -> bool {
    let mut at = data;
    for seg in path.split('.') {
        let (name, list) = match seg.strip_suffix("[]") {
            Some(n) => (n, true),
            None => (seg, false),
        };
        let Some(v) = at.get(name) else { return false };
        at = v;
        if list {
            let Some(first) = at.as_array().and_then(|a| a.first()) else {
                return false;
            };
            at = first;
        }
    }
    true
}

fn sample_of(name: &str) -> Option<Value> {
    entry_samples()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, variants)| variants[0].clone())
}

#[test]
fn readme_lists_only_fields_the_templates_get() {
    let parts = readme_templates();
    let documented: BTreeSet<String> = parts.iter().flat_map(|(n, _)| n.clone()).collect();
    for (name, _) in entry_samples() {
        assert!(documented.contains(name), "README has no part for {name}");
    }
    for (names, fields) in &parts {
        assert!(!fields.is_empty(), "{names:?} lists no fields");
        for name in names {
            let digest = sample_digest();
            for field in fields {
                let found = match name.as_str() {
                    "layout.html" => {
                        field == "title" || has(&sample_of("subscribe.html").unwrap(), field)
                    }
                    "digest_layout.html" => has(&digest, field),
                    "digest_article.html" | "digest_article.txt" => {
                        match field.strip_prefix("@root.") {
                            Some(root) => has(&digest, root),
                            None => field == "number" || has(&digest["articles"][0], field),
                        }
                    }
                    other => has(
                        &sample_of(other).unwrap_or_else(|| panic!("no template {other}")),
                        field,
                    ),
                };
                assert!(
                    found,
                    "README lists `{field}` for {name}, its data has none"
                );
            }
            // Every top-level field of a template's data is listed.
            if let Some(sample) = sample_of(name) {
                for key in sample.as_object().unwrap().keys() {
                    assert!(
                        fields.iter().any(|f| f == key
                            || f.starts_with(&format!("{key}."))
                            || f.starts_with(&format!("{key}["))),
                        "README does not list `{key}` for {name}"
                    );
                }
            }
        }
    }
}

/// An override that prints the names of its data's fields.
const KEYS: &str = "KEYS[{{#each this}}{{@key}},{{/each}}]";

/// The field names a page or email printed with [`KEYS`].
fn keys_in(s: &str) -> BTreeSet<String> {
    let start = s.find("KEYS[").unwrap_or_else(|| panic!("no KEYS in {s}")) + 5;
    let end = start + s[start..].find(']').unwrap();
    s[start..end]
        .split(',')
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

/// The field names of each sample variant of `name`.
fn sample_keys(name: &str) -> Vec<BTreeSet<String>> {
    entry_samples()
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap()
        .1
        .iter()
        .map(|v| v.as_object().unwrap().keys().cloned().collect())
        .collect()
}

fn assert_like_a_sample(name: &str, real: &BTreeSet<String>) {
    let samples = sample_keys(name);
    assert!(
        samples.contains(real),
        "{name} gets {real:?}, its samples have {samples:?}"
    );
}

fn http(port: u16, request: &str) -> String {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    response
}

fn get(port: u16, path: &str) -> String {
    http(
        port,
        &format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n"),
    )
}

fn post_email(port: u16, email: &str) -> String {
    let body = format!("email={email}");
    http(
        port,
        &format!(
            "POST /subscribe HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// The plain-text parts of the outbox's messages whose subject has `what`.
fn outbox_texts(outbox: &std::path::Path, what: &str) -> Vec<String> {
    std::fs::read_dir(outbox)
        .unwrap()
        .filter_map(|e| {
            let raw = std::fs::read(e.unwrap().path()).unwrap();
            let m = mail_parser::MessageParser::default().parse(&raw)?;
            let subject = m.subject()?.to_string();
            subject
                .contains(what)
                .then(|| m.body_text(0).unwrap().into_owned())
        })
        .collect()
}

#[test]
fn real_pages_and_emails_get_the_fields_of_their_sample_data() {
    let mut site = digest_site();
    let templates = site.dir.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    for name in [
        "feeds.html",
        "subscribe.html",
        "message.html",
        "unsubscribe.html",
        "preferences.html",
        "confirm.txt",
        "digest.txt",
    ] {
        std::fs::write(templates.join(format!("{name}.hbs")), KEYS).unwrap();
    }
    site.top = format!("templates_dir = {:?}", templates.display().to_string());
    site.extra.push_str("\n[subscribers]\ntags = [\"rust\"]\n");
    let out = site.cli(&[
        "subscribers",
        "add",
        "ann@example.org",
        "--confirmed",
        "--note",
        "t",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id: i64 = text(&out.stdout)
        .split("(id ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    {
        let (_daemon, port) = start_herald(&mut site);
        let start = Instant::now();
        while !get(port, "/readyz").starts_with("HTTP/1.0 200") {
            assert!(start.elapsed() < Duration::from_secs(30));
            std::thread::sleep(Duration::from_millis(50));
        }
        let secret = std::fs::read_to_string(site.data.join("signing-secret")).unwrap();
        let signer = herald::subscribers::tokens::Signer::new(secret.trim().as_bytes()).unwrap();
        let token = signer.manage_token(id, chrono::Utc::now());

        assert_like_a_sample("feeds.html", &keys_in(&get(port, "/")));
        assert_like_a_sample("subscribe.html", &keys_in(&get(port, "/subscribe")));
        assert_like_a_sample(
            "subscribe.html",
            &keys_in(&post_email(port, "not-an-address")),
        );
        assert_like_a_sample(
            "message.html",
            &keys_in(&post_email(port, "bo%40example.org")),
        );
        assert_like_a_sample("message.html", &keys_in(&get(port, "/confirm?token=bad")));
        let page = get(port, &format!("/unsubscribe?token={token}"));
        assert_like_a_sample("unsubscribe.html", &keys_in(&page));
        let page = get(port, &format!("/preferences?token={token}"));
        assert_like_a_sample("preferences.html", &keys_in(&page));
    }
    let out = send_news(&site);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let outbox = site.dir.path().join("outbox");
    let confirm = outbox_texts(&outbox, "Confirm");
    assert_eq!(confirm.len(), 1);
    assert_like_a_sample("confirm.txt", &keys_in(&confirm[0]));
    let digest = outbox_texts(&outbox, "Hello");
    assert_eq!(digest.len(), 1);
    assert_like_a_sample("digest.txt", &keys_in(&digest[0]));
}
