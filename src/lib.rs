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
//! - [`digest`]: digest emails: runs planned into the ledger, sent in
//!   batches with retries, on cron schedules with catch-up.
//! - [`digest_cli`]: `herald digest preview|send|status|retry`.
//! - [`daemon`]: `herald run`, wiring server, rebuild loop, watcher, WebSub.
//! - [`fsutil`]: atomic writes.
//! - [`healthcheck`]: `herald healthcheck`, the container's probe of `/healthz`.
//! - [`http`]: the feeds over HTTP (conditional GET, precompressed bodies),
//!   an index page, `/healthz`, `/readyz`, `/metrics`.
//! - [`mail`]: messages (plain text and HTML) and their transport: SMTP
//!   pool or file outbox, errors sorted into transient and permanent.
//! - [`publish`]: the feeds being served, swapped whole on each publish.
//! - [`metrics`]: counters for `/metrics`.
//! - [`schedule`]: when the daemon rebuilds (cron, due articles, file changes).
//! - [`shutdown`]: one stop signal for every task.
//! - [`store`]: subscribers in SQLite behind the [`store::Store`] trait.
//! - [`subscribers_cli`]: `herald subscribers add|list|remove|import|export`.
//! - [`subscriptions`]: double opt-in, confirmation, unsubscribe, preferences.
//! - [`templates`]: Handlebars pages and mail, overridable per file.
//! - [`tokens`]: signed confirmation and unsubscribe links; the secret.
//! - [`websub`]: pings WebSub hubs after feeds change, retrying in the
//!   background.

pub mod build;
pub mod config;
pub mod content;
pub mod daemon;
pub mod digest;
pub mod digest_cli;
pub mod engine;
pub mod feeds;
pub mod fsutil;
pub mod healthcheck;
pub mod http;
pub mod mail;
pub mod metrics;
pub mod publish;
pub mod schedule;
pub mod shutdown;
pub mod store;
pub mod subscribers_cli;
pub mod subscriptions;
pub mod templates;
pub mod tokens;
pub mod websub;
