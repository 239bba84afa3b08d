//! `HERALD_SECTION__KEY=value` environment overrides, applied to the
//! parsed TOML table before it is deserialized, so that an override is
//! checked exactly like the same key in the file.

use anyhow::bail;

/// Environment variables the command line reads itself; they are not
/// config overrides.
const RESERVED_ENV: &[&str] = &["HERALD_CONFIG", "HERALD_LOG", "HERALD_LOG_FORMAT"];
const ENV_PREFIX: &str = "HERALD_";

/// The override variables in `env`, in a fixed order.
pub(super) fn overrides(env: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut overrides: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !RESERVED_ENV.contains(&k.as_str()))
        .collect();
    overrides.sort();
    overrides
}

/// `HERALD_FEEDS__LIMIT=20` sets `feeds.limit`: strip the prefix, split on
/// `__`, lower-case. The value is read as a TOML value (number, boolean,
/// array) when it parses as one and the file does not already hold a string
/// there; otherwise it is a string.
pub(super) fn apply_override(table: &mut toml::Table, var: &str, raw: &str) -> anyhow::Result<()> {
    let key_path: Vec<String> = var[ENV_PREFIX.len()..]
        .split("__")
        .map(|s| s.to_ascii_lowercase())
        .collect();
    if key_path.iter().any(|s| s.is_empty()) {
        bail!("environment variable {var}: malformed override name (use HERALD_SECTION__KEY)");
    }
    let dotted = key_path.join(".");
    let (last, parents) = key_path.split_last().expect("non-empty");
    let mut current = table;
    for part in parents {
        let entry = current
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(t) => t,
            _ => bail!("environment variable {var}: config key `{dotted}` is not inside a table"),
        };
    }
    let existing_is_string = matches!(current.get(last), Some(toml::Value::String(_)));
    let value = if existing_is_string {
        toml::Value::String(raw.to_string())
    } else {
        parse_env_value(raw)
    };
    current.insert(last.clone(), value);
    Ok(())
}

fn parse_env_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}
