//! Reading the many ways people write dates: TOML datetimes, RFC 3339,
//! Jekyll's `2013-05-06 02:12:52 +0200`, bare dates, and dates hidden in
//! file names (`2013-05-06-title.md`) or front-matter paths (`2015/05/15/…`).

use chrono::{DateTime, Datelike, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

/// A date read from front matter, with a note when it was read leniently.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadDate {
    pub at: DateTime<FixedOffset>,
    /// Set when the text was not a standard form but Jekyll would publish
    /// it: says how it was read.
    pub note: Option<String>,
}

/// Earliest and latest years herald accepts: RSS wants four-digit years,
/// and outside them chrono cannot write RFC 2822 at all.
pub const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// Parses a date as written in front matter. A value without an offset is
/// taken in `tz`; a bare date is midnight in `tz`. Unpadded months and days
/// (`2024-4-9`) are read as padded ones.
pub fn parse_date(raw: &str, tz: Tz) -> Result<ReadDate, String> {
    let s = pad_date(raw.trim());
    let at = match strict(&s, tz, raw)? {
        Some(d) => ReadDate { at: d, note: None },
        None => match lenient(&s, tz, raw)? {
            Some(d) => ReadDate {
                note: Some(format!(
                    "date `{}` is not a standard form; read as {}, as Jekyll reads it",
                    raw.trim(),
                    d.to_rfc3339()
                )),
                at: d,
            },
            None => return Err(describe_bad_date(&s)),
        },
    };
    check_range(&at.at, raw)?;
    Ok(at)
}

/// An error unless `d` has a year in [`YEARS`], in its own offset and in UTC.
pub fn check_range(d: &DateTime<FixedOffset>, raw: &str) -> Result<(), String> {
    let utc = d.naive_utc();
    if YEARS.contains(&d.year()) && YEARS.contains(&utc.year()) {
        Ok(())
    } else {
        Err(format!(
            "date `{}` is out of range: years {} to {} only",
            raw.trim(),
            YEARS.start(),
            YEARS.end()
        ))
    }
}

/// `2024-4-9…` -> `2024-04-09…`; anything else unchanged.
fn pad_date(s: &str) -> std::borrow::Cow<'_, str> {
    let mut parts = s.splitn(3, '-');
    let (Some(y), Some(m), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return s.into();
    };
    let day_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    let ok = y.len() == 4
        && y.bytes().all(|b| b.is_ascii_digit())
        && (1..=2).contains(&m.len())
        && m.bytes().all(|b| b.is_ascii_digit())
        && (1..=2).contains(&day_len);
    if !ok || (m.len() == 2 && day_len == 2) {
        return s.into();
    }
    format!("{y}-{m:0>2}-{:0>2}{}", &rest[..day_len], &rest[day_len..]).into()
}

/// The standard forms; `Ok(None)` when none matches.
fn strict(s: &str, tz: Tz, raw: &str) -> Result<Option<DateTime<FixedOffset>>, String> {
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(d));
    }
    // With an explicit numeric offset, in the shapes Jekyll and Hugo write.
    for fmt in [
        "%Y-%m-%d %H:%M:%S %z",
        "%Y-%m-%d %H:%M:%S%z",
        "%Y-%m-%d %H:%M %z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f %z",
    ] {
        if let Ok(d) = DateTime::parse_from_str(s, fmt) {
            return Ok(Some(d));
        }
    }
    if let Ok(d) = DateTime::parse_from_rfc2822(s) {
        return Ok(Some(d));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return localize(n, tz, raw).map(Some);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return localize(d.and_hms_opt(0, 0, 0).expect("midnight exists"), tz, raw).map(Some);
    }
    Ok(None)
}

/// Jekyll hands dates to Ruby's `Time.parse`, which reads a leading date,
/// a time after it and a numeric offset anywhere later, and ignores other
/// words (`2023-01-29 18:30:22 2023 -0800`). Only text that starts with a
/// real date gets this reading.
fn lenient(s: &str, tz: Tz, raw: &str) -> Result<Option<DateTime<FixedOffset>>, String> {
    let Some(date) = s
        .get(..10)
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    else {
        return Ok(None);
    };
    let mut words = s[10..]
        .split(|c: char| c.is_whitespace() || c == 'T')
        .filter(|w| !w.is_empty())
        .peekable();
    let time = words
        .next_if(|w| w.contains(':') && !w.starts_with(['+', '-']))
        .and_then(|w| {
            chrono::NaiveTime::parse_from_str(w, "%H:%M:%S%.f")
                .or_else(|_| chrono::NaiveTime::parse_from_str(w, "%H:%M"))
                .ok()
        });
    let offset = words.find_map(|w| {
        if matches!(w, "Z" | "UTC" | "GMT") {
            return FixedOffset::east_opt(0);
        }
        let sign = match w.as_bytes().first()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let digits: String = w[1..].chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let h: i32 = digits[..2].parse().ok()?;
        let m: i32 = digits[2..].parse().ok()?;
        FixedOffset::east_opt(sign * (h * 3600 + m * 60))
    });
    let naive = date.and_time(time.unwrap_or_default());
    match offset {
        Some(o) => Ok(o.from_local_datetime(&naive).single()),
        None => localize(naive, tz, raw).map(Some),
    }
}

fn describe_bad_date(s: &str) -> String {
    // "Invalid" when the shape is a date but the calendar is not
    // (2021-02-30); "unknown format" for everything else.
    let b = s.as_bytes();
    let date_shaped = b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit);
    if date_shaped && NaiveDate::parse_from_str(&s[..10], "%Y-%m-%d").is_err() {
        format!("invalid date `{s}`: no such day")
    } else {
        format!(
            "unknown date format `{s}` (use RFC 3339 like `2024-05-01T09:30:00+02:00`, \
             `2024-05-01 09:30:00 +0200` or `2024-05-01`)"
        )
    }
}

fn localize(n: NaiveDateTime, tz: Tz, raw: &str) -> Result<DateTime<FixedOffset>, String> {
    match tz.from_local_datetime(&n) {
        LocalResult::Single(d) => Ok(d.fixed_offset()),
        // In a DST overlap take the earlier instant: deterministic.
        LocalResult::Ambiguous(a, _) => Ok(a.fixed_offset()),
        LocalResult::None => Err(format!(
            "date `{}` does not exist in time zone {} (it falls in a daylight-saving gap)",
            raw.trim(),
            tz.name()
        )),
    }
}

/// `2013-05-06-title` or `2013-05-06_title`: the date prefix of a file or
/// folder name.
pub fn date_from_name(name: &str) -> Option<NaiveDate> {
    let b = name.as_bytes();
    if b.len() < 11 || !(b[10] == b'-' || b[10] == b'_') {
        return None;
    }
    NaiveDate::parse_from_str(&name[..10], "%Y-%m-%d")
        .ok()
        .filter(|d| YEARS.contains(&d.year()))
}

/// Strips a date prefix from a file stem: `2013-05-06-title` -> `title`.
pub fn strip_date_prefix(name: &str) -> &str {
    if date_from_name(name).is_some() {
        &name[11..]
    } else {
        name
    }
}

/// The first `YYYY/MM/DD` run of segments in a URL path, as Zola sites
/// (the Rust blog) keep their dates: `inside-rust/2020/10/07/slug`.
pub fn date_from_path(path: &str) -> Option<NaiveDate> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    segs.windows(3).find_map(|w| {
        let (y, m, d) = (w[0], w[1], w[2]);
        if y.len() == 4 && m.len() == 2 && d.len() == 2 {
            NaiveDate::parse_from_str(&format!("{y}-{m}-{d}"), "%Y-%m-%d")
                .ok()
                .filter(|d| YEARS.contains(&d.year()))
        } else {
            None
        }
    })
}

/// Midnight of `d` in `tz`.
pub fn at_midnight(d: NaiveDate, tz: Tz) -> DateTime<FixedOffset> {
    let n = d.and_hms_opt(0, 0, 0).expect("midnight exists");
    match tz.from_local_datetime(&n) {
        LocalResult::Single(x) | LocalResult::Ambiguous(x, _) => x.fixed_offset(),
        // A zone whose midnight is skipped (rare DST rules): use 01:00.
        LocalResult::None => tz
            .from_local_datetime(&(n + chrono::Duration::hours(1)))
            .earliest()
            .expect("01:00 exists")
            .fixed_offset(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jekyll_offset_is_kept() {
        let d = parse_date("2013-05-06 02:12:52 +0200", chrono_tz::UTC).unwrap();
        assert_eq!(d.at.to_rfc3339(), "2013-05-06T02:12:52+02:00");
        assert_eq!(d.note, None);
    }

    #[test]
    fn naive_dates_use_the_site_zone() {
        let d = parse_date("2024-07-01 10:00", chrono_tz::Europe::Berlin).unwrap();
        assert_eq!(d.at.to_rfc3339(), "2024-07-01T10:00:00+02:00");
        let d = parse_date("2024-01-01", chrono_tz::UTC).unwrap();
        assert_eq!(d.at.to_rfc3339(), "2024-01-01T00:00:00+00:00");
    }

    #[test]
    fn bad_dates_say_why() {
        assert!(parse_date("2021-02-30", chrono_tz::UTC)
            .unwrap_err()
            .contains("invalid date"));
        assert!(parse_date("last tuesday", chrono_tz::UTC)
            .unwrap_err()
            .contains("unknown date format"));
    }

    #[test]
    fn unpadded_and_jekyll_lenient_dates_are_read() {
        let d = parse_date("2024-4-9", chrono_tz::UTC).unwrap();
        assert_eq!(d.at.to_rfc3339(), "2024-04-09T00:00:00+00:00");
        assert_eq!(d.note, None);
        let d = parse_date("2024-4-09 10:30:00 +0200", chrono_tz::UTC).unwrap();
        assert_eq!(d.at.to_rfc3339(), "2024-04-09T10:30:00+02:00");
        let d = parse_date("2023-01-29 18:30:22 2023 -0800", chrono_tz::UTC).unwrap();
        assert_eq!(d.at.to_rfc3339(), "2023-01-29T18:30:22-08:00");
        assert!(d.note.unwrap().contains("as Jekyll reads it"));
    }

    #[test]
    fn dates_outside_four_digit_years_are_errors() {
        for raw in [
            "-0001-01-01",
            "0000-06-01",
            "10000-01-01",
            "9999-12-31T23:00:00-05:00",
        ] {
            let e = parse_date(raw, chrono_tz::UTC).unwrap_err();
            assert!(
                e.contains("out of range") || e.contains("unknown"),
                "{raw}: {e}"
            );
        }
        assert!(parse_date("9999-12-31", chrono_tz::UTC).is_ok());
        assert_eq!(date_from_name("0000-01-01-x"), None);
    }

    #[test]
    fn dates_in_names_and_paths() {
        assert_eq!(
            date_from_name("2013-05-06-jekyll"),
            NaiveDate::from_ymd_opt(2013, 5, 6)
        );
        assert_eq!(date_from_name("jekyll"), None);
        assert_eq!(strip_date_prefix("2013-05-06-jekyll"), "jekyll");
        assert_eq!(
            date_from_path("inside-rust/2020/10/07/1.47.0-prerelease-2"),
            NaiveDate::from_ymd_opt(2020, 10, 7)
        );
        assert_eq!(date_from_path("about/team"), None);
    }
}
