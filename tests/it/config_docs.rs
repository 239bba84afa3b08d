//! The configuration reference cannot drift: the README's table, the sample
//! `config/herald.toml` and the keys the code accepts must agree.

use std::collections::BTreeSet;

use herald::config::Config;

use crate::helpers::repo_root;

fn sample_config() -> String {
    std::fs::read_to_string(repo_root().join("config/herald.toml")).unwrap()
}

/// Keys in the README's configuration table (first column, in backticks).
fn readme_keys() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme
        .find("<!-- config-reference")
        .expect("README has the config reference marker");
    readme[start..]
        .lines()
        .skip_while(|l| !l.starts_with("| key"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.split('`').nth(1).expect("key in backticks").to_string())
        .collect()
}

/// A key in the sample config, set or commented out (`# key = …`).
struct SampleKey {
    /// `section.key`.
    key: String,
    line: String,
    /// The `# [section]` line when the whole section is commented out.
    commented_section: Option<String>,
}

/// Every key in the sample config, with the line that sets it.
fn sample_keys() -> Vec<SampleKey> {
    let mut section = String::new();
    let mut commented_section = None;
    let mut keys = Vec::new();
    for line in sample_config().lines() {
        let t = line.trim();
        if t.starts_with('[') {
            section = t.trim_matches(['[', ']']).to_string();
            commented_section = None;
            continue;
        }
        let body = t.strip_prefix('#').map(str::trim).unwrap_or(t);
        if body.starts_with('[') && body.ends_with(']') && !body.contains(' ') {
            section = body.trim_matches(['[', ']']).to_string();
            commented_section = Some(line.to_string());
            continue;
        }
        let Some((key, _)) = body.split_once(" = ") else {
            continue;
        };
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            continue;
        }
        let full = if section.is_empty() {
            key.to_string()
        } else {
            format!("{section}.{key}")
        };
        keys.push(SampleKey {
            key: full,
            line: line.to_string(),
            commented_section: commented_section.clone(),
        });
    }
    keys
}

fn uncomment(text: &str, line: &str) -> String {
    text.replacen(
        line,
        line.trim_start().trim_start_matches('#').trim_start(),
        1,
    )
}

#[test]
fn the_sample_config_parses_as_it_is() {
    let config = Config::parse(&sample_config()).expect("config/herald.toml is valid");
    assert_eq!(config.content.dir, std::path::PathBuf::from("content"));
}

#[test]
fn readme_documents_every_config_key() {
    let documented = readme_keys();
    let sample: BTreeSet<String> = sample_keys().into_iter().map(|k| k.key).collect();
    assert_eq!(documented, sample, "README table vs config/herald.toml");
}

#[test]
fn every_commented_out_key_in_the_sample_config_is_a_real_key() {
    let text = sample_config();
    let keys = sample_keys();
    for k in &keys {
        if !k.line.trim_start().starts_with('#') {
            continue;
        }
        // A key of a commented-out section comes back with its section
        // header and the rest of the section's keys.
        let uncommented = match &k.commented_section {
            None => uncomment(&text, &k.line),
            Some(header) => keys
                .iter()
                .filter(|o| o.commented_section.as_ref() == Some(header))
                .fold(uncomment(&text, header), |t, o| uncomment(&t, &o.line)),
        };
        Config::parse(&uncommented)
            .unwrap_or_else(|e| panic!("`{}` from `{}` is rejected: {e:#}", k.key, k.line));
    }
}

#[test]
fn a_key_the_code_does_not_know_is_rejected_by_name() {
    let text = sample_config().replace("tag_feeds = true", "tag_feeds = true\ntag_feds = false");
    let err = format!("{:#}", Config::parse(&text).unwrap_err());
    assert!(err.contains("tag_feds"), "{err}");
}
