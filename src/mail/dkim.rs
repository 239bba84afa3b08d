//! DKIM signatures (RFC 6376, relaxed/relaxed; `rsa-sha256` and RFC 8463
//! `ed25519-sha256`) over messages herald writes itself.
//!
//! Written here instead of calling lettre's `Message::sign` because a
//! digest is built from pieces shared by thousands of recipients: the body
//! hash is fed the canonical form of each shared piece, canonicalized
//! once, and the hash state after the part every recipient shares is kept
//! and cloned ([`BodyHash`]), so a recipient costs the hash of only what
//! differs, not of the whole body. lettre canonicalizes and hashes the
//! whole message for every signature.

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, RsaKeyPair, RSA_PKCS1_SHA256};
use sha2::{Digest, Sha256};

use crate::config::{DkimAlgorithm, DkimConfig};

/// Headers signed when present, in this order: RFC 8058 §4 asks for both
/// List-Unsubscribe headers.
pub const SIGNED_HEADERS: [&str; 8] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

enum Key {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// The configured key and where its public half is published.
pub struct DkimSigner {
    domain: String,
    selector: String,
    key: Key,
    rng: ring::rand::SystemRandom,
}

impl std::fmt::Debug for DkimSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimSigner")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .finish_non_exhaustive()
    }
}

impl DkimSigner {
    /// Reads the key from `private_key` (the environment) or the file.
    pub fn from_config(c: &DkimConfig) -> anyhow::Result<DkimSigner> {
        let text = match (&c.private_key, &c.private_key_file) {
            (Some(k), _) => k.expose().to_string(),
            (None, Some(path)) => std::fs::read_to_string(path).with_context(|| {
                format!(
                    "config key `mail.dkim.private_key_file`: cannot read {}",
                    path.display()
                )
            })?,
            (None, None) => bail!(
                "config key `mail.dkim`: give `private_key_file` or the key in HERALD_MAIL__DKIM__PRIVATE_KEY"
            ),
        };
        let key = parse_key(text.trim(), c.algorithm).map_err(|e| {
            anyhow::anyhow!(
                "config key `mail.dkim`: the private key cannot be used ({e}); RSA keys must be PEM (`BEGIN RSA PRIVATE KEY` or `BEGIN PRIVATE KEY`) of 2048 bits or more, Ed25519 keys the base64 of the 32-byte secret"
            )
        })?;
        Ok(DkimSigner {
            domain: c.domain.clone(),
            selector: c.selector.clone(),
            key,
            rng: ring::rand::SystemRandom::new(),
        })
    }

    /// The `DKIM-Signature` header line for a whole message `text`
    /// (headers, empty line, body; CRLF line ends): for messages built
    /// whole rather than spliced. Its body must not end in empty lines
    /// (relaxed canonicalization would drop them; herald's MIME bodies end
    /// with their closing boundary).
    pub fn sign_message(&self, text: &str, timestamp: i64) -> String {
        let (head, body) = match text.find("\r\n\r\n") {
            Some(i) => (&text[..i + 2], &text[i + 4..]),
            None => (text, ""),
        };
        let mut hash = BodyHash::new();
        hash.update_lines(body.as_bytes());
        self.sign(head, &hash.finish(), timestamp)
    }

    /// The `DKIM-Signature` header line (folded, with its CRLF) for a
    /// message whose header block is `head` (lines as written, folded or
    /// not, each with its CRLF) and whose canonical body hashes to
    /// `body_hash`.
    pub fn sign(&self, head: &str, body_hash: &[u8; 32], timestamp: i64) -> String {
        let headers = header_lines(head);
        let mut names = Vec::new();
        let mut signed = String::with_capacity(1024);
        for wanted in SIGNED_HEADERS {
            // The last instance is the one a verifier takes first.
            if let Some(line) = headers
                .iter()
                .rev()
                .find(|l| name_of(l).eq_ignore_ascii_case(wanted))
            {
                names.push(wanted);
                canonical_header(line, &mut signed);
            }
        }
        let algorithm = match self.key {
            Key::Rsa(_) => "rsa-sha256",
            Key::Ed25519(_) => "ed25519-sha256",
        };
        let mut header = format!(
            "DKIM-Signature: v=1; a={algorithm}; c=relaxed/relaxed; d={}; s={};\r\n\tt={timestamp}; h={};\r\n\tbh={};\r\n\tb=",
            self.domain,
            self.selector,
            names.join(":"),
            STANDARD.encode(body_hash),
        );
        // The header itself, with an empty b=, ends what is signed, without
        // its CRLF (RFC 6376 §3.7).
        canonical_header(&header, &mut signed);
        let signature = match &self.key {
            Key::Rsa(key) => {
                let mut sig = vec![0; key.public().modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &self.rng, signed.as_bytes(), &mut sig)
                    .expect("an RSA signature of a buffer of the modulus' length");
                sig
            }
            Key::Ed25519(key) => key
                .sign(&Sha256::digest(signed.as_bytes()))
                .as_ref()
                .to_vec(),
        };
        // Folded inside b=: verifiers drop the whole value, white space
        // included, before hashing.
        let b64 = STANDARD.encode(signature);
        for (i, chunk) in b64.as_bytes().chunks(72).enumerate() {
            if i > 0 {
                header.push_str("\r\n\t ");
            }
            header.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        }
        header.push_str("\r\n");
        header
    }
}

fn parse_key(text: &str, algorithm: DkimAlgorithm) -> Result<Key, String> {
    match algorithm {
        DkimAlgorithm::Rsa => {
            let pkcs8 = text.contains("BEGIN PRIVATE KEY");
            let body: String = text
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .map(str::trim)
                .collect();
            let der = STANDARD.decode(body).map_err(|e| format!("PEM: {e}"))?;
            let key = if pkcs8 {
                RsaKeyPair::from_pkcs8(&der)
            } else {
                RsaKeyPair::from_der(&der)
            };
            key.map(Key::Rsa).map_err(|e| e.to_string())
        }
        DkimAlgorithm::Ed25519 => {
            let seed = STANDARD.decode(text).map_err(|e| format!("base64: {e}"))?;
            Ed25519KeyPair::from_seed_unchecked(&seed)
                .map(Key::Ed25519)
                .map_err(|e| e.to_string())
        }
    }
}

/// The header lines of a block, each with its continuation lines.
fn header_lines(head: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let bytes = head.as_bytes();
    for (i, _) in head.match_indices("\r\n") {
        let next = bytes.get(i + 2);
        if !matches!(next, Some(b' ' | b'\t')) {
            lines.push(&head[start..i + 2]);
            start = i + 2;
        }
    }
    lines
}

fn name_of(line: &str) -> &str {
    line.split(':').next().unwrap_or("").trim_end()
}

/// Relaxed header canonicalization (RFC 6376 §3.4.2): lower-case name,
/// unfolded value with runs of white space as one space and none at the
/// ends, `name:value` and CRLF; without the CRLF for a line given without.
fn canonical_header(line: &str, out: &mut String) {
    let (name, value) = line.split_once(':').unwrap_or((line, ""));
    out.push_str(&name.trim_end().to_ascii_lowercase());
    out.push(':');
    let mut space = false;
    let mut any = false;
    for c in value.trim_end_matches(['\r', '\n']).chars() {
        match c {
            '\r' | '\n' => {}
            ' ' | '\t' => space = any,
            c => {
                if space {
                    out.push(' ');
                    space = false;
                }
                out.push(c);
                any = true;
            }
        }
    }
    if line.ends_with('\n') {
        out.push_str("\r\n");
    }
}

/// Relaxed body canonicalization (RFC 6376 §3.4.4) of whole lines (each
/// ending with CRLF): runs of white space become one space, white space at
/// line ends goes. The rule for empty lines at the end of the body is left
/// to the caller: herald's bodies end with a MIME boundary line.
pub fn canonical_body(lines: &[u8], out: &mut Vec<u8>) {
    out.reserve(lines.len());
    let mut space = false;
    for &b in lines {
        match b {
            b' ' | b'\t' => space = true,
            b'\r' => {}
            b'\n' => {
                out.extend_from_slice(b"\r\n");
                space = false;
            }
            b => {
                if space {
                    out.push(b' ');
                    space = false;
                }
                out.push(b);
            }
        }
    }
}

/// A body hash in progress: cheap to clone, so the state after the part
/// of a body that many messages share is computed once.
#[derive(Clone, Default)]
pub struct BodyHash(Sha256);

impl BodyHash {
    pub fn new() -> BodyHash {
        BodyHash::default()
    }

    /// Adds bytes that are canonical already ([`canonical_body`]).
    pub fn update_canonical(&mut self, canonical: &[u8]) {
        self.0.update(canonical);
    }

    /// Canonicalizes whole lines and adds them.
    pub fn update_lines(&mut self, lines: &[u8]) {
        let mut canonical = Vec::new();
        canonical_body(lines, &mut canonical);
        self.0.update(&canonical);
    }

    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaxed_canonicalization_follows_rfc_6376_examples() {
        // RFC 6376 §3.4.5.
        let mut h = String::new();
        canonical_header("A: X\r\n", &mut h);
        canonical_header("B : Y\t\r\n\tZ  \r\n", &mut h);
        assert_eq!(h, "a:X\r\nb:Y Z\r\n");
        let mut b = Vec::new();
        canonical_body(b" C \r\nD \t E\r\n", &mut b);
        assert_eq!(b, b" C\r\nD E\r\n");
    }

    #[test]
    fn header_blocks_split_into_logical_lines() {
        let head = "A: 1\r\nB: 2\r\n 3\r\nC: 4\r\n";
        assert_eq!(
            header_lines(head),
            ["A: 1\r\n", "B: 2\r\n 3\r\n", "C: 4\r\n"]
        );
    }
}
