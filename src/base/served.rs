//! The feeds being served: an immutable snapshot of every feed file, with
//! its ETag and precompressed bodies, replaced whole when a rebuild
//! publishes. A request holds the snapshot's `Arc` for as long as it needs
//! it, so it always sends one whole document, the old one or the new one.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use bytes::Bytes;
use serde::Deserialize;

/// The three feed formats herald writes and serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedFormat {
    Rss,
    Atom,
    Json,
}

impl FeedFormat {
    pub const ALL: [FeedFormat; 3] = [FeedFormat::Rss, FeedFormat::Atom, FeedFormat::Json];

    /// File name of this format inside a feed directory.
    pub fn file_name(self) -> &'static str {
        match self {
            FeedFormat::Rss => "rss.xml",
            FeedFormat::Atom => "atom.xml",
            FeedFormat::Json => "feed.json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            FeedFormat::Rss => "application/rss+xml; charset=utf-8",
            FeedFormat::Atom => "application/atom+xml; charset=utf-8",
            FeedFormat::Json => "application/feed+json; charset=utf-8",
        }
    }
}

/// One feed file as it is served.
#[derive(Debug)]
pub struct FeedFile {
    /// Path relative to the feeds directory (`atom.xml`, `tags/rust/rss.xml`).
    pub path: String,
    pub format: FeedFormat,
    /// The feed's own title (`Site – Tag`); empty when not known.
    pub title: String,
    pub body: Bytes,
    /// The compressed bodies, made by [`FeedFile::new`] before the file can
    /// be published, never on the request path (brotli takes milliseconds
    /// on a large feed, and every request that wanted the same file would
    /// wait for it). An empty or unset cell means the coding is not
    /// offered.
    pub gzip: OnceLock<Bytes>,
    pub brotli: OnceLock<Bytes>,
    /// Hex digest of `body` (BLAKE3, 128 bits); the strong ETag of the
    /// identity representation is this in quotes.
    pub digest: String,
    /// The strong ETag of each coding, quoted, as sent.
    pub etags: Etags,
    /// The feed's own updated time (its newest article), for Last-Modified.
    pub last_modified: SystemTime,
    /// `last_modified` as an HTTP-date (whole seconds), as sent.
    pub last_modified_date: Bytes,
}

/// The strong ETags of a file's three codings, each with its quotes: the
/// digest, then `-gz` or `-br` for a compressed body (a different
/// representation must not share the identity's strong validator, RFC
/// 9110 §8.8.3.3). Made with the file, so that answering a conditional
/// request allocates nothing (measured on the 304 path: see
/// `http/feed_files.rs`).
#[derive(Debug)]
pub struct Etags {
    pub identity: Bytes,
    pub gzip: Bytes,
    pub brotli: Bytes,
}

impl Etags {
    fn new(digest: &str) -> Etags {
        let quoted = |suffix: &str| Bytes::from(format!("\"{digest}{suffix}\""));
        Etags {
            identity: quoted(""),
            gzip: quoted("-gz"),
            brotli: quoted("-br"),
        }
    }
}

/// What an absent compressed body reads as.
static NONE: Bytes = Bytes::new();

impl FeedFile {
    /// The file with its compressed bodies (both made here, on the
    /// caller's thread: the rebuild, before it publishes).
    pub fn new(
        path: String,
        format: FeedFormat,
        body: Vec<u8>,
        last_modified: SystemTime,
    ) -> FeedFile {
        let gzip = OnceLock::from(gzip(&body));
        let brotli = OnceLock::from(brotli(&body));
        FeedFile::with_codings(path, format, body, last_modified, gzip, brotli)
    }

    /// The file offered in identity coding only (tests serve huge bodies
    /// this way, whose compression in a debug build takes long).
    pub fn identity_only(
        path: String,
        format: FeedFormat,
        body: Vec<u8>,
        last_modified: SystemTime,
    ) -> FeedFile {
        let none = || OnceLock::from(Bytes::new());
        FeedFile::with_codings(path, format, body, last_modified, none(), none())
    }

    fn with_codings(
        path: String,
        format: FeedFormat,
        body: Vec<u8>,
        last_modified: SystemTime,
        gzip: OnceLock<Bytes>,
        brotli: OnceLock<Bytes>,
    ) -> FeedFile {
        let digest = blake3::hash(&body).to_hex()[..32].to_string();
        FeedFile {
            path,
            format,
            title: String::new(),
            body: Bytes::from(body),
            gzip,
            brotli,
            etags: Etags::new(&digest),
            digest,
            last_modified,
            last_modified_date: Bytes::from(httpdate::fmt_http_date(last_modified)),
        }
    }

    pub fn with_title(mut self, title: impl Into<String>) -> FeedFile {
        self.title = title.into();
        self
    }

    /// The gzip body; empty when not offered.
    pub fn gzip(&self) -> &Bytes {
        self.gzip.get().unwrap_or(&NONE)
    }

    /// The brotli body; empty when not offered.
    pub fn brotli(&self) -> &Bytes {
        self.brotli.get().unwrap_or(&NONE)
    }

    pub fn offers_gzip(&self) -> bool {
        !self.gzip().is_empty()
    }

    pub fn offers_brotli(&self) -> bool {
        !self.brotli().is_empty()
    }

    pub fn content_type(&self) -> &'static str {
        self.format.content_type()
    }
}

fn gzip(body: &[u8]) -> Bytes {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::new(6),
    );
    // Writing to memory cannot fail; should the encoder fail anyway, the
    // coding is simply not offered.
    match enc.write_all(body).and_then(|()| enc.finish()) {
        Ok(out) => Bytes::from(out),
        Err(_) => Bytes::new(),
    }
}

fn brotli(body: &[u8]) -> Bytes {
    let mut enc = brotli::CompressorWriter::new(Vec::with_capacity(body.len() / 5), 4096, 5, 22);
    match enc.write_all(body) {
        // `into_inner` finishes the stream.
        Ok(()) => Bytes::from(enc.into_inner()),
        Err(_) => Bytes::new(),
    }
}

/// Every feed file at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub files: BTreeMap<String, Arc<FeedFile>>,
}

/// The current snapshot; swapping it is atomic and never blocks readers.
#[derive(Debug, Default)]
pub struct ServedFeeds {
    current: ArcSwap<Snapshot>,
}

impl ServedFeeds {
    pub fn new() -> ServedFeeds {
        ServedFeeds::default()
    }

    pub fn get(&self, path: &str) -> Option<Arc<FeedFile>> {
        self.current.load().files.get(path).cloned()
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn publish(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn compressed_bodies_decode_to_the_body() {
        let body = b"<feed>".repeat(1000);
        let f = FeedFile::new(
            "atom.xml".into(),
            FeedFormat::Atom,
            body.clone(),
            SystemTime::UNIX_EPOCH,
        );
        assert!(
            f.offers_gzip() && f.offers_brotli(),
            "compressed before it can be published"
        );
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&f.gzip()[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
        let mut out = Vec::new();
        brotli::Decompressor::new(&f.brotli()[..], 4096)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
        assert_eq!(f.digest.len(), 32);
        assert_eq!(f.etags.identity, format!("\"{}\"", f.digest));
        assert_eq!(f.etags.gzip, format!("\"{}-gz\"", f.digest));
        assert_eq!(f.etags.brotli, format!("\"{}-br\"", f.digest));
        assert_eq!(f.last_modified_date, "Thu, 01 Jan 1970 00:00:00 GMT");
        let g = FeedFile::new(
            "atom.xml".into(),
            FeedFormat::Atom,
            b"other".to_vec(),
            SystemTime::UNIX_EPOCH,
        );
        assert_ne!(f.digest, g.digest);
    }
}
