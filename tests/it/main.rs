//! herald's integration tests: one binary, one file per area.

mod backends;
mod bad_input;
mod browser;
mod cli;
mod config_docs;
mod corpora;
mod daemon;
mod determinism;
mod digest;
mod digest_crash;
mod digest_templates;
mod e2e;
mod healthcheck;
mod helpers;
mod http;
mod mail;
mod outage;
mod pg;
mod replicas;
mod smtp;
mod store;
mod store_ledger;
mod subscribe;
mod subscribers_cli;
mod websub;
