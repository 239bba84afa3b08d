//! The command-line front ends other than `herald run` (which is
//! [`crate::daemon`]): each turns parsed arguments into calls on the groups
//! below and an exit code.
//!
//! - [`site`]: `herald build` and `herald check`, one load-and-write pass.
//! - [`announce`]: `herald announce`, one-off messages through the ledger.
//! - [`bounces`]: `herald bounces ingest`, the bounce address's pipe.
//! - [`db`]: `herald db migrate|copy`.
//! - [`digest`]: `herald digest preview|send|status|retry`.
//! - [`subscribers`]: `herald subscribers add|list|remove|import|export`,
//!   with the CSV format in [`subscribers_csv`].
//! - [`healthcheck`]: `herald healthcheck`, the container's probe.
//! - `progress`: done/total, rate and time left of long commands.

/// `println!` that hands back the write error instead of panicking, for
/// every line a command writes to stdout: when the reader has gone
/// (`herald digest status | head -c 10`) the command ends early and the
/// `BrokenPipe` error is a normal end ([`is_broken_pipe`]).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)
    }};
}

/// Whether `e` comes from writing to a reader that has gone away (a pipe
/// into `head`), which ends a command normally rather than failing it.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<csv::Error>()
                .is_some_and(|c| matches!(c.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe))
    })
}

pub mod announce;
pub mod bounces;
pub mod db;
pub mod digest;
pub mod healthcheck;
mod progress;
pub mod site;
pub mod subscribers;
mod subscribers_csv;
