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

/// `section.key` for every key in the sample config, set or commented out
/// (`# key = …`), with the line that sets it.
fn sample_keys() -> Vec<(String, String)> {
    let mut section = String::new();
    let mut keys = Vec::new();
    for line in sample_config().lines() {
        let t = line.trim();
        if t.starts_with('[') {
            section = t.trim_matches(['[', ']']).to_string();
            continue;
        }
        let body = t.strip_prefix('#').map(str::trim).unwrap_or(t);
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
        keys.push((full, line.to_string()));
    }
    keys
}

#[test]
fn the_sample_config_parses_as_it_is() {
    let config = Config::parse(&sample_config()).expect("config/herald.toml is valid");
    assert_eq!(config.content.dir, std::path::PathBuf::from("content"));
}

#[test]
fn readme_documents_every_config_key() {
    let documented = readme_keys();
    let sample: BTreeSet<String> = sample_keys().into_iter().map(|(k, _)| k).collect();
    assert_eq!(documented, sample, "README table vs config/herald.toml");
}

#[test]
fn every_commented_out_key_in_the_sample_config_is_a_real_key() {
    let text = sample_config();
    for (key, line) in sample_keys() {
        if !line.trim_start().starts_with('#') {
            continue;
        }
        let uncommented = text.replacen(
            &line,
            line.trim_start().trim_start_matches('#').trim_start(),
            1,
        );
        Config::parse(&uncommented)
            .unwrap_or_else(|e| panic!("`{key}` from `{line}` is rejected: {e:#}"));
    }
}

#[test]
fn a_key_the_code_does_not_know_is_rejected_by_name() {
    let text = sample_config().replace("tag_feeds = true", "tag_feeds = true\ntag_feds = false");
    let err = format!("{:#}", Config::parse(&text).unwrap_err());
    assert!(err.contains("tag_feds"), "{err}");
}
