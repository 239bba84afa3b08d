//! herald: a content directory becomes RSS 2.0, Atom 1.0 and JSON Feed 1.1
//! files served over HTTP, and digest emails to double-opt-in subscribers.
//!
//! The groups, lowest first; each imports only groups above it in this list
//! (checked by `scripts/check-layers.py` in CI):
//!
//! - [`base`]: the ground: text helpers, clock, shutdown signal, the served
//!   feed snapshot, `SubscriberEmail`, metrics, atomic writes.
//! - [`config`]: `herald.toml` and `HERALD_…` overrides, typed at the edge.
//! - [`content`]: files -> [`content::Article`]s -> a [`content::Catalog`],
//!   with a report naming every rejected file.
//! - [`feeds`]: catalog -> feed files, written atomically and only when
//!   their bytes change.
//! - [`templates`]: Handlebars pages and mail, overridable per file.
//! - [`store`]: subscribers, the consent log, the digest ledger and the
//!   state replicas share, behind traits; SQLite or PostgreSQL.
//! - [`mail`]: messages (plain text and HTML) and their transport: SMTP
//!   pool or file outbox, errors sorted into transient and permanent; the
//!   bounce and abuse reports that come back.
//! - [`subscribers`]: double opt-in, confirmation, unsubscribe,
//!   preferences, the signed links they use; late bounces and complaints
//!   (reports, Maildir, provider webhooks).
//! - [`digest`]: digest emails and announcements: runs planned into the
//!   ledger, sent in batches with retries, on cron schedules with
//!   catch-up; each run's page in the web archive.
//! - [`http`]: the feeds over HTTP (conditional GET, precompressed bodies),
//!   the subscribe pages, the web archive, the webhooks, `/healthz`,
//!   `/readyz`, `/metrics`.
//! - [`daemon`]: `herald run`: the rebuild loop and engine, WebSub pings,
//!   the digest and purge loops, wired to the HTTP server.
//! - [`cli`]: the other commands: `build`/`check`, `db`, `digest`,
//!   `announce`, `bounces`, `subscribers`, `healthcheck`.

pub mod base;
pub mod cli;
pub mod config;
pub mod content;
pub mod daemon;
pub mod digest;
pub mod feeds;
pub mod http;
pub mod mail;
pub mod store;
pub mod subscribers;
pub mod templates;
