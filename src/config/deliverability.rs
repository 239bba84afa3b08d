//! The sections about what comes back after mail went out: `[bounces]`
//! (a Maildir of bounce reports the daemon reads) and `[webhooks]` (the
//! bounce and complaint webhooks of Amazon SES, Postmark, Mailgun and
//! SendGrid). Each provider's endpoint is off until its keys are given.

use std::path::PathBuf;

use serde::Deserialize;

use super::values::{ByteSize, Duration, Secret};

/// The schedule name the archive and the ledger give announcements; no
/// `[[digest]]` may be called so.
pub const ANNOUNCEMENTS: &str = "announcements";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BouncesConfig {
    /// A Maildir folder that bounce messages (DSNs, abuse reports) are
    /// delivered to; `herald run` reads each new message, applies it and
    /// moves it to `cur/`.
    pub maildir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Largest request body a webhook accepts.
    pub max_body_size: ByteSize,
    /// Signed timestamps older than this (Mailgun, SendGrid) are refused
    /// as replays.
    pub max_age: Duration,
    pub ses: SesWebhook,
    pub postmark: PostmarkWebhook,
    pub mailgun: MailgunWebhook,
    pub sendgrid: SendgridWebhook,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            max_body_size: ByteSize(1024 * 1024),
            max_age: Duration(std::time::Duration::from_secs(3600)),
            ses: SesWebhook::default(),
            postmark: PostmarkWebhook::default(),
            mailgun: MailgunWebhook::default(),
            sendgrid: SendgridWebhook::default(),
        }
    }
}

/// Amazon SES notifications through an SNS topic, at `/webhooks/ses`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SesWebhook {
    /// The SNS topics whose messages are accepted (their ARNs); empty:
    /// the endpoint is off.
    pub topic_arns: Vec<String>,
}

/// Postmark's bounce and spam-complaint webhooks, at `/webhooks/postmark`,
/// with HTTP Basic credentials in the webhook URL.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostmarkWebhook {
    pub username: String,
    /// Only from the environment (`HERALD_WEBHOOKS__POSTMARK__PASSWORD`)
    /// or `password_file`; without it the endpoint is off.
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
}

/// Mailgun's webhooks, at `/webhooks/mailgun`, signed with the HTTP
/// webhook signing key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailgunWebhook {
    /// Only from the environment (`HERALD_WEBHOOKS__MAILGUN__SIGNING_KEY`)
    /// or `signing_key_file`; without it the endpoint is off.
    pub signing_key: Option<Secret>,
    pub signing_key_file: Option<PathBuf>,
}

/// SendGrid's signed Event Webhook, at `/webhooks/sendgrid`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SendgridWebhook {
    /// The verification key SendGrid shows for the signed webhook (base64
    /// of the ECDSA P-256 public key); without it the endpoint is off.
    pub public_key: Option<String>,
}

/// A secret given inline (from the environment) or in a file, trimmed;
/// `None` when neither is set.
pub fn read_secret(
    inline: &Option<Secret>,
    file: &Option<PathBuf>,
    key: &str,
) -> anyhow::Result<Option<String>> {
    match (inline, file) {
        (Some(s), _) => Ok(Some(s.expose().trim().to_string())),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|s| Some(s.trim().to_string()))
            .map_err(|e| anyhow::anyhow!("cannot read {key}_file {}: {e}", path.display())),
        (None, None) => Ok(None),
    }
}
