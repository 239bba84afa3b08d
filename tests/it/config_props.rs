//! Property tests of the config loader: arbitrary TOML-ish text, and
//! arbitrary `HERALD_…` overrides on a valid file, never make it panic,
//! and every failure names what it is about: a config key (or the line of
//! a TOML syntax error), or the variable. A secret's value never shows in
//! a message.
//!
//! Cases per property: 1,024, about 3 s for both in a debug build. To run
//! longer (20,000 cases: about a minute),
//! `PROPTEST_CASES=100000 cargo test --test it config_props`.

use herald::config::{Config, ConfigError};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

const SECTIONS: &[&str] = &[
    "[site]",
    "[site.author]",
    "[content]",
    "[feeds]",
    "[server]",
    "[rescan]",
    "[websub]",
    "[subscribers]",
    "[mail]",
    "[mail.smtp]",
    "[mail.dkim]",
    "[[digest]]",
    "[nope]",
    "[feeds.x]",
];

const KEYS: &[&str] = &[
    "title",
    "base_url",
    "author",
    "name",
    "email",
    "url",
    "description",
    "language",
    "timezone",
    "dir",
    "max_file_size",
    "article_url",
    "limit",
    "tag_limit",
    "content",
    "formats",
    "tag_feeds",
    "listen",
    "cache_control",
    "shutdown_grace",
    "request_timeout",
    "schedule",
    "watch",
    "debounce",
    "hubs",
    "database",
    "secret",
    "secret_file",
    "confirm_expiry",
    "pending_purge_after",
    "max_requests_per_ip_per_hour",
    "resend_after",
    "tags",
    "transport",
    "outbox_dir",
    "from",
    "postal_address",
    "unsubscribe_mailto",
    "rate_limit",
    "max_attempts",
    "retry_base",
    "retry_max",
    "bounce_limit",
    "batch_size",
    "queue_poll",
    "smtputf8",
    "host",
    "port",
    "tls",
    "username",
    "password",
    "pool_size",
    "timeout",
    "domain",
    "selector",
    "algorithm",
    "private_key_file",
    "private_key",
    "subject",
    "max_articles",
    "first_digest_articles",
    "data_dir",
    "templates_dir",
    "limmit",
];

/// Real (section, key) pairs, so that generated values often land where
/// a parser reads them.
const PAIRS: &[(&str, &str)] = &[
    ("", "data_dir"),
    ("", "templates_dir"),
    ("[site]", "title"),
    ("[site]", "base_url"),
    ("[site]", "language"),
    ("[site]", "timezone"),
    ("[site]", "description"),
    ("[site.author]", "email"),
    ("[content]", "max_file_size"),
    ("[content]", "article_url"),
    ("[content]", "dir"),
    ("[feeds]", "limit"),
    ("[feeds]", "formats"),
    ("[feeds]", "base_url"),
    ("[feeds]", "content"),
    ("[server]", "listen"),
    ("[server]", "cache_control"),
    ("[server]", "shutdown_grace"),
    ("[server]", "request_timeout"),
    ("[rescan]", "schedule"),
    ("[rescan]", "debounce"),
    ("[websub]", "hubs"),
    ("[subscribers]", "confirm_expiry"),
    ("[subscribers]", "pending_purge_after"),
    ("[subscribers]", "resend_after"),
    ("[subscribers]", "tags"),
    ("[subscribers]", "secret"),
    ("[mail]", "transport"),
    ("[mail]", "from"),
    ("[mail]", "rate_limit"),
    ("[mail]", "retry_base"),
    ("[mail]", "retry_max"),
    ("[mail]", "max_attempts"),
    ("[mail]", "batch_size"),
    ("[mail]", "queue_poll"),
    ("[mail]", "postal_address"),
    ("[mail]", "unsubscribe_mailto"),
    ("[mail]", "smtputf8"),
    ("[mail.smtp]", "host"),
    ("[mail.smtp]", "port"),
    ("[mail.smtp]", "tls"),
    ("[mail.smtp]", "timeout"),
    ("[mail.smtp]", "password"),
    ("[mail.dkim]", "domain"),
    ("[mail.dkim]", "algorithm"),
    ("[[digest]]", "name"),
    ("[[digest]]", "schedule"),
    ("[[digest]]", "timezone"),
    ("[[digest]]", "subject"),
    ("[[digest]]", "max_articles"),
    ("[[digest]]", "tags"),
];

/// Values that reach each parser's edges: units, cron, URLs, zones,
/// overflowing numbers, odd text.
const INTERESTING: &[&str] = &[
    "10 MiB",
    "18446744073709551615 GiB",
    "99999999999999999999h",
    "18446744073709551615h",
    "300ms",
    "0s",
    "7d",
    "5 parsecs",
    "0 */5 * * * *",
    "0 0 25 * * *",
    "*/5 * * * *",
    "0 0 7 30 Feb *",
    "0 0 0 1 1 * 1999",
    "@daily",
    "0 0 8 * * Mon",
    "https://example.org/",
    "example.org",
    "javascript:alert(1)",
    "Europe/Berlin",
    "Mars/Olympus",
    "en",
    "pt-BR",
    "x-",
    "/{year}/{slug}/",
    "/{nope}/",
    "outbox",
    "smtp",
    "starttls",
    "rsa",
    "full",
    "Name <a@example.org>",
    "a@bücher.example",
    "jörg@example.org",
    "\u{0}",
    "\r\n",
    "{{site.title}}",
    "{{#if",
    "0.0.0.0:8080",
    "[::1]:0",
    "",
    " ",
];

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A TOML-ish value: mostly valid TOML of every type, sometimes not.
fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        proptest::sample::select(INTERESTING).prop_map(toml_string),
        any::<String>().prop_map(|s| toml_string(&s)),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        Just("nan".to_string()),
        Just("-inf".to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
        Just("1979-05-27".to_string()),
        "[ -~]{0,12}",
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| format!("[{}]", v.join(", "))),
            proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..4).prop_map(
                |kv| {
                    let body: Vec<String> = kv.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                    format!("{{ {} }}", body.join(", "))
                }
            ),
        ]
    })
}

/// A few lines: a key of a real section with a value, a header, a key
/// anywhere, or garbage.
fn lines() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (proptest::sample::select(PAIRS), value(), 0..3usize).prop_map(|((section, key), v, extra)| {
            // `[[digest]]` needs a name and a schedule to get past them.
            let more = if section == "[[digest]]" && extra > 0 {
                "\nname = \"d\"\nschedule = \"0 0 8 * * *\""
            } else {
                ""
            };
            format!("{section}{more}\n{key} = {v}")
        }),
        2 => (proptest::sample::select(KEYS), value()).prop_map(|(k, v)| format!("{k} = {v}")),
        1 => proptest::sample::select(SECTIONS).prop_map(str::to_string),
        1 => any::<String>(),
    ]
}

/// What the rest of herald does with a config at once: none of it may
/// panic on a config that loaded.
fn use_it(config: &Config) {
    let _ = herald::digest::RateLimiter::new(config.mail.rate_limit);
    let policy = herald::digest::RetryPolicy::from_config(config);
    for attempt in 1..=config.mail.max_attempts.min(40) {
        let _ = policy.delay(attempt);
    }
    let now = chrono::Utc::now();
    for d in &config.digest {
        let _ = d.describe_next(&config.site, now);
    }
    let _ = config.rescan.schedule.next_after(now, chrono_tz::UTC);
    let _ = config.page_url("subscribe", Some("t"));
    let _ = herald::mail::Mailer::check_config(config);
    for d in [
        config.subscribers.confirm_expiry,
        config.subscribers.pending_purge_after,
        config.server.shutdown_grace,
    ] {
        let _ = now + chrono::Duration::from_std(d.0).unwrap();
    }
}

const VALID_SITE: &str =
    "[site]\ntitle = \"T\"\nbase_url = \"https://example.org/\"\nauthor = { name = \"A\" }\n";

/// Whether an error says what it is about.
fn names_its_subject(err: &ConfigError) -> bool {
    match err {
        ConfigError::Syntax(m) => m.contains("line "),
        ConfigError::Key { key, message } => !key.is_empty() || message.contains("field `"),
        ConfigError::SecretInFile { key, var, .. } => !key.is_empty() && var.starts_with("HERALD_"),
        ConfigError::Env { var, .. } => var.starts_with("HERALD_"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn arbitrary_toml_ish_text_never_panics_and_errors_name_a_key_or_line(
        with_site in any::<bool>(),
        lines in proptest::collection::vec(lines(), 0..12),
    ) {
        let text = format!("{}{}", if with_site { VALID_SITE } else { "" }, lines.join("\n"));
        match Config::parse(&text) {
            Ok(config) => use_it(&config),
            Err(err) => prop_assert!(names_its_subject(&err), "{err}\n--- from:\n{text}"),
        }
    }

    #[test]
    fn arbitrary_env_overrides_never_panic_and_errors_name_the_variable(
        overrides in proptest::collection::vec(
            (
                prop_oneof![
                    3 => (proptest::sample::select(SECTIONS), proptest::sample::select(KEYS))
                        .prop_map(|(s, k)| {
                            let section = s.trim_matches(['[', ']']).replace('.', "__");
                            format!("HERALD_{}__{}", section, k).to_uppercase()
                        }),
                    1 => "HERALD_[A-Z_]{0,20}",
                ],
                prop_oneof![
                    value(),
                    any::<String>(),
                    proptest::sample::select(INTERESTING).prop_map(str::to_string),
                ],
            ),
            0..6,
        ),
        secrets in proptest::collection::vec(
            (
                proptest::sample::select(&[
                    "HERALD_MAIL__SMTP__PASSWORD",
                    "HERALD_SUBSCRIBERS__SECRET",
                    "HERALD_MAIL__DKIM__PRIVATE_KEY",
                    "HERALD_MAIL__SMTP",
                    "HERALD_MAIL__DKIM",
                    "HERALD_SUBSCRIBERS",
                    "HERALD_MAIL__SMTP__PASSWORD__X",
                ][..]),
                // Marked, so that finding one in a message means a leak.
                prop_oneof![
                    "s3cr3t[a-z0-9]{6}",
                    "[1-9][0-9]{9}",
                    "\"s3cr3t[a-z0-9]{6}\"",
                    "\\{ (password|secret|private_key) = [1-9][0-9]{9} \\}",
                    "\\{ (password|secret|private_key) = \"s3cr3t[a-z]{6}\" \\}",
                    "\\[[1-9][0-9]{9}\\]",
                ],
            ),
            0..3,
        ),
    ) {
        let env: Vec<(String, String)> = overrides
            .iter()
            .cloned()
            .chain(secrets.iter().map(|(k, v)| (k.to_string(), v.clone())))
            .collect();
        match Config::parse_with_env(VALID_SITE, env.clone()) {
            Ok(config) => {
                // A string key took its variable verbatim.
                if let Some((_, raw)) = env.iter().rev().find(|(k, _)| k == "HERALD_SITE__TITLE") {
                    if env.iter().filter(|(k, _)| k.starts_with("HERALD_SITE")).count() == 1 {
                        prop_assert_eq!(&config.site.title, raw);
                    }
                }
            }
            Err(err) => {
                prop_assert!(!err.is_about_the_file(), "blames the file: {err}\n{env:?}");
                let ConfigError::Env { var, .. } = &err else {
                    return Err(TestCaseError::fail(format!("not an Env error: {err}")));
                };
                prop_assert!(env.iter().any(|(k, _)| k == var), "{err}\n{env:?}");
                // No secret's value in the message.
                let text = err.to_string();
                for (k, v) in &secrets {
                    let marked = v
                        .split(|c: char| !c.is_ascii_alphanumeric())
                        .filter(|t| t.starts_with("s3cr3t") || t.len() >= 10);
                    for token in marked {
                        prop_assert!(!text.contains(token), "{text} shows the value of {k}");
                    }
                }
            }
        }
    }
}
