//! Amazon SNS messages (how SES reports bounces and complaints over
//! HTTP): the signature checked against the certificate SNS names, which
//! herald fetches only from an SNS host over HTTPS (`sns.<region>.
//! amazonaws.com`), and subscription confirmation. The fetcher is a trait
//! so that tests serve a certificate they made, without the network.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rustls_pki_types::{AlgorithmIdentifier, CertificateDer, InvalidSignature};
use serde::Deserialize;
use url::Url;

use super::WebhookError;

/// Largest certificate accepted (real ones are about 2 KB).
const MAX_CERT: usize = 16 * 1024;
/// Certificates kept in memory (SNS rotates them rarely).
const CACHE: usize = 16;

/// Fetches what SNS names: its signing certificate, and the subscription
/// confirmation link. Only called with a URL that passed [`sns_url`].
#[async_trait::async_trait]
pub trait SnsFetch: Send + Sync {
    async fn get(&self, url: &Url) -> anyhow::Result<Vec<u8>>;
}

/// The real one: HTTPS with the Mozilla roots, no redirects, bounded in
/// time and size.
pub struct HttpsFetch {
    client: reqwest::Client,
}

impl HttpsFetch {
    pub fn new() -> anyhow::Result<HttpsFetch> {
        Ok(HttpsFetch {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .https_only(true)
                .build()?,
        })
    }
}

#[async_trait::async_trait]
impl SnsFetch for HttpsFetch {
    async fn get(&self, url: &Url) -> anyhow::Result<Vec<u8>> {
        let mut res = self
            .client
            .get(url.clone())
            .send()
            .await?
            .error_for_status()?;
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await? {
            body.extend_from_slice(&chunk);
            anyhow::ensure!(body.len() <= MAX_CERT, "more than {MAX_CERT} bytes");
        }
        Ok(body)
    }
}

/// `url` when it is an HTTPS URL on an SNS host (`sns.<region>.amazonaws.com`,
/// or `.com.cn`), on the default port, without credentials.
pub fn sns_url(raw: &str) -> Option<Url> {
    let url = Url::parse(raw).ok()?;
    if url.scheme() != "https" || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    if url.port().is_some_and(|p| p != 443) {
        return None;
    }
    let host = url.host_str()?;
    let region = host
        .strip_prefix("sns.")?
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_prefix("sns.")?.strip_suffix(".amazonaws.com.cn"))?;
    let good = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    good.then_some(url)
}

/// An SNS message as posted.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SnsMessage {
    #[serde(rename = "Type")]
    pub kind: String,
    pub message_id: String,
    pub topic_arn: String,
    #[serde(default)]
    pub subject: Option<String>,
    pub message: String,
    pub timestamp: String,
    pub signature_version: String,
    pub signature: String,
    #[serde(rename = "SigningCertURL")]
    pub signing_cert_url: String,
    #[serde(rename = "SubscribeURL", default)]
    pub subscribe_url: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
}

impl SnsMessage {
    /// The text SNS signs: chosen fields as `Name\nvalue\n`, in order.
    fn string_to_sign(&self) -> Result<String, WebhookError> {
        let mut out = String::new();
        let mut add = |name: &str, value: &str| {
            out.push_str(name);
            out.push('\n');
            out.push_str(value);
            out.push('\n');
        };
        add("Message", &self.message);
        add("MessageId", &self.message_id);
        match self.kind.as_str() {
            "Notification" => {
                if let Some(subject) = &self.subject {
                    add("Subject", subject);
                }
                add("Timestamp", &self.timestamp);
                add("TopicArn", &self.topic_arn);
            }
            "SubscriptionConfirmation" | "UnsubscribeConfirmation" => {
                let missing = || WebhookError::BadRequest("SubscribeURL or Token missing".into());
                add(
                    "SubscribeURL",
                    self.subscribe_url.as_deref().ok_or_else(missing)?,
                );
                add("Timestamp", &self.timestamp);
                add("Token", self.token.as_deref().ok_or_else(missing)?);
                add("TopicArn", &self.topic_arn);
            }
            other => {
                return Err(WebhookError::BadRequest(format!(
                    "unknown SNS type {other}"
                )))
            }
        }
        add("Type", &self.kind);
        Ok(out)
    }
}

/// RSA PKCS#1 v1.5 with SHA-1, which SNS's SignatureVersion 1 uses; webpki
/// leaves it out (certificates no longer use it), ring still verifies it.
#[derive(Debug)]
struct RsaSha1;

impl rustls_pki_types::SignatureVerificationAlgorithm for RsaSha1 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            public_key,
        )
        .verify(message, signature)
        .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        rustls_pki_types::alg_id::RSA_ENCRYPTION
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        // sha1WithRSAEncryption, NULL parameters.
        AlgorithmIdentifier::from_slice(&[
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05, 0x05, 0x00,
        ])
    }
}

/// The first certificate of a PEM file, as DER.
fn pem_certificate(pem: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(pem).ok()?;
    let start = text.find("-----BEGIN CERTIFICATE-----")? + "-----BEGIN CERTIFICATE-----".len();
    let end = start + text[start..].find("-----END CERTIFICATE-----")?;
    let b64: String = text[start..end].split_whitespace().collect();
    STANDARD.decode(b64).ok()
}

/// Checks SNS messages for the configured topics.
pub struct Sns {
    topics: Vec<String>,
    fetch: Box<dyn SnsFetch>,
    certs: Mutex<HashMap<String, Vec<u8>>>,
}

impl Sns {
    pub fn new(topics: Vec<String>, fetch: Box<dyn SnsFetch>) -> Sns {
        Sns {
            topics,
            fetch,
            certs: Mutex::new(HashMap::new()),
        }
    }

    async fn certificate(&self, url: &Url) -> Result<Vec<u8>, WebhookError> {
        if let Some(der) = self.certs.lock().expect("cert cache").get(url.as_str()) {
            return Ok(der.clone());
        }
        let pem = self.fetch.get(url).await.map_err(|e| {
            tracing::warn!("cannot fetch the SNS signing certificate {url}: {e:#}");
            WebhookError::Unavailable
        })?;
        let der = pem_certificate(&pem).ok_or_else(|| {
            WebhookError::Unauthorized("the signing certificate is not PEM".into())
        })?;
        let mut cache = self.certs.lock().expect("cert cache");
        if cache.len() >= CACHE {
            cache.clear();
        }
        cache.insert(url.to_string(), der.clone());
        Ok(der)
    }

    /// Parses and authenticates a posted message: a known topic, a
    /// certificate from an SNS host, a valid signature.
    pub async fn verify(&self, body: &[u8]) -> Result<SnsMessage, WebhookError> {
        let m: SnsMessage = serde_json::from_slice(body)
            .map_err(|e| WebhookError::BadRequest(format!("not an SNS message: {e}")))?;
        if !self.topics.iter().any(|t| t == &m.topic_arn) {
            return Err(WebhookError::Unauthorized(format!(
                "topic {} is not in webhooks.ses.topic_arns",
                m.topic_arn
            )));
        }
        let url = sns_url(&m.signing_cert_url).ok_or_else(|| {
            WebhookError::Unauthorized(format!(
                "SigningCertURL {} is not on an SNS host",
                m.signing_cert_url
            ))
        })?;
        let signature = STANDARD
            .decode(m.signature.trim())
            .map_err(|_| WebhookError::Unauthorized("the signature is not base64".into()))?;
        let text = m.string_to_sign()?;
        let der = self.certificate(&url).await?;
        let cert_der = CertificateDer::from(der.as_slice());
        let cert = webpki::EndEntityCert::try_from(&cert_der)
            .map_err(|e| WebhookError::Unauthorized(format!("bad signing certificate: {e}")))?;
        let algorithm: &dyn rustls_pki_types::SignatureVerificationAlgorithm =
            match m.signature_version.as_str() {
                "1" => &RsaSha1,
                "2" => webpki::ring::RSA_PKCS1_2048_8192_SHA256,
                v => {
                    return Err(WebhookError::Unauthorized(format!(
                        "unknown SignatureVersion {v}"
                    )))
                }
            };
        cert.verify_signature(algorithm, text.as_bytes(), &signature)
            .map_err(|_| WebhookError::Unauthorized("the SNS signature does not verify".into()))?;
        Ok(m)
    }

    /// Confirms a subscription by visiting its SubscribeURL (on an SNS
    /// host only).
    pub async fn confirm(&self, m: &SnsMessage) -> Result<(), WebhookError> {
        let url = m
            .subscribe_url
            .as_deref()
            .and_then(sns_url)
            .ok_or_else(|| {
                WebhookError::Unauthorized("SubscribeURL is not on an SNS host".into())
            })?;
        self.fetch.get(&url).await.map_err(|e| {
            tracing::warn!(
                "cannot confirm the SNS subscription to {}: {e:#}",
                m.topic_arn
            );
            WebhookError::Unavailable
        })?;
        tracing::info!("confirmed the SNS subscription to {}", m.topic_arn);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_sns_hosts_are_fetched() {
        for good in [
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.cn-north-1.amazonaws.com.cn/x.pem",
        ] {
            assert!(sns_url(good).is_some(), "{good}");
        }
        for bad in [
            "http://sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
            "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
            "https://user@sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com:8443/x.pem",
            "https://sns..amazonaws.com/x.pem",
            "https://sns.US_EAST.amazonaws.com/x.pem",
            "https://s3.amazonaws.com/x.pem",
        ] {
            assert!(sns_url(bad).is_none(), "{bad}");
        }
    }
}
