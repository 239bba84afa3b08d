//! herald: a content directory becomes RSS 2.0, Atom 1.0 and JSON Feed 1.1
//! files.
//!
//! - [`config`]: `herald.toml` and `HERALD_…` overrides, typed at the edge.
//! - [`content`]: files -> [`content::Article`]s -> a [`content::Catalog`],
//!   with a report naming every rejected file.
//! - [`feeds`]: catalog -> feed files, written atomically and only when
//!   their bytes change.
//! - [`build`]: one load-and-write pass, as `herald build` runs it.
//! - [`fsutil`]: atomic writes.

pub mod build;
pub mod config;
pub mod content;
pub mod feeds;
pub mod fsutil;
