//! The bounce and complaint webhooks of Amazon SES (through SNS,
//! [`sns`]), Postmark, Mailgun and SendGrid: each request authenticated
//! by the provider's documented scheme (SNS: RSA signature and
//! certificate; Postmark: HTTP Basic credentials; Mailgun: HMAC-SHA256 of
//! timestamp and token; SendGrid: ECDSA P-256 over timestamp and body),
//! compared in constant time, then turned into [`ProviderEvent`]s and
//! applied once per provider event id. An endpoint is off until its keys
//! are configured. The HTTP side is `http/webhooks.rs`.

pub mod sns;

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Applied, Bounces, ProviderEvent};
use crate::config::{read_secret, Config};
use crate::store::FeedbackKind;

/// What a webhook request came to, short of success.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The provider is not configured: 404, as if the path did not exist.
    #[error("not found")]
    Disabled,
    /// Missing or wrong signature or credentials, an unknown topic, a
    /// stale timestamp: 401, and nothing changed.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Authentic but malformed: 400.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The database (or SNS) did not answer: 503, so the provider retries.
    #[error("unavailable")]
    Unavailable,
}

/// The SendGrid key's DER prefix: a SubjectPublicKeyInfo of an
/// id-ecPublicKey on prime256v1 holding a 65-byte uncompressed point. A
/// P-256 key has exactly this shape, so no ASN.1 parser is needed to find
/// the point ring verifies against.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The configured webhooks, with their keys.
pub struct Webhooks {
    bounces: Arc<Bounces>,
    max_age: chrono::Duration,
    ses: Option<sns::Sns>,
    /// SHA-256 of `user:password`: compared in constant time with the
    /// hash of what the request sends.
    postmark: Option<[u8; 32]>,
    mailgun: Option<Vec<u8>>,
    /// The uncompressed P-256 point.
    sendgrid: Option<Vec<u8>>,
}

/// The providers' keys, as configured.
struct Keys {
    postmark: Option<[u8; 32]>,
    mailgun: Option<Vec<u8>>,
    sendgrid: Option<Vec<u8>>,
}

impl Keys {
    fn read(config: &Config) -> anyhow::Result<Keys> {
        let w = &config.webhooks;
        let postmark = read_secret(
            &w.postmark.password,
            &w.postmark.password_file,
            "webhooks.postmark.password",
        )?
        .map(|p| hash(format!("{}:{p}", w.postmark.username).as_bytes()));
        let mailgun = read_secret(
            &w.mailgun.signing_key,
            &w.mailgun.signing_key_file,
            "webhooks.mailgun.signing_key",
        )?
        .map(String::into_bytes);
        let sendgrid = match &w.sendgrid.public_key {
            Some(key) => {
                let der = STANDARD.decode(key.trim()).map_err(|_| {
                    anyhow::anyhow!("config key `webhooks.sendgrid.public_key`: not base64")
                })?;
                let point = der
                    .strip_prefix(&P256_SPKI_PREFIX[..])
                    .filter(|p| p.len() == 65)
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "config key `webhooks.sendgrid.public_key`: not an ECDSA P-256 public key"
                        )
                    })?;
                Some(point.to_vec())
            }
            None => None,
        };
        Ok(Keys {
            postmark,
            mailgun,
            sendgrid,
        })
    }
}

fn hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Webhooks {
    /// The webhooks `[webhooks]` configures; SNS certificates and
    /// confirmations are fetched by `sns_fetch`.
    pub fn new(
        config: &Config,
        bounces: Arc<Bounces>,
        sns_fetch: Box<dyn sns::SnsFetch>,
    ) -> anyhow::Result<Webhooks> {
        let w = &config.webhooks;
        let keys = Keys::read(config)?;
        let ses = (!w.ses.topic_arns.is_empty())
            .then(|| sns::Sns::new(w.ses.topic_arns.clone(), sns_fetch));
        Ok(Webhooks {
            bounces,
            max_age: chrono::Duration::from_std(w.max_age.0).unwrap_or(chrono::Duration::MAX),
            ses,
            postmark: keys.postmark,
            mailgun: keys.mailgun,
            sendgrid: keys.sendgrid,
        })
    }

    /// Checks the `[webhooks]` keys as [`Webhooks::new`] reads them
    /// (`herald check`).
    pub fn check_config(config: &Config) -> anyhow::Result<()> {
        Keys::read(config).map(drop)
    }

    /// Whether any endpoint is on.
    pub fn any(&self) -> bool {
        self.ses.is_some()
            || self.postmark.is_some()
            || self.mailgun.is_some()
            || self.sendgrid.is_some()
    }

    async fn apply(&self, events: &[ProviderEvent]) -> Result<Applied, WebhookError> {
        self.bounces.apply(events).await.map_err(|e| {
            tracing::warn!("cannot record webhook events: {e}");
            WebhookError::Unavailable
        })
    }

    fn fresh(&self, timestamp: &str, now: DateTime<Utc>) -> Result<(), WebhookError> {
        let t: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| WebhookError::Unauthorized("bad timestamp".into()))?;
        let age = now.timestamp() - t;
        if age.abs() > self.max_age.num_seconds() {
            return Err(WebhookError::Unauthorized(format!(
                "timestamp {age} s away from now (webhooks.max_age)"
            )));
        }
        Ok(())
    }

    /// Postmark: `Authorization: Basic …` must carry the configured
    /// credentials.
    pub async fn postmark(
        &self,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Result<Applied, WebhookError> {
        let expected = self.postmark.as_ref().ok_or(WebhookError::Disabled)?;
        let given = authorization
            .and_then(|h| h.strip_prefix("Basic "))
            .and_then(|b| STANDARD.decode(b.trim()).ok())
            .unwrap_or_default();
        if !bool::from(hash(&given).ct_eq(expected)) {
            return Err(WebhookError::Unauthorized("wrong credentials".into()));
        }
        let v: Value = json(body)?;
        let record = v["RecordType"].as_str().unwrap_or("");
        let kind = match (record, v["Type"].as_str().unwrap_or("")) {
            ("Bounce", "HardBounce" | "BadEmailAddress") => Some(FeedbackKind::HardBounce),
            ("SpamComplaint", _) => Some(FeedbackKind::Complaint),
            _ => None,
        };
        let Some(kind) = kind else {
            return Ok(ignored());
        };
        let id = id_of(&v["ID"]).ok_or_else(|| WebhookError::BadRequest("no ID".into()))?;
        let event = ProviderEvent {
            source: "postmark",
            event_id: format!("{record}:{id}"),
            kind,
            recipient: v["Email"].as_str().unwrap_or("").to_string(),
            // Postmark returns its own message id, not herald's: the
            // address is what matches.
            message_id: None,
            envelope_sender: None,
            detail: format!(
                "{} {}",
                v["Type"].as_str().unwrap_or(record),
                v["Details"]
                    .as_str()
                    .or(v["Description"].as_str())
                    .unwrap_or("")
            )
            .trim()
            .to_string(),
        };
        self.apply(&[event]).await
    }

    /// Mailgun: `signature.signature` must be the HMAC-SHA256 of timestamp
    /// and token under the signing key, and the timestamp recent.
    pub async fn mailgun(&self, body: &[u8], now: DateTime<Utc>) -> Result<Applied, WebhookError> {
        let key = self.mailgun.as_ref().ok_or(WebhookError::Disabled)?;
        let v: Value = json(body).map_err(|_| WebhookError::Unauthorized("no signature".into()))?;
        let sig = &v["signature"];
        let (Some(ts), Some(token), Some(given)) = (
            sig["timestamp"].as_str(),
            sig["token"].as_str(),
            sig["signature"].as_str(),
        ) else {
            return Err(WebhookError::Unauthorized("no signature".into()));
        };
        let given = hex::decode(given)
            .ok()
            .filter(|g| g.len() <= 64)
            .ok_or_else(|| WebhookError::Unauthorized("bad signature".into()))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(ts.as_bytes());
        mac.update(token.as_bytes());
        mac.verify_slice(&given)
            .map_err(|_| WebhookError::Unauthorized("the signature does not verify".into()))?;
        self.fresh(ts, now)?;
        let e = &v["event-data"];
        let kind = match (e["event"].as_str(), e["severity"].as_str()) {
            (Some("failed"), Some("permanent")) => FeedbackKind::HardBounce,
            (Some("complained"), _) => FeedbackKind::Complaint,
            _ => return Ok(ignored()),
        };
        let status = &e["delivery-status"];
        let event = ProviderEvent {
            source: "mailgun",
            // Mailgun signs timestamp and token, not the body: the token
            // is what is applied once, so a captured signature cannot
            // carry another event.
            event_id: token.to_string(),
            kind,
            recipient: e["recipient"].as_str().unwrap_or("").to_string(),
            message_id: e["message"]["headers"]["message-id"]
                .as_str()
                .map(str::to_string),
            envelope_sender: e["envelope"]["sender"].as_str().map(str::to_string),
            detail: format!(
                "{} {}",
                id_of(&status["code"]).unwrap_or_default(),
                status["message"]
                    .as_str()
                    .or(status["description"].as_str())
                    .or(e["reason"].as_str())
                    .unwrap_or("")
            )
            .trim()
            .to_string(),
        };
        self.apply(&[event]).await
    }

    /// SendGrid: the ECDSA signature (base64 DER) must verify over
    /// timestamp + body under the configured public key, and the
    /// timestamp be recent.
    pub async fn sendgrid(
        &self,
        signature: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Applied, WebhookError> {
        let point = self.sendgrid.as_ref().ok_or(WebhookError::Disabled)?;
        let (Some(signature), Some(timestamp)) = (signature, timestamp) else {
            return Err(WebhookError::Unauthorized("no signature".into()));
        };
        let signature = STANDARD
            .decode(signature.trim())
            .map_err(|_| WebhookError::Unauthorized("bad signature".into()))?;
        let mut signed = timestamp.as_bytes().to_vec();
        signed.extend_from_slice(body);
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, point)
            .verify(&signed, &signature)
            .map_err(|_| WebhookError::Unauthorized("the signature does not verify".into()))?;
        self.fresh(timestamp, now)?;
        let v: Value = json(body)?;
        let list = v
            .as_array()
            .ok_or_else(|| WebhookError::BadRequest("not a list of events".into()))?;
        let mut events = Vec::new();
        let mut skipped = 0;
        for e in list {
            let kind = match (e["event"].as_str(), e["type"].as_str()) {
                (Some("bounce"), None | Some("bounce")) => FeedbackKind::HardBounce,
                (Some("spamreport"), _) => FeedbackKind::Complaint,
                _ => {
                    skipped += 1;
                    continue;
                }
            };
            let Some(id) = e["sg_event_id"].as_str() else {
                skipped += 1;
                continue;
            };
            events.push(ProviderEvent {
                source: "sendgrid",
                event_id: id.to_string(),
                kind,
                recipient: e["email"].as_str().unwrap_or("").to_string(),
                message_id: e["smtp-id"].as_str().map(str::to_string),
                envelope_sender: None,
                detail: format!(
                    "{} {}",
                    e["status"].as_str().unwrap_or(""),
                    e["reason"].as_str().unwrap_or("")
                )
                .trim()
                .to_string(),
            });
        }
        let mut applied = self.apply(&events).await?;
        applied.ignored += skipped;
        Ok(applied)
    }

    /// SES through SNS: the SNS signature must verify; a subscription
    /// confirmation is confirmed; a notification's bounces and
    /// complaints are applied.
    pub async fn ses(&self, body: &[u8]) -> Result<Applied, WebhookError> {
        let sns = self.ses.as_ref().ok_or(WebhookError::Disabled)?;
        let m = sns.verify(body).await?;
        match m.kind.as_str() {
            "SubscriptionConfirmation" => {
                sns.confirm(&m).await?;
                return Ok(Applied::default());
            }
            "Notification" => {}
            _ => return Ok(ignored()),
        }
        let n: Value = serde_json::from_str(&m.message)
            .map_err(|_| WebhookError::BadRequest("the SNS message is not SES JSON".into()))?;
        let kind = n["notificationType"].as_str().or(n["eventType"].as_str());
        let mail = &n["mail"];
        let message_id = mail["commonHeaders"]["messageId"]
            .as_str()
            .map(str::to_string)
            .or_else(|| {
                mail["headers"].as_array().and_then(|hs| {
                    hs.iter()
                        .find(|h| {
                            h["name"]
                                .as_str()
                                .is_some_and(|n| n.eq_ignore_ascii_case("message-id"))
                        })
                        .and_then(|h| h["value"].as_str().map(str::to_string))
                })
            });
        let sender = mail["source"].as_str().map(str::to_string);
        let mut events = Vec::new();
        let (list, kind, detail) = match kind {
            Some("Bounce") if n["bounce"]["bounceType"].as_str() == Some("Permanent") => (
                &n["bounce"]["bouncedRecipients"],
                FeedbackKind::HardBounce,
                n["bounce"]["bounceSubType"].as_str().unwrap_or(""),
            ),
            Some("Complaint")
                if n["complaint"]["complaintFeedbackType"].as_str() != Some("not-spam") =>
            {
                (
                    &n["complaint"]["complainedRecipients"],
                    FeedbackKind::Complaint,
                    n["complaint"]["complaintFeedbackType"]
                        .as_str()
                        .unwrap_or("complaint"),
                )
            }
            _ => return Ok(ignored()),
        };
        for r in list.as_array().into_iter().flatten() {
            let Some(address) = r["emailAddress"].as_str() else {
                continue;
            };
            events.push(ProviderEvent {
                source: "ses",
                event_id: format!("{} {address}", m.message_id),
                kind,
                recipient: address.to_string(),
                message_id: message_id.clone(),
                envelope_sender: sender.clone(),
                detail: format!(
                    "{} {}",
                    r["status"].as_str().unwrap_or(detail),
                    r["diagnosticCode"].as_str().unwrap_or("")
                )
                .trim()
                .to_string(),
            });
        }
        self.apply(&events).await
    }
}

fn ignored() -> Applied {
    Applied {
        ignored: 1,
        ..Applied::default()
    }
}

fn json(body: &[u8]) -> Result<Value, WebhookError> {
    serde_json::from_slice(body).map_err(|e| WebhookError::BadRequest(format!("not JSON: {e}")))
}

/// A JSON id that may be a number or a string.
fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        Config::parse(&format!(
            "[site]\ntitle = \"T\"\nbase_url = \"https://example.org/\"\nauthor = {{ name = \"A\" }}\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn a_sendgrid_key_that_is_no_p256_key_stops_herald_at_start() {
        // Base64, but an Ed25519 key's SubjectPublicKeyInfo.
        let ed25519 = "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=";
        let err = Webhooks::check_config(&config(&format!(
            "[webhooks.sendgrid]\npublic_key = \"{ed25519}\"\n"
        )))
        .unwrap_err();
        assert!(
            err.to_string().contains("not an ECDSA P-256 public key"),
            "{err}"
        );
        let p256 = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE/PtILvrHb8TdMHwosQKlDnHnYHR5wXA377F2gunNAX3wmH7CyJWdyGsUCRzdNUJr2xmXIypu0g32OE23s0EhXg==";
        Webhooks::check_config(&config(&format!(
            "[webhooks.sendgrid]\npublic_key = \"{p256}\"\n"
        )))
        .unwrap();
        let missing = config("[webhooks.mailgun]\nsigning_key_file = \"/nonexistent/key\"\n");
        let err = Webhooks::check_config(&missing).unwrap_err();
        assert!(
            err.to_string()
                .contains("webhooks.mailgun.signing_key_file"),
            "{err}"
        );
    }

    #[test]
    fn the_announcements_archive_name_is_no_schedule_name() {
        let text = "[site]\ntitle = \"T\"\nbase_url = \"https://example.org/\"\nauthor = { name = \"A\" }\n[[digest]]\nname = \"announcements\"\nschedule = \"0 0 8 * * *\"\n";
        let err = Config::parse(text).unwrap_err().to_string();
        assert!(err.contains("digest[0].name"), "{err}");
        let text = text.replace("name = \"announcements\"", "name = \"news\"")
            + "[mail]\nbounce_address = \"bounces+x@example.org\"\n";
        let err = Config::parse(&text).unwrap_err().to_string();
        assert!(err.contains("mail.bounce_address"), "{err}");
    }
}
