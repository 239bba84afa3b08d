//! `HERALD_SECTION__KEY=value` environment overrides, applied to the
//! parsed TOML table before it is deserialized, so that an override is
//! checked exactly like the same key in the file.
//!
//! A value is first given to its key as the exact text of the variable:
//! a string key (a password, a title) takes it verbatim, never parsed, so
//! `12345678`, `true`, `"quoted"` or `1979-05-27 07:32:00Z` stay what they
//! are. Only when the key refuses a string (a number, a boolean, a list)
//! is the value read as TOML and tried again.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;

use super::error::{is_within, ConfigError, SECRET_KEYS};

/// Environment variables the command line reads itself; they are not
/// config overrides.
const RESERVED_ENV: &[&str] = &["HERALD_CONFIG", "HERALD_LOG", "HERALD_LOG_FORMAT"];
pub(super) const ENV_PREFIX: &str = "HERALD_";

/// One `HERALD_…` variable and the key it sets.
#[derive(Debug, Clone)]
pub(super) struct Override {
    pub var: String,
    /// `feeds.limit` for `HERALD_FEEDS__LIMIT`.
    pub key: String,
    path: Vec<String>,
    raw: String,
}

/// The override variables in `env`, in a fixed order.
pub(super) fn overrides(
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<Override>, ConfigError> {
    let mut found: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !RESERVED_ENV.contains(&k.as_str()))
        .collect();
    found.sort();
    found
        .into_iter()
        .map(|(var, raw)| {
            let path: Vec<String> = var[ENV_PREFIX.len()..]
                .split("__")
                .map(|s| s.to_ascii_lowercase())
                .collect();
            if path.iter().any(|s| s.is_empty()) {
                return Err(ConfigError::Env {
                    var,
                    key: None,
                    message: "malformed override name (use HERALD_SECTION__KEY, e.g. HERALD_FEEDS__LIMIT)".into(),
                });
            }
            Ok(Override {
                key: path.join("."),
                var,
                path,
                raw,
            })
        })
        .collect()
}

/// The keys the environment set: key -> variable. Kept on the config so
/// that later checks name the variable rather than the file.
pub(super) fn origins(overrides: &[Override]) -> BTreeMap<String, String> {
    overrides
        .iter()
        .map(|o| (o.key.clone(), o.var.clone()))
        .collect()
}

/// Deserializes `file` with `overrides` applied. Each override is a string
/// until its key refuses one; then it is read as TOML once.
pub(super) fn deserialize<T: DeserializeOwned>(
    file: &toml::Table,
    overrides: &[Override],
) -> Result<T, ConfigError> {
    let mut as_toml = BTreeSet::new();
    loop {
        let mut table = file.clone();
        for (i, o) in overrides.iter().enumerate() {
            apply(&mut table, o, as_toml.contains(&i))?;
        }
        let err = match serde_path_to_error::deserialize(toml::Value::Table(table)) {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        let key = match err.path().to_string() {
            root if root == "." => String::new(),
            key => key,
        };
        // toml repeats the key on a line of its own (`in `feeds.limit``):
        // the key is named already, and a config error is one line.
        let message = err
            .into_inner()
            .to_string()
            .lines()
            .map(str::trim)
            .filter(|l| !(l.is_empty() || l.starts_with("in `") && l.ends_with('`')))
            .collect::<Vec<_>>()
            .join(" ");
        let retry = overrides.iter().position(|o| {
            o.key == key && message.starts_with("invalid type: string") && typed(&o.raw).is_some()
        });
        match retry {
            Some(i) if as_toml.insert(i) => continue,
            _ => return Err(blame(file, overrides, &key, message)),
        }
    }
}

/// Sets the override's key in `table`: the raw text, or its TOML reading.
fn apply(table: &mut toml::Table, o: &Override, as_toml: bool) -> Result<(), ConfigError> {
    let (last, parents) = o.path.split_last().expect("a name has one part at least");
    let mut current = table;
    for (depth, part) in parents.iter().enumerate() {
        let entry = current
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(ConfigError::Env {
                    var: o.var.clone(),
                    key: Some(o.key.clone()),
                    message: format!(
                        "config key `{}` is not a section, so it has no key `{}`",
                        o.path[..=depth].join("."),
                        o.path[depth + 1..].join(".")
                    ),
                })
            }
        };
    }
    let value = match as_toml.then(|| typed(&o.raw)).flatten() {
        Some(v) => v,
        None => toml::Value::String(o.raw.clone()),
    };
    current.insert(last.clone(), value);
    Ok(())
}

/// The raw text read as a TOML value other than a string (a number, a
/// boolean, an array, a table), if it is one.
fn typed(raw: &str) -> Option<toml::Value> {
    let mut t: toml::Table = format!("v = {raw}").parse().ok()?;
    match t.remove("v")? {
        toml::Value::String(_) => None,
        v => Some(v),
    }
}

/// Which source an error at `key` is about: the variable that set the key
/// (or a section holding it, or an unknown key below it, or a section only
/// it created), else the file.
fn blame(file: &toml::Table, overrides: &[Override], key: &str, message: String) -> ConfigError {
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, _)| {
            if key.is_empty() {
                field.to_string()
            } else {
                format!("{key}.{field}")
            }
        });
    // The variable that set the key, a section holding it, or an unknown
    // key itself.
    let exact = overrides
        .iter()
        .find(|o| Some(&o.key) == unknown.as_ref() || is_within(key, &o.key));
    let created = || {
        overrides
            .iter()
            .find(|o| !key.is_empty() && is_within(&o.key, key) && !in_table(file, key))
    };
    let Some(o) = exact.or_else(created) else {
        return ConfigError::Key {
            key: key.to_string(),
            message,
        };
    };
    // serde's messages quote the value (`invalid type: integer
    // `12345678``): never for a key that holds a secret, or a section
    // holding one.
    let may_hold_secret = SECRET_KEYS.iter().any(|s| is_within(s, &o.key));
    let quotes_a_value = message.starts_with("invalid type")
        || message.starts_with("invalid value")
        || message.contains(o.raw.trim());
    let message = if may_hold_secret && quotes_a_value {
        let expected = message
            .split_once(", expected ")
            .and_then(|(_, e)| e.lines().next())
            .map(|e| format!(", expected {e}"))
            .unwrap_or_default();
        format!("the value does not fit (not shown: it may be a secret){expected}")
    } else {
        message
    };
    ConfigError::Env {
        var: o.var.clone(),
        key: Some(key.to_string()).filter(|k| !k.is_empty()),
        message,
    }
}

/// Whether the dotted `key` is present in the file's table.
fn in_table(table: &toml::Table, key: &str) -> bool {
    let mut current = table;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        match current.get(*part) {
            Some(toml::Value::Table(t)) => current = t,
            Some(_) => return i + 1 == parts.len(),
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use crate::config::tests::MINIMAL;
    use crate::config::{Config, ConfigError};

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn string_keys_take_the_value_verbatim() {
        for raw in [
            "12345678",
            "true",
            "0x1F",
            "1e3",
            "\"quoted\"",
            "1979-05-27 07:32:00Z",
            "[1, 2]",
            "{ a = 1 }",
            "",
            " spaced ",
        ] {
            let c = Config::parse_with_env(
                MINIMAL,
                env(&[
                    ("HERALD_MAIL__SMTP__PASSWORD", raw),
                    ("HERALD_SITE__TITLE", raw),
                    ("HERALD_MAIL__SMTP__HOST", raw),
                ]),
            );
            // An empty or blank title is refused by validation, by name.
            if raw.trim().is_empty() {
                let err = c.unwrap_err().to_string();
                assert!(err.contains("HERALD_SITE__TITLE"), "{err}");
                continue;
            }
            let c = c.unwrap_or_else(|e| panic!("{raw:?}: {e}"));
            assert_eq!(c.mail.smtp.password.unwrap().expose(), raw);
            assert_eq!(c.site.title, raw);
            assert_eq!(c.mail.smtp.host, raw);
        }
    }

    #[test]
    fn typed_keys_read_the_value_as_toml() {
        let c = Config::parse_with_env(
            MINIMAL,
            env(&[
                ("HERALD_FEEDS__LIMIT", "7"),
                ("HERALD_FEEDS__TAG_FEEDS", "false"),
                ("HERALD_FEEDS__FORMATS", "[\"atom\", \"rss\"]"),
                ("HERALD_MAIL__RATE_LIMIT", "2.5"),
                ("HERALD_MAIL__SMTP__PORT", "2525"),
                ("HERALD_CONTENT__MAX_FILE_SIZE", "1 MiB"),
            ]),
        )
        .unwrap();
        assert_eq!(c.feeds.limit, 7);
        assert!(!c.feeds.tag_feeds);
        assert_eq!(c.feeds.formats.len(), 2);
        assert_eq!(c.mail.rate_limit, 2.5);
        assert_eq!(c.mail.smtp.port, 2525);
        assert_eq!(c.content.max_file_size.0, 1 << 20);
    }

    #[test]
    fn errors_name_the_variable_and_not_the_file() {
        for (var, raw, key) in [
            ("HERALD_FEEDS__LIMIT", "many", "feeds.limit"),
            ("HERALD_FEEDS__LIMMIT", "3", "feeds"),
            ("HERALD_NOPE", "3", ""),
            ("HERALD_SITE__BASE_URL", "example.org", "site.base_url"),
            ("HERALD_MAIL__BATCH_SIZE", "0", "mail.batch_size"),
            ("HERALD_SITE__TITLE__X", "3", "site.title"),
            ("HERALD_MAIL__DKIM__PRIVATE_KEY", "k3y-s3cret", "mail.dkim"),
            ("HERALD__FEEDS", "3", ""),
        ] {
            let err = Config::parse_with_env(MINIMAL, env(&[(var, raw)])).unwrap_err();
            assert!(!err.is_about_the_file(), "{var}: {err}");
            let text = err.to_string();
            assert!(text.contains(var), "{var}: {text}");
            assert!(text.contains(key), "{var}: {text}");
            assert!(!text.contains("k3y-s3cret"), "{text}");
        }
        // The file's own mistakes still name the key.
        let err = Config::parse(&format!("{MINIMAL}[feeds]\nlimit = \"x\"\n")).unwrap_err();
        assert!(err.is_about_the_file());
        assert!(
            err.to_string().contains("config key `feeds.limit`"),
            "{err}"
        );
    }

    #[test]
    fn a_secret_with_a_wrong_shape_is_never_quoted() {
        // A whole section from one variable, holding the password.
        let err = Config::parse_with_env(
            MINIMAL,
            env(&[("HERALD_MAIL__SMTP", "{ password = 12345678 }")]),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("HERALD_MAIL__SMTP"), "{text}");
        assert!(!text.contains("12345678"), "{text}");
    }

    #[test]
    fn secrets_written_in_the_file_are_refused_by_name() {
        for (section, key, var) in [
            ("[mail.smtp]", "password", "HERALD_MAIL__SMTP__PASSWORD"),
            ("[subscribers]", "secret", "HERALD_SUBSCRIBERS__SECRET"),
            (
                "[mail.dkim]\ndomain = \"d\"\nselector = \"s\"",
                "private_key",
                "HERALD_MAIL__DKIM__PRIVATE_KEY",
            ),
        ] {
            let text = format!("{MINIMAL}{section}\n{key} = \"hunter2-hunter2\"\n");
            let err = Config::parse(&text).unwrap_err();
            assert!(matches!(err, ConfigError::SecretInFile { .. }), "{err}");
            let text = err.to_string();
            assert!(text.contains(var) && text.contains(key), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
    }
}
