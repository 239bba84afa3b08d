//! herald's integration tests: one binary, one file per area.

mod helpers;
mod bad_input;
mod determinism;
mod cli;
mod corpora;
