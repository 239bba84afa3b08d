//! herald: a content directory becomes RSS 2.0, Atom 1.0 and JSON Feed 1.1
//! files.
//!
//! - [`config`]: `herald.toml` and `HERALD_…` overrides, typed at the edge.
//! - [`content`]: files -> [`content::Article`]s -> a [`content::Catalog`],
//!   with a report naming every rejected file.
//! - [`feeds`]: catalog -> feed files, written atomically and only when
//!   their bytes change.
//! - [`build`]: one load-and-write pass, as `herald build` runs it.
//! - [`engine`]: the daemon's incremental rebuild and publish.
//! - [`daemon`]: `herald run`, wiring server, rebuild loop, watcher, WebSub.
//! - [`fsutil`]: atomic writes.
//! - [`http`]: the feeds over HTTP (conditional GET, precompressed bodies),
//!   an index page, `/healthz`, `/readyz`, `/metrics`.
//! - [`publish`]: the feeds being served, swapped whole on each publish.
//! - [`metrics`]: counters for `/metrics`.
//! - [`schedule`]: when the daemon rebuilds (cron, due articles, file changes).
//! - [`shutdown`]: one stop signal for every task.
//! - [`websub`]: pings WebSub hubs after feeds change, retrying in the
//!   background.

pub mod build;
pub mod config;
pub mod content;
pub mod daemon;
pub mod engine;
pub mod feeds;
pub mod fsutil;
pub mod http;
pub mod metrics;
pub mod publish;
pub mod schedule;
pub mod shutdown;
pub mod websub;
