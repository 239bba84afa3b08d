//! `herald bounces ingest [FILE|-]`: one bounce report (a DSN or an abuse
//! report) from a file or standard input, applied to the store: what an
//! MTA alias pipes the mail of the bounce address into
//! (`bounces: "|/usr/local/bin/herald bounces ingest"`).
//!
//! Exit codes as an MTA pipe wants them: 0 when the message was handled
//! (applied, seen before, unmatched, or not a report at all: bouncing it
//! again would help nobody), 75 (EX_TEMPFAIL) when the database did not
//! answer, so the MTA keeps the message and tries again later.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;
use crate::mail::reports::MAX_REPORT;
use crate::store;
use crate::subscribers::bounces::{Bounces, IngestError};
use crate::subscribers::tokens::Signer;

/// sysexits.h: a temporary failure; the MTA retries the delivery.
const EX_TEMPFAIL: u8 = 75;

#[derive(Debug, clap::Subcommand)]
pub enum BouncesCommand {
    /// Read one bounce report (RFC 3464 delivery status notification or
    /// RFC 5965 abuse report) and apply it: hard bounces count towards
    /// `mail.bounce_limit`, complaints make the subscriber `complained`.
    /// Exits 0 when handled (also when it was no report), 75 when the
    /// database did not answer (the MTA tries again).
    Ingest {
        /// The message file; `-` or nothing for standard input.
        file: Option<PathBuf>,
        /// The address the MTA delivered the report to, when it is not in
        /// the message's headers (default: Postfix's ORIGINAL_RECIPIENT).
        #[arg(long, value_name = "ADDRESS", env = "ORIGINAL_RECIPIENT")]
        recipient: Option<String>,
    },
}

pub async fn run(config: Config, cmd: BouncesCommand) -> anyhow::Result<ExitCode> {
    let BouncesCommand::Ingest { file, recipient } = cmd;
    let mut raw = Vec::new();
    match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => {
            std::fs::File::open(&path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .take(MAX_REPORT as u64 + 1)
                .read_to_end(&mut raw)
                .with_context(|| format!("cannot read {}", path.display()))?;
        }
        None => {
            std::io::stdin()
                .take(MAX_REPORT as u64 + 1)
                .read_to_end(&mut raw)
                .context("cannot read standard input")?;
        }
    }
    let config = Arc::new(config);
    let store = match store::open(&config).await {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(EX_TEMPFAIL));
        }
    };
    let signer = Signer::for_store(&config, &*store).await?;
    let bounces = Bounces::new(Arc::clone(&config), Arc::clone(&store), signer);
    let result = bounces.ingest(&raw, recipient.as_deref()).await;
    store.close().await;
    match result {
        Ok(applied) => {
            eprintln!("bounce report: {applied}");
            Ok(ExitCode::SUCCESS)
        }
        Err(IngestError::NotAReport(e)) => {
            eprintln!("not a bounce report, ignored: {e}");
            Ok(ExitCode::SUCCESS)
        }
        Err(IngestError::Unavailable(e)) => {
            eprintln!("error: {e}; try again later");
            Ok(ExitCode::from(EX_TEMPFAIL))
        }
        Err(IngestError::Store(e)) => Err(e.into()),
    }
}
