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
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
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
        // A secret is a real key that the file may not hold: refused as
        // such, by name.
        if herald::config::SECRET_KEYS.contains(&k.key.as_str()) {
            let err = Config::parse(&uncommented).unwrap_err();
            assert!(
                matches!(&err, herald::config::ConfigError::SecretInFile { key, .. } if *key == k.key),
                "{err}"
            );
            continue;
        }
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

/// (key, default cell) of every README row.
fn readme_defaults() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme.find("<!-- config-reference").unwrap();
    readme[start..]
        .lines()
        .skip_while(|l| !l.starts_with("| key"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split(" | ").collect();
            let key = cells[0].split('`').nth(1).unwrap().to_string();
            (key, cells[1].trim().to_string())
        })
        .collect()
}

/// A minimal config with `key = value` set (a `[[digest]]` entry is
/// there for `digest.*` keys, a `[[feeds.section]]` for `feeds.section.*`).
fn with_key(key: &str, value: Option<&str>) -> String {
    let mut text = String::new();
    let mut digest = "[[digest]]\nname = \"d\"\nschedule = \"0 0 8 * * *\"\n".to_string();
    if let Some(k) = key.strip_prefix("feeds.section.") {
        let mut text = with_key("", None) + "[[feeds.section]]\npath = \"s\"\n";
        if let Some(v) = value {
            text.push_str(&format!("{k} = {v}\n"));
        }
        return text;
    }
    let mut tables: std::collections::BTreeMap<String, String> = Default::default();
    tables.insert(
        "site".into(),
        "title = \"T\"\nbase_url = \"https://example.org/\"\nauthor = { name = \"A\" }\n".into(),
    );
    // Optional sections whose other keys are required.
    if key.starts_with("mail.dkim.") {
        tables.insert(
            "mail.dkim".into(),
            "domain = \"example.org\"\nselector = \"s\"\n".into(),
        );
    }
    if let Some(v) = value {
        match key.rsplit_once('.') {
            None => text.push_str(&format!("{key} = {v}\n")),
            Some(("digest", k)) => digest.push_str(&format!("{k} = {v}\n")),
            Some((table, k)) => tables
                .entry(table.to_string())
                .or_default()
                .push_str(&format!("{k} = {v}\n")),
        }
    }
    for (table, body) in tables {
        text.push_str(&format!("[{table}]\n{body}"));
    }
    text + &digest
}

/// The README's defaults are the code's: setting a key to its documented
/// default gives the same configuration as leaving it out.
#[test]
fn readme_defaults_are_the_codes_defaults() {
    let mut checked = 0;
    for (key, default) in readme_defaults() {
        // `none`, `required` and defaults given as another key are not
        // literals; everything in backticks that TOML reads is.
        let Some(literal) = default.strip_prefix('`').and_then(|d| d.strip_suffix('`')) else {
            continue;
        };
        if format!("v = {literal}").parse::<toml::Table>().is_err() {
            continue;
        }
        let unset = format!("{:?}", Config::parse(&with_key(&key, None)).unwrap());
        let text = with_key(&key, Some(literal));
        let set = Config::parse(&text)
            .unwrap_or_else(|e| panic!("`{key} = {literal}` is rejected: {e:#}\n{text}"));
        assert_eq!(
            format!("{set:?}"),
            unset,
            "README says `{key}` defaults to {literal}, the code differs"
        );
        checked += 1;
    }
    assert!(checked > 40, "only {checked} defaults checked");
}
