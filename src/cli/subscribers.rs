//! `herald subscribers add|list|remove|import|export`: the operator's view
//! of the subscriber database. It opens the same store as the daemon (the
//! SQLite file in WAL mode, or PostgreSQL), so it works while `herald run`
//! is running.
//!
//! CSV import checks every row before writing anything, reports each bad
//! row by its line in the file, and writes the good rows in transactions of
//! [`BATCH`] rows, so a row is either wholly imported or not at all.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::subscribers_csv::{read_rows, rfc3339, write_csv, Row, Rules};
use crate::base::fs::write_private;
use crate::config::Config;
use crate::store::{
    self, ListFilter, NewSubscription, Status, Store, SubscribeOutcome, Subscriber, SubscriberEmail,
};

/// Rows written per transaction by `import`.
pub const BATCH: usize = 5_000;
/// `import` reports progress every this many rows.
const PROGRESS_EVERY: usize = 10_000;

#[derive(Debug, clap::Subcommand)]
pub enum SubscribersCommand {
    /// Add one subscriber. Without --confirmed they are pending until they
    /// confirm; with it (and a --note saying how they gave consent) they
    /// are active at once.
    Add {
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// A `[[digest]]` schedule they receive (repeatable); default: all.
        #[arg(long = "schedule", value_name = "NAME")]
        schedules: Vec<String>,
        /// Only articles with this tag (repeatable); default: every article.
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// They already gave consent elsewhere.
        #[arg(long, requires = "note")]
        confirmed: bool,
        /// Where and how they gave consent (required with --confirmed).
        #[arg(long, requires = "confirmed")]
        note: Option<String>,
    },
    /// List subscribers, oldest first.
    List {
        #[arg(long, value_parser = parse_status)]
        status: Option<Status>,
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
    },
    /// Unsubscribe an address on the operator's behalf. The record and its
    /// consent history are kept.
    Remove { email: String },
    /// Import subscribers from CSV with the header
    /// `email,name,schedules,tags,confirmed,consent_note` (only `email` is
    /// required; schedules and tags separated by `;`). A file written by
    /// `export` is restored with its status and consent data. Addresses
    /// already present are left as they are. Exits 1 when any row was
    /// rejected (the others are imported).
    Import {
        /// The CSV file, or `-` for standard input.
        file: PathBuf,
        /// Check every row and report, writing nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write every subscriber, with status and consent data, as CSV.
    Export {
        /// Output file (written atomically); `-` or nothing for standard
        /// output.
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    Table,
    Csv,
}

fn parse_status(s: &str) -> Result<Status, String> {
    Status::parse(s).ok_or_else(|| "expected pending, active, unsubscribed or bounced".into())
}

/// Runs a subcommand, writing to the process's stdout and stderr.
pub async fn run(config: &Config, cmd: SubscribersCommand) -> anyhow::Result<ExitCode> {
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let mut err = std::io::stderr();
    let code = run_with(config, cmd, &mut out, &mut err).await;
    out.flush()?;
    code
}

/// [`run`] with its output streams given (tests capture them).
pub async fn run_with(
    config: &Config,
    cmd: SubscribersCommand,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let store = store::open(config).await?;
    let store = &*store;
    let rules = Rules::new(config);
    let code = match cmd {
        SubscribersCommand::Add {
            email,
            name,
            schedules,
            tags,
            confirmed: _,
            note,
        } => {
            let request = NewSubscription {
                email: SubscriberEmail::parse(&email).map_err(|e| anyhow::anyhow!("email: {e}"))?,
                name: rules
                    .name(name.as_deref().unwrap_or(""))
                    .map_err(anyhow::Error::msg)?,
                schedules: rules
                    .schedules(schedules.iter().map(String::as_str), true)
                    .map_err(anyhow::Error::msg)?,
                tags: rules
                    .tags(tags.iter().map(String::as_str))
                    .map_err(anyhow::Error::msg)?,
                at: Utc::now(),
                ip: None,
                source: "cli".into(),
                confirmed_note: match note {
                    Some(n) => Some(
                        rules
                            .note(&n)
                            .map_err(anyhow::Error::msg)?
                            .context("--note is empty")?,
                    ),
                    None => None,
                },
            };
            add(store, request, out, err).await?
        }
        SubscribersCommand::List { status, format } => {
            let list = store.list(&ListFilter { status }).await?;
            match format {
                ListFormat::Table => write_table(&list, out)?,
                ListFormat::Csv => write_csv(&list, out)?,
            }
            writeln!(err, "{} subscribers", list.len())?;
            ExitCode::SUCCESS
        }
        SubscribersCommand::Remove { email } => remove(store, &email, out, err).await?,
        SubscribersCommand::Import { file, dry_run } => {
            let bytes = if file.as_os_str() == "-" {
                let mut bytes = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut bytes)
                    .context("cannot read standard input")?;
                bytes
            } else {
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?
            };
            import(store, &rules, &bytes, dry_run, err).await?
        }
        SubscribersCommand::Export { file } => {
            let list = store.list(&ListFilter::default()).await?;
            match file.filter(|f| f.as_os_str() != "-") {
                Some(path) => {
                    write_private(&path, |w| write_csv(&list, w))?;
                    writeln!(
                        err,
                        "exported {} subscribers to {}",
                        list.len(),
                        path.display()
                    )?;
                }
                None => write_csv(&list, out)?,
            }
            ExitCode::SUCCESS
        }
    };
    store.close().await;
    Ok(code)
}

async fn add(
    store: &dyn Store,
    request: NewSubscription,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    if request.schedules.is_empty() {
        writeln!(
            err,
            "warning: no [[digest]] schedules are configured; {} will receive nothing yet",
            request.email
        )?;
    }
    let outcome = store.subscribe(request).await?;
    match outcome {
        SubscribeOutcome::Active(s) => writeln!(out, "{} is active (id {})", s.email, s.id)?,
        SubscribeOutcome::Pending(s) => writeln!(
            out,
            "{} is pending (id {}) until they confirm; the command line sends no mail",
            s.email, s.id
        )?,
        SubscribeOutcome::AlreadyActive(s) => writeln!(
            out,
            "{} is already active (id {}); nothing changed",
            s.email, s.id
        )?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn remove(
    store: &dyn Store,
    email: &str,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let email = SubscriberEmail::parse(email).map_err(|e| anyhow::anyhow!("email: {e}"))?;
    let Some(s) = store.find(&email).await? else {
        writeln!(err, "no subscriber with the address {email}")?;
        return Ok(ExitCode::from(1));
    };
    if let Some(left) = s.consent.left_at {
        writeln!(
            out,
            "{} is already {} (since {}); nothing changed",
            s.email,
            s.status.as_str(),
            rfc3339(left)
        )?;
    } else {
        store.unsubscribe(s.id, Utc::now(), "operator").await?;
        writeln!(
            out,
            "{} is unsubscribed; the record and its consent history are kept",
            s.email
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn import(
    store: &dyn Store,
    rules: &Rules,
    bytes: &[u8],
    dry_run: bool,
    err: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    let (rows, rejected) = read_rows(bytes, rules, Utc::now(), err)?;
    let total = rows.len();
    writeln!(
        err,
        "checked {} rows ({total} good, {rejected} rejected) in {:.2} s",
        total as u64 + rejected,
        start.elapsed().as_secs_f64()
    )?;
    if rules.choices.all_schedules().is_empty() {
        writeln!(
            err,
            "warning: no [[digest]] schedules are configured; imported subscribers receive nothing yet"
        )?;
    }
    let (mut added, mut existing) = (0u64, 0u64);
    if dry_run {
        let present: HashSet<String> = store
            .list(&ListFilter::default())
            .await?
            .iter()
            .map(|s| s.email.key())
            .collect();
        for (_, row) in &rows {
            if present.contains(&row.key()) {
                existing += 1;
            } else {
                added += 1;
            }
        }
    } else {
        let lines: Vec<u64> = rows.iter().map(|(line, _)| *line).collect();
        let (mut new, mut restore) = (Vec::new(), Vec::new());
        for (_, row) in rows {
            match row {
                Row::New(n) => new.push(n),
                Row::Restore(s) => restore.push(s),
            }
        }
        let (mut new, mut restore) = (new.into_iter(), restore.into_iter());
        let mut done = 0;
        while done < total {
            let n = BATCH.min(total - done);
            // A file is either new subscriptions or an export, never both.
            let counts = if restore.len() > 0 {
                store.restore(restore.by_ref().take(n).collect()).await
            } else {
                store.import(new.by_ref().take(n).collect()).await
            }
            .with_context(|| {
                format!(
                    "importing the rows of lines {}-{} failed: none of them is imported (the {done} rows before them are)",
                    lines[done],
                    lines[done + n - 1]
                )
            })?;
            added += counts.added;
            existing += counts.existing;
            let before = done;
            done += n;
            if done / PROGRESS_EVERY > before / PROGRESS_EVERY
                || (done == total && total >= PROGRESS_EVERY)
            {
                writeln!(
                    err,
                    "progress: {done}/{total} rows ({:.1} s)",
                    start.elapsed().as_secs_f64()
                )?;
            }
        }
    }
    writeln!(
        err,
        "{}imported {added}, already present {existing}, rejected {rejected} rows in {:.2} s",
        if dry_run {
            "dry run, nothing written: would have "
        } else {
            ""
        },
        start.elapsed().as_secs_f64()
    )?;
    Ok(if rejected > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn write_table(list: &[Subscriber], out: &mut dyn Write) -> anyhow::Result<()> {
    let day = |t: Option<DateTime<Utc>>| {
        t.map_or("-".to_string(), |t| t.format("%Y-%m-%d %H:%M").to_string())
    };
    let dash = |s: String| if s.is_empty() { "-".to_string() } else { s };
    let mut rows = vec![[
        "ID".to_string(),
        "EMAIL".into(),
        "STATUS".into(),
        "SCHEDULES".into(),
        "TAGS".into(),
        "REQUESTED".into(),
        "CONFIRMED".into(),
        "LEFT".into(),
    ]];
    for s in list {
        rows.push([
            s.id.to_string(),
            s.email.to_string(),
            s.status.as_str().to_string(),
            dash(s.schedules.join(",")),
            dash(s.tags.join(",")),
            day(Some(s.consent.requested_at)),
            day(s.consent.confirmed_at),
            match (&s.consent.left_at, &s.consent.left_how) {
                (Some(t), Some(how)) => format!("{} ({how})", day(Some(*t))),
                (Some(t), None) => day(Some(*t)),
                _ => "-".into(),
            },
        ]);
    }
    let mut widths = [0; 8];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for r in &rows {
        let mut line = String::new();
        for (i, (cell, w)) in r.iter().zip(widths).enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}
