//! herald's integration tests: one binary, one file per area.

mod bad_input;
mod browser;
mod child;
mod cli;
mod config_docs;
mod corpora;
mod daemon;
mod determinism;
mod digest;
mod digest_crash;
mod digest_templates;
mod e2e;
mod edge;
mod healthcheck;
mod helpers;
mod http;
mod mail;
mod metrics;
mod proxy;
mod shutdown;
mod smtp;
mod store;
mod subscribe;
mod subscribers_cli;
mod tls;
mod websub;
