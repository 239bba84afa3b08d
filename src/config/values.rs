//! Value types of the configuration, each parsed and checked at the edge:
//! URLs, durations, sizes, language tags, time zones, permalink patterns
//! and secrets (cron schedules are in `cron`). A value of one of these types is valid
//! by construction.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use url::Url;

/// A secret value: never printed (`Debug` shows `[redacted]`).
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// An absolute `http` or `https` URL whose path ends in `/`, so that joining
/// a relative path keeps every segment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct BaseUrl(pub Url);

impl TryFrom<String> for BaseUrl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let mut url = Url::parse(&s).map_err(|e| format!("`{s}` is not an absolute URL ({e})"))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(format!("`{s}` must start with http:// or https://"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("`{s}` must not have a query or fragment"));
        }
        if !url.path().ends_with('/') {
            let p = format!("{}/", url.path());
            url.set_path(&p);
        }
        Ok(BaseUrl(url))
    }
}

impl BaseUrl {
    pub fn url(&self) -> &Url {
        &self.0
    }
}

/// An absolute http(s) URL kept as written (no trailing slash added), such
/// as a WebSub hub.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct BaseUrlLike(pub Url);

impl TryFrom<String> for BaseUrlLike {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let url = Url::parse(&s).map_err(|e| format!("`{s}` is not an absolute URL ({e})"))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(format!("`{s}` must start with http:// or https://"));
        }
        Ok(BaseUrlLike(url))
    }
}

/// `10 MiB` -> (10, "MiB"): the leading whole number and the unit after it
/// (trimmed; empty when there is none).
fn number_and_unit(s: &str) -> Option<(u64, &str)> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    Some((num.parse().ok()?, unit.trim()))
}

/// The longest [`Duration`]: 100 years.
const MAX_DURATION_MS: u64 = 100 * 365 * 86_400_000;

/// A span of time written with a unit: `300ms`, `10s`, `5 min`, `2h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Duration(pub std::time::Duration);

impl FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (n, unit) = number_and_unit(s)
            .ok_or_else(|| format!("`{s}` is not a duration like `500ms`, `10s` or `5min`"))?;
        let (n, millis_per) = match unit.trim() {
            "ms" => (n, 1),
            "s" | "sec" => (n, 1000),
            "m" | "min" => (n, 60_000),
            "h" => (n, 3_600_000),
            "d" | "days" => (n, 86_400_000),
            "" => return Err(format!("`{s}` needs a unit: ms, s, min or h")),
            other => {
                return Err(format!(
                    "`{s}`: unknown unit `{other}` (use ms, s, min or h)"
                ))
            }
        };
        // Bounded, so that no time computed from it overflows (a timer, a
        // purge cut-off).
        match n
            .checked_mul(millis_per)
            .filter(|ms| *ms <= MAX_DURATION_MS)
        {
            Some(ms) => Ok(Duration(std::time::Duration::from_millis(ms))),
            None => Err(format!("`{s}` is too long (at most 100 years)")),
        }
    }
}

impl TryFrom<String> for Duration {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Duration::from_str(&s)
    }
}

/// The sender of every message, `Name <address>`, parsed once here.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Sender(pub lettre::message::Mailbox);

impl TryFrom<String> for Sender {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.chars().any(char::is_control) {
            return Err("must not contain line breaks or control characters".into());
        }
        s.parse()
            .map(Sender)
            .map_err(|_| format!("`{s}` is not an address like `Name <name@example.org>`"))
    }
}

impl Sender {
    pub fn mailbox(&self) -> &lettre::message::Mailbox {
        &self.0
    }
}

/// A BCP 47 language tag such as `en` or `pt-BR` (shape only).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct LanguageTag(pub String);

impl Default for LanguageTag {
    fn default() -> Self {
        LanguageTag("en".into())
    }
}

impl LanguageTag {
    pub fn parse(s: &str) -> Result<LanguageTag, String> {
        let mut parts = s.split('-');
        let primary = parts.next().unwrap_or("");
        let ok_primary =
            (2..=8).contains(&primary.len()) && primary.chars().all(|c| c.is_ascii_alphabetic());
        let ok_rest = parts
            .all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
        if ok_primary && ok_rest {
            Ok(LanguageTag(s.to_string()))
        } else {
            Err(format!("`{s}` is not a language tag like `en` or `pt-BR`"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for LanguageTag {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        LanguageTag::parse(&s)
    }
}

/// An IANA time zone name (`Europe/Berlin`, `UTC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct TimeZone(pub chrono_tz::Tz);

impl Default for TimeZone {
    fn default() -> Self {
        TimeZone(chrono_tz::UTC)
    }
}

impl TryFrom<String> for TimeZone {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse::<chrono_tz::Tz>().map(TimeZone).map_err(|_| {
            format!("`{s}` is not an IANA time zone name like `Europe/Berlin` or `UTC`")
        })
    }
}

/// A size in bytes, written as a number or with a unit: `10 MiB`, `512KiB`,
/// `2MB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SizeRepr")]
pub struct ByteSize(pub u64);

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeRepr {
    Number(u64),
    Text(String),
}

impl TryFrom<SizeRepr> for ByteSize {
    type Error = String;
    fn try_from(r: SizeRepr) -> Result<Self, String> {
        match r {
            SizeRepr::Number(n) => Ok(ByteSize(n)),
            SizeRepr::Text(s) => ByteSize::from_str(&s),
        }
    }
}

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (n, unit) = number_and_unit(s)
            .ok_or_else(|| format!("`{s}` is not a size like `10 MiB` or `1048576`"))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1000,
            "kib" => 1024,
            "m" | "mb" => 1000 * 1000,
            "mib" => 1024 * 1024,
            "g" | "gb" => 1000 * 1000 * 1000,
            "gib" => 1024 * 1024 * 1024,
            other => return Err(format!("`{s}`: unknown size unit `{other}`")),
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("`{s}` is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes", self.0)
    }
}

/// An article URL pattern such as `/{year}/{month}/{day}/{slug}/`, a
/// Jekyll preset name (`date`, `pretty`, `ordinal`, `none`), or a pattern
/// in Jekyll's and Hugo's `:name` form (`/:categories/:year/:title/`).
/// Placeholders: `{year}`, `{short_year}`, `{month}`, `{i_month}`, `{day}`,
/// `{i_day}`, `{y_day}`, `{hour}`, `{minute}`, `{second}`, `{slug}` (the
/// file name without date, or `slug`), `{title}` (the title, slugified),
/// `{filename}`, `{section}` (the folder that holds the article, a page
/// bundle's parent), `{categories}` (Jekyll's categories, lower-case,
/// joined by `/`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct UrlPattern(String);

const PLACEHOLDERS: &[&str] = &[
    "year",
    "short_year",
    "month",
    "i_month",
    "day",
    "i_day",
    "y_day",
    "hour",
    "minute",
    "second",
    "slug",
    "title",
    "filename",
    "section",
    "categories",
];

/// Jekyll's permalink presets, as herald patterns (`:title` in Jekyll is
/// the file name, herald's `{slug}`; `:output_ext` is `.html`).
pub const JEKYLL_PRESETS: &[(&str, &str)] = &[
    ("date", "/{categories}/{year}/{month}/{day}/{slug}.html"),
    ("pretty", "/{categories}/{year}/{month}/{day}/{slug}/"),
    ("ordinal", "/{categories}/{year}/{y_day}/{slug}.html"),
    ("none", "/{categories}/{slug}.html"),
];

/// `/:categories/:year/:title:output_ext` -> `/{categories}/{year}/{slug}.html`.
/// `:title` means what it means in Jekyll, the file name.
fn from_colon_form(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    let mut rest = s;
    while let Some(i) = rest.find(':') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..len];
        match name {
            "output_ext" => out.push_str(".html"),
            "title" => out.push_str("{slug}"),
            "contentbasename" => out.push_str("{filename}"),
            n if PLACEHOLDERS.contains(&n) => {
                out.push('{');
                out.push_str(n);
                out.push('}');
            }
            _ => {
                out.push(':');
                out.push_str(name);
            }
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

impl FromStr for UrlPattern {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let expanded = match JEKYLL_PRESETS.iter().find(|(name, _)| *name == raw.trim()) {
            Some((_, pattern)) => pattern.to_string(),
            None if raw.contains(':') => from_colon_form(raw),
            None => raw.to_string(),
        };
        let s = expanded.as_str();
        if !s.starts_with('/') {
            return Err(format!(
                "`{raw}` must start with `/` or be a preset: date, pretty, ordinal, none"
            ));
        }
        if !["{slug}", "{title}", "{filename}"]
            .iter()
            .any(|p| s.contains(p))
        {
            return Err(format!(
                "`{raw}` must contain `{{slug}}`, `{{title}}` or `{{filename}}` so that articles get distinct URLs"
            ));
        }
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("`{raw}`: unclosed `{{`"))?;
            let name = &rest[open + 1..open + close];
            if !PLACEHOLDERS.contains(&name) {
                return Err(format!(
                    "`{raw}`: unknown placeholder `{{{name}}}` (known: {})",
                    PLACEHOLDERS.join(", ")
                ));
            }
            rest = &rest[open + close + 1..];
        }
        if s.contains("..") || s.contains('?') || s.contains('#') {
            return Err(format!("`{raw}` must be a plain path"));
        }
        Ok(UrlPattern(s.to_string()))
    }
}

impl TryFrom<String> for UrlPattern {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        UrlPattern::from_str(&s)
    }
}

impl UrlPattern {
    /// Fills the placeholders; `vars` maps placeholder names to values.
    /// The result is relative (no leading `/`), ready to join to a base URL.
    pub fn expand(&self, vars: &BTreeMap<&str, &str>) -> String {
        let mut out = String::with_capacity(self.0.len() + 32);
        let mut rest = self.0.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = open + rest[open..].find('}').expect("validated");
            let name = &rest[open + 1..close];
            out.push_str(vars.get(name).copied().unwrap_or(""));
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        // An empty `{section}` must not leave `//` behind.
        while out.contains("//") {
            out = out.replace("//", "/");
        }
        out.trim_start_matches('/').to_string()
    }
}

/// Where subscribers and the ledger live: an SQLite file (a plain path, or
/// `sqlite:path`) or a PostgreSQL URL (`postgres://user@host:5432/db`)
/// that carries no password (that comes from the environment or a file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum DatabaseLocation {
    Sqlite(std::path::PathBuf),
    Postgres(Url),
}

impl FromStr for DatabaseLocation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            let url = Url::parse(s).map_err(|e| format!("`{s}` is not a valid URL ({e})"))?;
            if url.password().is_some() {
                return Err("the PostgreSQL URL must not carry a password: give it in \
                     HERALD_SUBSCRIBERS__DATABASE_PASSWORD or subscribers.database_password_file"
                    .into());
            }
            if url.host_str().unwrap_or("").is_empty() {
                return Err(format!("`{s}` names no host"));
            }
            return Ok(DatabaseLocation::Postgres(url));
        }
        let path = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
            .unwrap_or(s);
        if path.is_empty() {
            return Err("empty database path".into());
        }
        if path.contains("://") {
            return Err(format!(
                "`{s}`: only sqlite: paths and postgres:// URLs are supported"
            ));
        }
        Ok(DatabaseLocation::Sqlite(path.into()))
    }
}

impl TryFrom<String> for DatabaseLocation {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        DatabaseLocation::from_str(&s)
    }
}

impl fmt::Display for DatabaseLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseLocation::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            DatabaseLocation::Postgres(u) => f.write_str(u.as_str()),
        }
    }
}

#[cfg(test)]
mod database_tests {
    use super::*;

    #[test]
    fn database_locations_parse_and_refuse_passwords() {
        let sqlite = |s: &str| DatabaseLocation::from_str(s).unwrap();
        assert_eq!(
            sqlite("data/h.sqlite3"),
            DatabaseLocation::Sqlite("data/h.sqlite3".into())
        );
        assert_eq!(
            sqlite("sqlite:/var/h.db"),
            DatabaseLocation::Sqlite("/var/h.db".into())
        );
        assert_eq!(
            sqlite("sqlite://rel/h.db"),
            DatabaseLocation::Sqlite("rel/h.db".into())
        );
        assert!(matches!(
            sqlite("postgres://herald@db:5432/herald"),
            DatabaseLocation::Postgres(_)
        ));
        let err = DatabaseLocation::from_str("postgres://herald:hunter2@db/herald").unwrap_err();
        assert!(
            err.contains("password") && !err.contains("hunter2"),
            "{err}"
        );
        assert!(DatabaseLocation::from_str("mysql://db/x").is_err());
    }
}
