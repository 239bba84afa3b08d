//! `herald subscribers add|list|remove|import|export`: the operator's view
//! of the subscriber database. It opens the same SQLite file as the daemon
//! (WAL mode), so it works while `herald run` is running.
//!
//! CSV import checks every row before writing anything, reports each bad
//! row by its line in the file, and writes the good rows in transactions of
//! [`BATCH`] rows, so a row is either wholly imported or not at all.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use chrono::{DateTime, SecondsFormat, Utc};

use crate::base::text::slugify;
use crate::config::Config;
use crate::store::{
    Consent, ListFilter, NewSubscription, SqliteStore, Status, Store, SubscribeOutcome, Subscriber,
    SubscriberEmail,
};

/// Rows written per transaction by `import`.
pub const BATCH: usize = 5_000;
/// `import` reports progress every this many rows.
const PROGRESS_EVERY: usize = 10_000;
const MAX_NAME: usize = 200;
const MAX_NOTE: usize = 1_000;
const MAX_TAG: usize = 100;
const MAX_TAGS: usize = 50;

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
    let path = config.database_path();
    let store = SqliteStore::open(&path).await?;
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
            add(&store, request, out, err).await?
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
        SubscribersCommand::Remove { email } => remove(&store, &email, out, err).await?,
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
            import(&store, &rules, &bytes, dry_run, err).await?
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
    store: &SqliteStore,
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
    store: &SqliteStore,
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

/// What a valid row or command-line value may hold, from the config.
struct Rules {
    schedules: Vec<String>,
}

impl Rules {
    fn new(config: &Config) -> Rules {
        Rules {
            schedules: config.digest.iter().map(|d| d.name.clone()).collect(),
        }
    }

    fn name(&self, raw: &str) -> Result<Option<String>, String> {
        let name = raw.trim();
        if name.chars().any(char::is_control) {
            return Err("name: contains control characters or line breaks".into());
        }
        if name.chars().count() > MAX_NAME {
            return Err(format!("name: longer than {MAX_NAME} characters"));
        }
        Ok((!name.is_empty()).then(|| name.to_string()))
    }

    /// Schedule names; none means all of them when `default_all`.
    fn schedules<'a>(
        &self,
        names: impl Iterator<Item = &'a str>,
        default_all: bool,
    ) -> Result<Vec<String>, String> {
        let mut out = BTreeSet::new();
        for s in names.map(str::trim).filter(|s| !s.is_empty()) {
            if !self.schedules.iter().any(|c| c == s) {
                return Err(if self.schedules.is_empty() {
                    format!("schedules: no [[digest]] named `{s}` (none are configured)")
                } else {
                    format!(
                        "schedules: no [[digest]] named `{s}` (configured: {})",
                        self.schedules.join(", ")
                    )
                });
            }
            out.insert(s.to_string());
        }
        if out.is_empty() && default_all {
            return Ok(self.schedules.clone());
        }
        Ok(out.into_iter().collect())
    }

    /// Tags, made into the slugs articles' tags have.
    fn tags<'a>(&self, tags: impl Iterator<Item = &'a str>) -> Result<Vec<String>, String> {
        let mut out = BTreeSet::new();
        for t in tags.map(str::trim).filter(|t| !t.is_empty()) {
            let slug = slugify(t);
            if slug.is_empty() {
                return Err(format!("tags: `{t}` has no letters or digits"));
            }
            if slug.chars().count() > MAX_TAG {
                return Err(format!("tags: a tag is longer than {MAX_TAG} characters"));
            }
            out.insert(slug);
        }
        if out.len() > MAX_TAGS {
            return Err(format!("tags: more than {MAX_TAGS} tags"));
        }
        Ok(out.into_iter().collect())
    }

    fn note(&self, raw: &str) -> Result<Option<String>, String> {
        let note = raw.trim();
        if note.chars().any(char::is_control) {
            return Err("consent_note: contains control characters or line breaks".into());
        }
        if note.chars().count() > MAX_NOTE {
            return Err(format!("consent_note: longer than {MAX_NOTE} characters"));
        }
        Ok((!note.is_empty()).then(|| note.to_string()))
    }
}

fn parse_flag(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "" | "false" | "no" | "0" => Ok(false),
        "true" | "yes" | "1" => Ok(true),
        _ => Err(format!(
            "confirmed: `{}` is not one of true, false, yes, no, 1, 0",
            raw.trim()
        )),
    }
}

/// The columns `import` knows; the last seven are what `export` adds.
const COLUMNS: [&str; 13] = [
    "email",
    "name",
    "status",
    "schedules",
    "tags",
    "confirmed",
    "consent_note",
    "requested_at",
    "requested_ip",
    "source",
    "confirmed_at",
    "left_at",
    "left_how",
];

/// Where each known column sits in the file.
struct Header {
    len: usize,
    at: HashMap<&'static str, usize>,
}

impl Header {
    fn parse(record: &csv::ByteRecord) -> anyhow::Result<Header> {
        let mut at = HashMap::new();
        for (i, raw) in record.iter().enumerate() {
            let name = std::str::from_utf8(raw)
                .map_err(|_| anyhow::anyhow!("line 1: the header is not valid UTF-8"))?
                .trim()
                .to_ascii_lowercase();
            let Some(known) = COLUMNS.iter().find(|c| **c == name) else {
                bail!(
                    "line 1: unknown column `{name}`; the header names some of: {}",
                    COLUMNS.join(", ")
                );
            };
            if at.insert(*known, i).is_some() {
                bail!("line 1: column `{name}` appears twice");
            }
        }
        if !at.contains_key("email") {
            bail!("line 1: the header has no `email` column (expected email,name,schedules,tags,confirmed,consent_note)");
        }
        if at.contains_key("status") {
            for needed in ["requested_at", "confirmed_at", "left_at"] {
                if !at.contains_key(needed) {
                    bail!(
                        "line 1: a file with a `status` column (an export) also needs `{needed}`"
                    );
                }
            }
        } else if let Some(extra) = COLUMNS[7..].iter().find(|c| at.contains_key(**c)) {
            // New subscriptions get their consent data from the import
            // itself; taking it from the file is for restoring an export.
            bail!("line 1: column `{extra}` is only read together with a `status` column (a file written by `export`)");
        }
        Ok(Header {
            len: record.len(),
            at,
        })
    }

    /// An export being restored, rather than new subscriptions.
    fn restores(&self) -> bool {
        self.at.contains_key("status")
    }
}

/// A row ready to write.
enum Row {
    New(NewSubscription),
    Restore(Subscriber),
}

impl Row {
    fn key(&self) -> String {
        match self {
            Row::New(n) => n.email.key(),
            Row::Restore(s) => s.email.key(),
        }
    }
}

/// One data row, validated. `now` is the time given to new subscriptions.
fn check_row(
    header: &Header,
    rules: &Rules,
    record: &csv::ByteRecord,
    now: DateTime<Utc>,
) -> Result<Row, String> {
    if record.len() != header.len {
        return Err(format!(
            "has {} fields, the header has {}",
            record.len(),
            header.len
        ));
    }
    let mut fields = Vec::with_capacity(record.len());
    for (i, raw) in record.iter().enumerate() {
        match std::str::from_utf8(raw) {
            Ok(s) => fields.push(s),
            Err(_) => {
                let column = header
                    .at
                    .iter()
                    .find(|(_, &at)| at == i)
                    .map_or("?", |(name, _)| *name);
                return Err(format!("{column}: not valid UTF-8"));
            }
        }
    }
    let get = |column: &str| header.at.get(column).map_or("", |&i| fields[i]);
    let email = SubscriberEmail::parse(get("email")).map_err(|e| format!("email: {e}"))?;
    let name = rules.name(get("name"))?;
    let tags = rules.tags(get("tags").split(';'))?;
    let confirmed = parse_flag(get("confirmed"))?;
    let note = rules.note(get("consent_note"))?;
    if !header.restores() {
        match (confirmed, &note) {
            (true, None) => {
                return Err(
                    "confirmed rows need a consent_note saying how consent was given".into(),
                )
            }
            (false, Some(_)) => {
                return Err("consent_note given but confirmed is not set".into());
            }
            _ => {}
        }
        return Ok(Row::New(NewSubscription {
            email,
            name,
            schedules: rules.schedules(get("schedules").split(';'), true)?,
            tags,
            at: now,
            ip: None,
            source: "import".into(),
            confirmed_note: note,
        }));
    }
    // An export: the status and consent data are taken as they are, and
    // must agree with each other as the database requires.
    let status = Status::parse(get("status").trim()).ok_or_else(|| {
        format!(
            "status: `{}` is not one of pending, active, unsubscribed, bounced",
            get("status").trim()
        )
    })?;
    let time = |column: &str| -> Result<Option<DateTime<Utc>>, String> {
        let raw = get(column).trim();
        if raw.is_empty() {
            return Ok(None);
        }
        DateTime::parse_from_rfc3339(raw)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| format!("{column}: `{raw}` is not an RFC 3339 time"))
    };
    let text = |column: &str, max: usize| -> Result<Option<String>, String> {
        let raw = get(column).trim();
        if raw.chars().any(char::is_control) || raw.chars().count() > max {
            return Err(format!(
                "{column}: control characters or longer than {max} characters"
            ));
        }
        Ok((!raw.is_empty()).then(|| raw.to_string()))
    };
    let requested_at = time("requested_at")?.ok_or("requested_at: missing")?;
    let confirmed_at = time("confirmed_at")?;
    let left_at = time("left_at")?;
    let requested_ip = text("requested_ip", 100)?;
    if let Some(ip) = &requested_ip {
        ip.parse::<IpAddr>()
            .map_err(|_| format!("requested_ip: `{ip}` is not an IP address"))?;
    }
    let left = matches!(status, Status::Unsubscribed | Status::Bounced);
    if status == Status::Active && confirmed_at.is_none() {
        return Err("status active needs confirmed_at".into());
    }
    if status == Status::Pending && confirmed_at.is_some() {
        return Err("status pending cannot have confirmed_at".into());
    }
    if left != left_at.is_some() {
        return Err(format!(
            "left_at must be given exactly when status is unsubscribed or bounced (status is {})",
            status.as_str()
        ));
    }
    Ok(Row::Restore(Subscriber {
        id: 0,
        email,
        name,
        status,
        schedules: rules.schedules(get("schedules").split(';'), false)?,
        tags,
        consent: Consent {
            requested_at,
            requested_ip,
            source: text("source", 100)?.unwrap_or_else(|| "import".into()),
            confirmed_at,
            note,
            left_at,
            left_how: text("left_how", 100)?,
        },
        confirmation_sent_at: None,
    }))
}

/// Checks every row of the file, reporting bad ones on `err`. Returns the
/// good rows with their line numbers and the number rejected.
fn read_rows(
    bytes: &[u8],
    rules: &Rules,
    now: DateTime<Utc>,
    err: &mut (dyn Write + Send),
) -> anyhow::Result<(Vec<(u64, Row)>, u64)> {
    // Flexible: a row with the wrong number of fields is reported, not
    // fatal. Bytes, not strings: bad UTF-8 is reported per row too.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut record = csv::ByteRecord::new();
    if !reader.read_byte_record(&mut record)? {
        bail!("the file is empty: it needs at least the header line");
    }
    let header = Header::parse(&record)?;
    let mut rows = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut rejected = 0;
    while reader.read_byte_record(&mut record)? {
        let line = start_line(bytes, record.position());
        let checked = check_row(&header, rules, &record, now).and_then(|row| {
            let key = row.key();
            match seen.get(&key) {
                Some(first) => Err(format!("email: {key} is already on line {first}")),
                None => Ok(row),
            }
        });
        match checked {
            Ok(row) => {
                seen.insert(row.key(), line);
                rows.push((line, row));
            }
            Err(reason) => {
                rejected += 1;
                // A quote that is never closed swallows the rest of the
                // file into this row; say so rather than only count fields.
                let runaway = reader.position().byte() as usize == bytes.len()
                    && record.iter().any(|f| f.contains(&b'\n'));
                let hint = if runaway {
                    " (a quote opened on this line is never closed, so the rest of the file is part of this row)"
                } else {
                    ""
                };
                writeln!(err, "line {line}: {reason}{hint}")?;
            }
        }
    }
    Ok((rows, rejected))
}

/// The line a record starts on. The csv reader skips blank lines as part
/// of the record that follows them and reports the first blank line.
fn start_line(bytes: &[u8], position: Option<&csv::Position>) -> u64 {
    let Some(p) = position else { return 0 };
    let skipped = bytes[(p.byte() as usize).min(bytes.len())..]
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .filter(|b| **b == b'\n')
        .count();
    p.line() + skipped as u64
}

async fn import(
    store: &SqliteStore,
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
    if rules.schedules.is_empty() {
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

/// RFC 3339 in UTC, with fractions of a second only when there are some.
fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn opt_time(t: Option<DateTime<Utc>>) -> String {
    t.map(rfc3339).unwrap_or_default()
}

/// The export format: what `import` reads back.
fn write_csv(list: &[Subscriber], out: &mut dyn Write) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(COLUMNS)?;
    for s in list {
        let c = &s.consent;
        w.write_record([
            s.email.as_str(),
            s.name.as_deref().unwrap_or(""),
            s.status.as_str(),
            &s.schedules.join(";"),
            &s.tags.join(";"),
            if c.confirmed_at.is_some() {
                "true"
            } else {
                "false"
            },
            c.note.as_deref().unwrap_or(""),
            &rfc3339(c.requested_at),
            c.requested_ip.as_deref().unwrap_or(""),
            &c.source,
            &opt_time(c.confirmed_at),
            &opt_time(c.left_at),
            c.left_how.as_deref().unwrap_or(""),
        ])?;
    }
    w.flush()?;
    Ok(())
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

/// Writes a file only its owner can read (it holds personal data),
/// atomically: a temporary file beside it, synced, then renamed.
fn write_private(
    path: &Path,
    render: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".herald-export-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        render(&mut w)?;
        w.flush()
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot move the export into place at {}", path.display()))?;
    Ok(())
}
