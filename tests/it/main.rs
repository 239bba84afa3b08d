//! herald's integration tests: one binary, one file per area.

mod bad_input;
mod browser;
mod check_parity;
mod cli;
mod closed_pipe;
mod config_docs;
mod config_env;
mod corpora;
mod cron;
mod daemon;
mod determinism;
mod digest;
mod digest_cli;
mod digest_crash;
mod digest_templates;
mod e2e;
mod healthcheck;
mod helpers;
mod http;
mod leftovers;
mod mail;
mod smtp;
mod store;
mod subscribe;
mod subscribers_cli;
mod websub;
