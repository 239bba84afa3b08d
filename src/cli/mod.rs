//! The command-line front ends other than `herald run` (which is
//! [`crate::daemon`]): each turns parsed arguments into calls on the groups
//! below and an exit code.
//!
//! - [`site`]: `herald build` and `herald check`, one load-and-write pass.
//! - [`db`]: `herald db migrate|copy`.
//! - [`digest`]: `herald digest preview|send|status|retry`.
//! - [`subscribers`]: `herald subscribers add|list|remove|import|export`,
//!   with the CSV format in [`subscribers_csv`].
//! - [`healthcheck`]: `herald healthcheck`, the container's probe.

pub mod db;
pub mod digest;
pub mod healthcheck;
pub mod site;
pub mod subscribers;
mod subscribers_csv;
