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
use crate::mail::Mailer;
use crate::store::{
    self, ListFilter, NewSubscription, Status, Store, SubscribeOutcome, Subscriber, SubscriberEmail,
};
use crate::subscribers::optin::{Confirmation, Subscriptions};
use crate::subscribers::tokens::Signer;
use crate::templates::Templates;

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
        /// Their email address.
        email: String,
        /// Their name, for the operator's records (not used in mail).
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
        /// Only subscribers in this state: pending, active, unsubscribed,
        /// bounced or complained.
        #[arg(long, value_parser = parse_status)]
        status: Option<Status>,
        /// A table to read, or CSV (the export's columns).
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
    },
    /// Unsubscribe an address on the operator's behalf. The record and its
    /// consent history are kept.
    Remove {
        /// Their email address.
        email: String,
    },
    /// Erase a person on request (GDPR Art. 17): their subscriber record,
    /// schedules and tags go, their consent history keeps only a hash of
    /// the address, and the hash stays on a suppression list so that no
    /// sign-up or import brings the address back.
    Forget {
        /// Their email address.
        email: String,
    },
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
    /// Mail a confirmation link again to pending subscribers (every one, or
    /// the addresses given), through the configured mail transport as the
    /// daemon would. An address mailed less than `subscribers.resend_after`
    /// ago is skipped. A pending subscriber who does not confirm is removed
    /// once `subscribers.pending_purge_after` has passed since their last
    /// confirmation email. Exits 1 when a confirmation could not be sent.
    ConfirmAgain {
        /// Only these pending subscribers; default: every pending one.
        #[arg(value_name = "EMAIL")]
        emails: Vec<String>,
        /// Say who would get a confirmation, and send nothing.
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
    Status::parse(s)
        .ok_or_else(|| "expected pending, active, unsubscribed, bounced or complained".into())
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
    let shared = store::open(config).await?;
    let store = &*shared;
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
                email: rules.email(&email).map_err(anyhow::Error::msg)?,
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
            add(store, purge_after(config), request, out, err).await?
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
        SubscribersCommand::Forget { email } => {
            let email = SubscriberEmail::parse(&email).map_err(|e| anyhow::anyhow!("{e}"))?;
            let what = match store.forget(&email, Utc::now()).await? {
                true => "erased (the consent history keeps only a hash of the address)",
                false => "unknown to herald",
            };
            writeln!(
                out,
                "{email} is {what}; it cannot sign up or be imported again"
            )?;
            ExitCode::SUCCESS
        }
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
            import(store, &rules, purge_after(config), &bytes, dry_run, err).await?
        }
        SubscribersCommand::ConfirmAgain { emails, dry_run } => {
            confirm_again(config, &shared, &emails, dry_run, out, err).await?
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
    purge_after: chrono::Duration,
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
            "{} is pending (id {}): no mail has been sent. `herald subscribers confirm-again {}` mails the confirmation link; unconfirmed, they are removed by the daemon's hourly purge from {}",
            s.email,
            s.id,
            s.email,
            day_and_time(s.consent.requested_at + purge_after),
        )?,
        SubscribeOutcome::Suppressed => {
            writeln!(err, "refused: the address complained or was erased; nothing stored")?;
            return Ok(ExitCode::from(1));
        }
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
    purge_after: chrono::Duration,
    bytes: &[u8],
    dry_run: bool,
    err: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    let now = Utc::now();
    let (rows, rejected) = read_rows(bytes, rules, now, err)?;
    let pending_rows: Vec<&Row> = rows
        .iter()
        .map(|(_, row)| row)
        .filter(|row| match row {
            Row::New(n) => n.confirmed_note.is_none(),
            Row::Restore(s) => s.status == Status::Pending,
        })
        .collect();
    // Addresses already present are left alone: only new rows count.
    let present: HashSet<String> = if dry_run || !pending_rows.is_empty() {
        store
            .list(&ListFilter::default())
            .await?
            .iter()
            .map(|s| s.email.key())
            .collect()
    } else {
        HashSet::new()
    };
    let pending = pending_rows
        .iter()
        .filter(|row| !present.contains(&row.key()))
        .count();
    let restored = pending_rows.iter().any(|r| matches!(r, Row::Restore(_)));
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
    if pending > 0 {
        // Said before the summary, which stays the last line.
        writeln!(
            err,
            "{pending} new rows {} pending (no consent given in the file): no mail is sent to them. `herald subscribers confirm-again` mails them a confirmation link; whoever has not confirmed {} after their request or last confirmation email is removed by the daemon's hourly purge ({}).",
            if dry_run { "would be" } else { "are" },
            days(purge_after),
            if restored {
                "restored rows keep the request time of the export, so older ones go at the next purge".to_string()
            } else {
                format!("without a confirmation email: from {}", day_and_time(now + purge_after))
            }
        )?;
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

/// Mails pending subscribers their confirmation link again; see
/// [`SubscribersCommand::ConfirmAgain`].
async fn confirm_again(
    config: &Config,
    store: &std::sync::Arc<dyn Store>,
    emails: &[String],
    dry_run: bool,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let pending = store
        .list(&ListFilter {
            status: Some(Status::Pending),
        })
        .await?;
    let chosen: Vec<&Subscriber> = if emails.is_empty() {
        pending.iter().collect()
    } else {
        let mut chosen = Vec::new();
        for raw in emails {
            let email = SubscriberEmail::parse(raw).map_err(|e| anyhow::anyhow!("{raw}: {e}"))?;
            match pending.iter().find(|s| s.email.key() == email.key()) {
                Some(s) => chosen.push(s),
                None => anyhow::bail!("{email} is not a pending subscriber"),
            }
        }
        chosen
    };
    if dry_run {
        for s in &chosen {
            writeln!(out, "would mail {}", s.email)?;
        }
        writeln!(
            err,
            "dry run: {} pending subscribers; nothing sent",
            chosen.len()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let config = std::sync::Arc::new(config.clone());
    let subs = Subscriptions::new(
        std::sync::Arc::clone(&config),
        std::sync::Arc::clone(store),
        std::sync::Arc::new(Mailer::from_config(&config).await?),
        Signer::for_store(&config, &**store).await?,
        std::sync::Arc::new(Templates::load(Some(&config.templates_dir))?),
    );
    let (mut sent, mut skipped, mut failed) = (0u64, 0u64, 0u64);
    for s in chosen {
        let now = Utc::now();
        match subs.send_confirmation(s, now).await? {
            Confirmation::Sent => {
                sent += 1;
                let mut after = s.clone();
                after.confirmation_sent_at = Some(now);
                writeln!(
                    out,
                    "mailed {}; unconfirmed, removed from {}",
                    s.email,
                    day_and_time(subs.purge_due(&after))
                )?;
            }
            Confirmation::Throttled { last } => {
                skipped += 1;
                writeln!(
                    out,
                    "skipped {}: one went out at {}, less than subscribers.resend_after ago",
                    s.email,
                    day_and_time(last)
                )?;
            }
            Confirmation::Failed(e) => {
                failed += 1;
                writeln!(err, "failed {}: {}", s.email, e.reply())?;
            }
        }
    }
    subs.mailer().shutdown().await;
    writeln!(
        err,
        "confirm-again: mailed {sent}, skipped {skipped} (mailed within subscribers.resend_after), failed {failed}; links work for {}",
        days(chrono::Duration::from_std(config.subscribers.confirm_expiry.0).unwrap_or_default())
    )?;
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `subscribers.pending_purge_after` as a chrono duration.
fn purge_after(config: &Config) -> chrono::Duration {
    chrono::Duration::from_std(config.subscribers.pending_purge_after.0).unwrap_or_default()
}

fn day_and_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `7 days`, `48 hours` or `10 minutes`: a span as an operator says it.
fn days(d: chrono::Duration) -> String {
    let (n, unit) = if d.num_days() >= 2 && d.num_hours() % 24 == 0 {
        (d.num_days(), "days")
    } else if d.num_hours() >= 2 && d.num_minutes() % 60 == 0 {
        (d.num_hours(), "hours")
    } else {
        (d.num_minutes(), "minutes")
    };
    format!("{n} {unit}")
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
