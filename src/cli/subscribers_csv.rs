//! The CSV format of `herald subscribers import` and `export`: the
//! columns, the checks of each row (every bad row reported by its line in
//! the file), and the writer whose output `import` reads back.

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;

use anyhow::bail;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::config::Config;
use crate::store::{Consent, EmailError, NewSubscription, Status, Subscriber, SubscriberEmail};
use crate::subscribers::choices::Choices;

const MAX_NAME: usize = 200;
const MAX_NOTE: usize = 1_000;

/// What a valid row or command-line value may hold, from the config.
pub(super) struct Rules {
    pub(super) choices: Choices,
    /// Addresses with a non-ASCII local part are accepted (`mail.smtputf8`).
    smtputf8: bool,
}

impl Rules {
    pub(super) fn new(config: &Config) -> Rules {
        Rules {
            choices: Choices::new(config),
            smtputf8: config.mail.smtputf8,
        }
    }

    /// A new subscriber's address.
    pub(super) fn email(&self, raw: &str) -> Result<SubscriberEmail, String> {
        SubscriberEmail::parse_new(raw, self.smtputf8).map_err(|e| match e {
            EmailError::NonAsciiLocalPart(_) => format!(
                "email: {e} (mail.smtputf8 = true accepts such addresses, if your SMTP server supports SMTPUTF8)"
            ),
            e => format!("email: {e}"),
        })
    }

    pub(super) fn name(&self, raw: &str) -> Result<Option<String>, String> {
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
    pub(super) fn schedules<'a>(
        &self,
        names: impl Iterator<Item = &'a str>,
        default_all: bool,
    ) -> Result<Vec<String>, String> {
        self.choices
            .schedules(names, default_all)
            .map_err(|e| format!("schedules: {e}"))
    }

    /// Tags, made into the slugs articles' tags have.
    pub(super) fn tags<'a>(
        &self,
        tags: impl Iterator<Item = &'a str>,
    ) -> Result<Vec<String>, String> {
        self.choices
            .any_tags(tags)
            .map_err(|e| format!("tags: {e}"))
    }

    pub(super) fn note(&self, raw: &str) -> Result<Option<String>, String> {
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
pub(super) struct Header {
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
#[derive(Debug)]
pub(super) enum Row {
    New(NewSubscription),
    Restore(Subscriber),
}

impl Row {
    pub(super) fn key(&self) -> String {
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
            Ok(s) => fields.push(unquote_formula(s)),
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
    let email = rules.email(get("email"))?;
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
            "status: `{}` is not one of pending, active, unsubscribed, bounced, complained",
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
    let left = status.has_left();
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
pub(super) fn read_rows(
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

/// RFC 3339 in UTC, with fractions of a second only when there are some.
pub(super) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn opt_time(t: Option<DateTime<Utc>>) -> String {
    t.map(rfc3339).unwrap_or_default()
}

/// Characters that make a spreadsheet read a cell as a formula
/// (`=cmd|'/Ccalc'!A0@example.org` is a valid address anyone can enter on
/// the subscribe form).
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A cell as the export writes it: prefixed with `'` when a spreadsheet
/// would take it for a formula (OWASP's rule). A cell that already starts
/// with `'`s before such a character gets one more, so that
/// [`unquote_formula`] gives back exactly what was written.
fn quote_formula(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.trim_start_matches('\'').starts_with(FORMULA_START) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// The reverse of [`quote_formula`], applied to every imported cell.
fn unquote_formula(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.trim_start_matches('\'').starts_with(FORMULA_START) => rest,
        _ => cell,
    }
}

/// The export format: what `import` reads back. Cells a spreadsheet would
/// run as formulas are quoted ([`quote_formula`]).
pub(super) fn write_csv(list: &[Subscriber], out: &mut dyn Write) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(COLUMNS)?;
    for s in list {
        let c = &s.consent;
        let cells = [
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
        ];
        w.write_record(cells.iter().map(|c| quote_formula(c).into_owned()))?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        let config = Config::parse(
            r#"
[site]
title = "T"
base_url = "https://example.org/"
author = { name = "A" }

[[digest]]
name = "weekly"
schedule = "0 0 8 * * Mon"

[[digest]]
name = "daily"
schedule = "0 0 7 * * *"
"#,
        )
        .unwrap();
        Rules::new(&config)
    }

    fn read(text: &str) -> (Vec<(u64, Row)>, u64, String) {
        let mut err = Vec::new();
        let (rows, rejected) = read_rows(text.as_bytes(), &rules(), Utc::now(), &mut err).unwrap();
        (rows, rejected, String::from_utf8(err).unwrap())
    }

    #[test]
    fn new_rows_get_every_schedule_by_default_and_slugged_tags() {
        let (rows, rejected, err) = read(
            "email,name,schedules,tags\n\
             a@example.org,Ann,,Web Dev;rust\n\
             b@example.org,,daily,\n",
        );
        assert_eq!((rows.len(), rejected), (2, 0), "{err}");
        let Row::New(a) = &rows[0].1 else {
            panic!("a new row")
        };
        assert_eq!(rows[0].0, 2, "line numbers count the header");
        assert_eq!(a.schedules, ["weekly", "daily"]);
        assert_eq!(a.tags, ["rust", "web-dev"]);
        assert_eq!(a.name.as_deref(), Some("Ann"));
        let Row::New(b) = &rows[1].1 else {
            panic!("a new row")
        };
        assert_eq!(b.schedules, ["daily"]);
    }

    #[test]
    fn bad_rows_are_reported_by_line_and_the_others_kept() {
        let (rows, rejected, err) = read(
            "email,schedules,confirmed,consent_note\n\
             not-an-address,,,\n\
             c@example.org,monthly,,\n\
             d@example.org,,true,\n\
             e@example.org,,maybe,\n\
             f@example.org,,true,signed up at the fair\n\
             F@example.org,,,\n",
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(rejected, 5);
        let lines: Vec<&str> = err.lines().collect();
        assert!(lines[0].starts_with("line 2: email:"), "{err}");
        assert!(
            lines[1].starts_with("line 3: schedules: no [[digest]] named `monthly`"),
            "{err}"
        );
        assert!(
            lines[2].starts_with("line 4: confirmed rows need a consent_note"),
            "{err}"
        );
        assert!(lines[3].starts_with("line 5: confirmed: `maybe`"), "{err}");
        assert!(
            lines[4].starts_with("line 7: email: f@example.org is already on line 6"),
            "{err}"
        );
    }

    #[test]
    fn a_header_must_name_known_columns_and_email() {
        let mut err = Vec::new();
        let e = read_rows(b"mail,name\n", &rules(), Utc::now(), &mut err).unwrap_err();
        assert!(e.to_string().contains("unknown column `mail`"), "{e}");
        let e = read_rows(b"name\n", &rules(), Utc::now(), &mut err).unwrap_err();
        assert!(e.to_string().contains("no `email` column"), "{e}");
        let e = read_rows(b"email,left_at\n", &rules(), Utc::now(), &mut err).unwrap_err();
        assert!(
            e.to_string().contains("only read together with a `status`"),
            "{e}"
        );
        let e = read_rows(b"", &rules(), Utc::now(), &mut err).unwrap_err();
        assert!(e.to_string().contains("the file is empty"), "{e}");
    }

    #[test]
    fn formula_quoting_is_undone_exactly() {
        for cell in [
            "=cmd|'/Ccalc'!A0@example.org",
            "+1",
            "-2",
            "@SUM(A1)",
            "\tx",
            "\rx",
            "'=already",
            "''+twice",
            "'plain",
            "plain",
            "",
            "'",
        ] {
            let quoted = quote_formula(cell);
            assert!(!quoted.starts_with(FORMULA_START), "{quoted:?}");
            assert_eq!(unquote_formula(&quoted), cell);
        }
        assert_eq!(quote_formula("=1+1"), "'=1+1");
        assert_eq!(quote_formula("plain"), "plain");
    }

    #[test]
    fn an_export_reads_back_as_the_same_subscribers() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let list = vec![Subscriber {
            id: 7,
            email: SubscriberEmail::parse("Ann@Example.org").unwrap(),
            name: Some("Ann, \"the\" reader".into()),
            status: Status::Unsubscribed,
            schedules: vec!["daily".into()],
            tags: vec!["go".into(), "rust".into()],
            consent: Consent {
                requested_at: at("2024-01-02T03:04:05Z"),
                requested_ip: Some("192.0.2.1".into()),
                source: "web-form".into(),
                confirmed_at: Some(at("2024-01-02T04:00:00.5Z")),
                note: None,
                left_at: Some(at("2024-03-01T00:00:00Z")),
                left_how: Some("link".into()),
            },
            confirmation_sent_at: None,
        }];
        let mut csv = Vec::new();
        write_csv(&list, &mut csv).unwrap();
        let (rows, rejected, err) = read(std::str::from_utf8(&csv).unwrap());
        assert_eq!(rejected, 0, "{err}");
        let Row::Restore(back) = &rows[0].1 else {
            panic!("a restored row")
        };
        let mut expected = list[0].clone();
        expected.id = 0;
        assert_eq!(back, &expected);
    }
}
