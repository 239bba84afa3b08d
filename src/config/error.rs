//! What a config error is about, so that its message names the right
//! place: a key of the file, or the `HERALD_…` variable that set it, and
//! never a secret's value.

use std::collections::BTreeMap;

/// Keys that hold secrets: read only from the environment (or a file of
/// their own), never from `herald.toml`, and never quoted in a message.
pub const SECRET_KEYS: &[&str] = &[
    "subscribers.secret",
    "subscribers.database_password",
    "server.metrics_token",
    "mail.smtp.password",
    "mail.dkim.private_key",
    "webhooks.postmark.password",
    "webhooks.mailgun.signing_key",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file is not TOML.
    #[error("{0}")]
    Syntax(String),
    /// A key of the file has a bad value, is unknown, or is missing.
    #[error("config key `{key}`: {message}")]
    Key { key: String, message: String },
    /// A secret written into the file.
    #[error("config key `{key}`: secrets are not read from the config file, which is easily committed or shared; remove it and set {var} instead{also}")]
    SecretInFile {
        key: String,
        var: String,
        also: &'static str,
    },
    /// A `HERALD_…` variable is malformed, unknown, or its value does not
    /// fit its key.
    #[error("environment variable {var}{}: {message}", key.as_ref().map(|k| format!(" (config key `{k}`)")).unwrap_or_default())]
    Env {
        var: String,
        key: Option<String>,
        message: String,
    },
}

impl ConfigError {
    /// Whether the error is about the file (then its path is worth
    /// naming) rather than the environment.
    pub fn is_about_the_file(&self) -> bool {
        !matches!(self, ConfigError::Env { .. })
    }
}

/// The `HERALD_…` variable for a dotted key: `mail.smtp.password` ->
/// `HERALD_MAIL__SMTP__PASSWORD`.
pub fn env_var_for(key: &str) -> String {
    format!(
        "{}{}",
        super::env::ENV_PREFIX,
        key.split('.')
            .map(str::to_ascii_uppercase)
            .collect::<Vec<_>>()
            .join("__")
    )
}

/// Whether the dotted `key` is `outer` or lies inside it (`mail.smtp.port`
/// and `mail.smtp[0]` inside `mail.smtp`).
pub(super) fn is_within(key: &str, outer: &str) -> bool {
    key.strip_prefix(outer)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// Refuses secrets written into the file.
pub(super) fn refuse_secrets_in_file(file: &toml::Table) -> Result<(), ConfigError> {
    for key in SECRET_KEYS {
        let mut parts = key.split('.').peekable();
        let mut current = file;
        while let Some(part) = parts.next() {
            match (current.get(part), parts.peek()) {
                (Some(toml::Value::Table(t)), Some(_)) => current = t,
                (Some(_), None) => {
                    return Err(ConfigError::SecretInFile {
                        key: key.to_string(),
                        var: env_var_for(key),
                        also: match *key {
                            "subscribers.secret" => " (or name a file in subscribers.secret_file)",
                            "mail.dkim.private_key" => {
                                " (or name a file in mail.dkim.private_key_file)"
                            }
                            _ => "",
                        },
                    })
                }
                _ => break,
            }
        }
    }
    Ok(())
}

/// Where each key set from the environment came from: key -> variable.
#[derive(Debug, Clone, Default)]
pub struct Origins(pub(super) BTreeMap<String, String>);

impl Origins {
    /// An error about `key`, naming the variable when the environment set
    /// it, or a section holding it (`HERALD_SITE__AUTHOR='{ name = "" }'`).
    pub fn error(&self, key: &str, message: impl std::fmt::Display) -> ConfigError {
        let var = self.0.get(key).or_else(|| {
            self.0
                .iter()
                .find(|(k, _)| is_within(key, k))
                .map(|(_, var)| var)
        });
        match var {
            Some(var) => ConfigError::Env {
                var: var.clone(),
                key: Some(key.to_string()),
                message: message.to_string(),
            },
            None => ConfigError::Key {
                key: key.to_string(),
                message: message.to_string(),
            },
        }
    }
}
