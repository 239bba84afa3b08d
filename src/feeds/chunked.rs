//! Rendering a feed as head + items + tail, the items in parallel chunks.
//!
//! The `rss` and `atom_syndication` crates write a whole document from a
//! struct that owns every item's strings: for a site-wide feed of 100,000
//! full articles that is a second copy of all article HTML, rendered on one
//! core. Instead each format renders its frame (the document with no items)
//! once and its items a chunk at a time, with the same crate; the item bytes
//! are cut out of each chunk's document and written in order. Items are
//! always written last by both crates, so the cut is exact, and
//! `tests::chunked_output_equals_whole_document_output` in each format
//! checks the result against one-pass rendering byte for byte.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use rayon::prelude::*;

use crate::content::Article;

/// Articles per chunk, and chunks rendered before their bytes are written:
/// memory stays at roughly CHUNK * BATCH rendered items whatever the size of
/// the feed.
const CHUNK: usize = 64;
const BATCH: usize = 32;

/// A document with no items, split where the items go.
pub struct Frame {
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
}

impl Frame {
    /// Splits `doc` before the last occurrence of `closing` (such as
    /// `</channel>`), where items are inserted.
    pub fn split_before_last(doc: Vec<u8>, closing: &str) -> anyhow::Result<Frame> {
        let at = rfind(&doc, closing.as_bytes())
            .with_context(|| format!("feed frame has no {closing}"))?;
        let tail = doc[at..].to_vec();
        let mut head = doc;
        head.truncate(at);
        Ok(Frame { head, tail })
    }
}

/// The bytes from the first `open` to the end of the last `close` in a
/// rendered chunk document: its items and nothing else. Everything outside
/// the items is escaped text, so neither tag can occur there.
pub fn items_between(doc: &[u8], open: &str, close: &str) -> anyhow::Result<Vec<u8>> {
    let start = find(doc, open.as_bytes()).with_context(|| format!("chunk has no {open}"))?;
    let end = rfind(doc, close.as_bytes()).with_context(|| format!("chunk has no {close}"))?
        + close.len();
    Ok(doc[start..end].to_vec())
}

/// Writes `frame.head`, then the items of `articles` rendered by
/// `render_chunk` in parallel chunks (joined by `separator`), then
/// `frame.tail`.
pub fn write(
    out: &mut dyn Write,
    frame: &Frame,
    articles: &[Arc<Article>],
    separator: &[u8],
    render_chunk: impl Fn(&[Arc<Article>]) -> anyhow::Result<Vec<u8>> + Sync,
) -> anyhow::Result<()> {
    out.write_all(&frame.head)?;
    let mut first = true;
    for batch in articles.chunks(CHUNK * BATCH) {
        let parts: Vec<Vec<u8>> = batch
            .par_chunks(CHUNK)
            .map(&render_chunk)
            .collect::<anyhow::Result<_>>()?;
        for part in parts {
            if !first {
                out.write_all(separator)?;
            }
            first = false;
            out.write_all(&part)?;
        }
    }
    out.write_all(&frame.tail)?;
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}
