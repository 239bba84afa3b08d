//! Signed links: confirmation and management (unsubscribe, preferences)
//! tokens. A token names its purpose, the subscriber and an expiry, and
//! carries an HMAC-SHA256 over them; verification is constant-time, and a
//! token for one purpose is worthless for another. No state is kept per
//! token: forging one means forging the MAC.
//!
//! Also where the signing secret comes from: the environment
//! (`HERALD_SUBSCRIBERS__SECRET`), a file (`subscribers.secret_file`), or,
//! failing both, a random secret created once: in the data directory with
//! owner-only permissions (SQLite), or in the database that all replicas
//! share (PostgreSQL). A secret generated in one replica's data directory
//! is refused with PostgreSQL: links signed by one replica must verify on
//! every other.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Config;
use crate::store::{Backend, Store};

type HmacSha256 = Hmac<Sha256>;

/// The shortest secret accepted, in bytes.
const MIN_SECRET: usize = 32;
/// Management links sit in every digest and must keep working: they expire
/// only after this long.
pub const MANAGE_LIFETIME_DAYS: i64 = 3650;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Confirm,
    /// Unsubscribe and preferences.
    Manage,
}

impl Purpose {
    fn tag(self) -> &'static str {
        match self {
            Purpose::Confirm => "c",
            Purpose::Manage => "m",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the link is not valid")]
    Invalid,
    #[error("the link has expired")]
    Expired,
    /// The link may be valid, but the database did not answer: the reader
    /// is asked to try again, never told the link is bad.
    #[error("the subscription could not be looked up just now")]
    Unavailable,
}

#[derive(Clone)]
pub struct Signer {
    /// Keyed once: setting up the key takes two SHA-256 blocks, which each
    /// token would otherwise pay again.
    mac: HmacSha256,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer([redacted])")
    }
}

impl Signer {
    pub fn new(secret: &[u8]) -> anyhow::Result<Signer> {
        anyhow::ensure!(
            secret.len() >= MIN_SECRET,
            "the signing secret must be at least {MIN_SECRET} bytes"
        );
        Ok(Signer {
            mac: HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length"),
        })
    }

    /// Loads the secret as configured; see the module docs.
    pub fn from_config(config: &Config) -> anyhow::Result<Signer> {
        match Signer::configured(config)? {
            Some(signer) => Ok(signer),
            None => Signer::new(&generated_secret(&config.data_dir)?),
        }
    }

    /// Checks the secret as [`Signer::from_config`] would, creating
    /// nothing (`herald check`). Where herald would generate a secret at
    /// start, a stand-in is returned.
    pub fn check_config(config: &Config) -> anyhow::Result<Signer> {
        if let Some(signer) = Signer::configured(config)? {
            return Ok(signer);
        }
        let path = config.data_dir.join("signing-secret");
        match std::fs::read_to_string(&path) {
            Ok(text) => Signer::new(text.trim().as_bytes())
                .with_context(|| format!("the generated secret in {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Signer::new(&[0; MIN_SECRET]),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// The secret given in the environment or in `secret_file`, if any.
    fn configured(config: &Config) -> anyhow::Result<Option<Signer>> {
        if let Some(secret) = &config.subscribers.secret {
            return Signer::new(secret.expose().trim().as_bytes())
                .context(config.origins.error(
                    "subscribers.secret",
                    "the value is not a usable signing secret",
                ))
                .map(Some);
        }
        if let Some(path) = &config.subscribers.secret_file {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("cannot read subscribers.secret_file {}", path.display())
            })?;
            return Signer::new(text.trim().as_bytes())
                .with_context(|| format!("subscribers.secret_file {}", path.display()))
                .map(Some);
        }
        Ok(None)
    }

    /// Loads the secret for a herald using `store`: configured, else the
    /// one shared in the database (PostgreSQL) or generated in the data
    /// directory (SQLite).
    pub async fn for_store(config: &Config, store: &dyn Store) -> anyhow::Result<Signer> {
        if config.subscribers.secret.is_some() || config.subscribers.secret_file.is_some() {
            return Signer::from_config(config);
        }
        if store.backend() == Backend::Sqlite {
            return Signer::new(&generated_secret(&config.data_dir)?);
        }
        let local = config.data_dir.join("signing-secret");
        if local.exists() {
            anyhow::bail!(
                "{} holds a signing secret generated for this machine alone; with PostgreSQL every replica must sign with the same one: set HERALD_SUBSCRIBERS__SECRET (or subscribers.secret_file) to its content on every replica, or move it into the database with `herald db copy` and delete the file",
                local.display()
            );
        }
        let mut fresh = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut fresh);
        let hex: String = fresh.iter().map(|b| format!("{b:02x}")).collect();
        let shared = store
            .shared_secret(hex.as_bytes())
            .await
            .context("reading the signing secret from the database")?
            .context("the database keeps no shared secret")?;
        Signer::new(&shared).context("the signing secret stored in the database")
    }

    /// A management token (unsubscribe and preferences links) for `id`,
    /// valid for [`MANAGE_LIFETIME_DAYS`] from `now`.
    pub fn manage_token(&self, id: i64, now: DateTime<Utc>) -> String {
        self.sign(
            Purpose::Manage,
            id,
            now + chrono::Duration::days(MANAGE_LIFETIME_DAYS),
        )
    }

    /// A token for `purpose` and subscriber `id`, valid until `expires`.
    pub fn sign(&self, purpose: Purpose, id: i64, expires: DateTime<Utc>) -> String {
        let payload = format!("1.{}.{id}.{}", purpose.tag(), expires.timestamp());
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The subscriber id in a valid, unexpired token for `purpose`.
    pub fn verify(
        &self,
        token: &str,
        purpose: Purpose,
        now: DateTime<Utc>,
    ) -> Result<i64, TokenError> {
        // Bound the work an attacker can ask for.
        if token.len() > 200 {
            return Err(TokenError::Invalid);
        }
        let (payload_b64, tag_b64) = token.split_once('.').ok_or(TokenError::Invalid)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .map_err(|_| TokenError::Invalid)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag_b64)
            .map_err(|_| TokenError::Invalid)?;
        let mut mac = self.mac();
        mac.update(&payload);
        // Constant-time comparison.
        mac.verify_slice(&tag).map_err(|_| TokenError::Invalid)?;
        // Authentic from here on; still check it is the right kind.
        let payload = std::str::from_utf8(&payload).map_err(|_| TokenError::Invalid)?;
        let mut parts = payload.split('.');
        let (Some("1"), Some(p), Some(id), Some(exp), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenError::Invalid);
        };
        if p != purpose.tag() {
            return Err(TokenError::Invalid);
        }
        let id: i64 = id.parse().map_err(|_| TokenError::Invalid)?;
        let exp: i64 = exp.parse().map_err(|_| TokenError::Invalid)?;
        if now.timestamp() > exp {
            return Err(TokenError::Expired);
        }
        Ok(id)
    }

    /// The token in the envelope sender of one delivery
    /// (`bounces+<token>@example.org`): run, subscriber and 80 bits of
    /// MAC, in digits, lower-case hex and `-` only, since some relays
    /// lower-case local parts.
    pub fn envelope_token(&self, run: i64, subscriber: i64) -> String {
        let mut mac = self.mac();
        mac.update(format!("env.{run}.{subscriber}").as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("{run}-{subscriber}-{}", hex::encode(&tag[..ENVELOPE_MAC]))
    }

    /// `(run, subscriber)` of a genuine [`Signer::envelope_token`];
    /// compared in constant time.
    pub fn verify_envelope_token(&self, token: &str) -> Option<(i64, i64)> {
        if token.len() > 64 {
            return None;
        }
        let mut parts = token.split('-');
        let (Some(run), Some(sub), Some(hex), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let (run, sub): (i64, i64) = (run.parse().ok()?, sub.parse().ok()?);
        if hex.len() != 2 * ENVELOPE_MAC {
            return None;
        }
        let tag = hex::decode(hex).ok()?;
        let mut mac = self.mac();
        mac.update(format!("env.{run}.{sub}").as_bytes());
        mac.verify_truncated_left(&tag).ok()?;
        Some((run, sub))
    }

    fn mac(&self) -> HmacSha256 {
        self.mac.clone()
    }
}

/// Bytes of MAC in an envelope token: enough that guessing one is hopeless,
/// short enough for the 64-character local part.
const ENVELOPE_MAC: usize = 10;

/// `bounces@example.org` + token -> `bounces+<token>@example.org`.
pub fn envelope_address(bounce_address: &str, token: &str) -> String {
    match bounce_address.rsplit_once('@') {
        Some((local, domain)) => format!("{local}+{token}@{domain}"),
        None => bounce_address.to_string(),
    }
}

/// The token in `address` when it is `bounce_address` with one
/// (`bounces+<token>@example.org`); local part and domain compared
/// without regard to case.
pub fn envelope_token_in<'a>(bounce_address: &str, address: &'a str) -> Option<&'a str> {
    let (local, domain) = bounce_address.rsplit_once('@')?;
    let (their_local, their_domain) = address.trim().rsplit_once('@')?;
    if !their_domain.eq_ignore_ascii_case(domain) {
        return None;
    }
    let (base, token) = their_local.split_once('+')?;
    base.eq_ignore_ascii_case(local).then_some(token)
}

/// Reads `data_dir/signing-secret`, creating it (32 random bytes, hex,
/// mode 0600) on first use.
fn generated_secret(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join("signing-secret");
    match std::fs::read_to_string(&path) {
        Ok(text) => return Ok(text.trim().as_bytes().to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(&path) {
        Ok(mut f) => {
            f.write_all(hex.as_bytes())
                .and_then(|_| f.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            tracing::warn!(
                "generated a new signing secret in {} (owner-only); keep it with the database, \
                 or set HERALD_SUBSCRIBERS__SECRET",
                path.display()
            );
            Ok(hex.into_bytes())
        }
        // Another process (the CLI beside the daemon) created it first.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(&path)?.trim().as_bytes().to_vec())
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::new(&[7u8; 32]).unwrap()
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn a_signed_token_verifies_for_its_purpose_until_it_expires() {
        let s = signer();
        let tok = s.sign(Purpose::Confirm, 42, t("2030-01-02T00:00:00Z"));
        assert_eq!(
            s.verify(&tok, Purpose::Confirm, t("2030-01-01T00:00:00Z")),
            Ok(42)
        );
        assert_eq!(
            s.verify(&tok, Purpose::Manage, t("2030-01-01T00:00:00Z")),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            s.verify(&tok, Purpose::Confirm, t("2030-01-03T00:00:00Z")),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn tampered_and_foreign_tokens_are_refused() {
        let s = signer();
        let now = t("2030-01-01T00:00:00Z");
        let tok = s.sign(Purpose::Manage, 42, t("2031-01-01T00:00:00Z"));
        let (payload, tag) = tok.split_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode("1.m.43.1924992000");
        assert_eq!(
            s.verify(&format!("{forged_payload}.{tag}"), Purpose::Manage, now),
            Err(TokenError::Invalid)
        );
        let mut flipped = tag.to_string().into_bytes();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(
            s.verify(&format!("{payload}.{flipped}"), Purpose::Manage, now),
            Err(TokenError::Invalid)
        );
        let other = Signer::new(&[8u8; 32]).unwrap();
        assert_eq!(
            other.verify(&tok, Purpose::Manage, now),
            Err(TokenError::Invalid)
        );
        for junk in ["", ".", "abc", "a.b.c", &"x".repeat(500)] {
            assert_eq!(
                s.verify(junk, Purpose::Manage, now),
                Err(TokenError::Invalid),
                "{junk}"
            );
        }
    }

    #[test]
    fn ten_thousand_random_tokens_are_all_refused() {
        let s = signer();
        let now = t("2030-01-01T00:00:00Z");
        let real = s.sign(Purpose::Confirm, 1, t("2031-01-01T00:00:00Z"));
        let mut rng = rand::thread_rng();
        for i in 0..10_000 {
            let len = real.len();
            let random: String = (0..len)
                .map(|_| {
                    let c = rand::Rng::gen_range(&mut rng, 0..64u8);
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[c as usize]
                        as char
                })
                .collect();
            // Half keep the real payload and guess only the MAC.
            let candidate = if i % 2 == 0 {
                let (payload, _) = real.split_once('.').unwrap();
                format!("{payload}.{}", &random[..43])
            } else {
                format!("{}.{}", &random[..len / 2], &random[len / 2..])
            };
            assert!(
                s.verify(&candidate, Purpose::Confirm, now).is_err(),
                "{candidate}"
            );
        }
    }

    #[test]
    fn envelope_tokens_name_the_delivery_and_resist_forgery() {
        let s = signer();
        let token = s.envelope_token(12, 3456);
        assert!(token.len() <= 40, "{token}");
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-'));
        assert_eq!(s.verify_envelope_token(&token), Some((12, 3456)));
        assert_eq!(
            s.verify_envelope_token(&token.to_uppercase()),
            Some((12, 3456))
        );
        let forged = token.replacen("12-", "13-", 1);
        assert_eq!(s.verify_envelope_token(&forged), None);
        assert_eq!(
            Signer::new(&[8u8; 32])
                .unwrap()
                .verify_envelope_token(&token),
            None
        );
        let address = envelope_address("bounces@example.org", &token);
        assert_eq!(address, format!("bounces+{token}@example.org"));
        assert_eq!(
            envelope_token_in("bounces@example.org", &address.to_uppercase()),
            Some(token.to_uppercase().as_str())
        );
        assert_eq!(
            envelope_token_in("bounces@example.org", "news@example.org"),
            None
        );
        assert_eq!(
            envelope_token_in("bounces@example.org", "bounces+x@example.net"),
            None
        );
    }

    #[test]
    fn a_generated_secret_is_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = generated_secret(dir.path()).unwrap();
        let b = generated_secret(dir.path()).unwrap();
        assert_eq!(a, b);
        assert!(a.len() >= MIN_SECRET);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("signing-secret"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(Signer::new(b"short").is_err());
    }
}
