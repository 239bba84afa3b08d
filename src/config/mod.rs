//! Configuration: `config/herald.toml` parsed into typed structs, with
//! `HERALD_…` environment variables overriding any key.
//!
//! Every section denies unknown keys, and every error names the key it is
//! about (`site.base_url: …`), whether the value came from the file or from
//! the environment. Values are turned into types at this edge (URLs, time
//! zones, sizes), so the rest of herald never re-validates them.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context};
use serde::Deserialize;
use url::Url;

pub use crate::base::FeedFormat;

mod values;

pub use values::{
    BaseUrl, BaseUrlLike, ByteSize, CronSchedule, Duration, LanguageTag, Secret, TimeZone,
    UrlPattern,
};

/// Environment variables the command line reads itself; they are not
/// config overrides.
const RESERVED_ENV: &[&str] = &["HERALD_CONFIG", "HERALD_LOG", "HERALD_LOG_FORMAT"];
const ENV_PREFIX: &str = "HERALD_";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub site: SiteConfig,
    #[serde(default)]
    pub content: ContentConfig,
    #[serde(default)]
    pub feeds: FeedsConfig,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub rescan: RescanConfig,
    #[serde(default)]
    pub websub: WebSubConfig,
    #[serde(default)]
    pub subscribers: SubscribersConfig,
    #[serde(default)]
    pub mail: MailConfig,
    /// Folder of template overrides: a file here replaces the built-in
    /// template of the same name.
    #[serde(default = "default_templates_dir")]
    pub templates_dir: PathBuf,
    /// Digest schedules subscribers can choose (`[[digest]]` entries).
    #[serde(default)]
    pub digest: Vec<DigestConfig>,
    /// Where herald keeps its own state (the dates it assigned to undated
    /// articles; later the subscriber database).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// The public address of the site the articles live on; permalinks are
    /// made from it.
    pub base_url: BaseUrl,
    #[serde(default = "default_language")]
    pub language: LanguageTag,
    /// Time zone for dates written without an offset (`2024-05-01 10:00`).
    #[serde(default)]
    pub timezone: TimeZone,
    pub author: Person,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentConfig {
    #[serde(default = "default_content_dir")]
    pub dir: PathBuf,
    /// Files larger than this are rejected rather than read.
    #[serde(default = "default_max_file_size")]
    pub max_file_size: ByteSize,
    /// Path of an article under `site.base_url`, used when its front matter
    /// gives neither `url` nor `path`.
    #[serde(default = "default_article_url")]
    pub article_url: UrlPattern,
}

impl Default for ContentConfig {
    fn default() -> Self {
        ContentConfig {
            dir: default_content_dir(),
            max_file_size: default_max_file_size(),
            article_url: default_article_url(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedContent {
    /// Whole article HTML (`content:encoded`, Atom `content`, `content_html`).
    Full,
    /// Summaries only; entries link to the article.
    Summary,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedsConfig {
    /// Output directory for the generated feeds.
    #[serde(default = "default_feeds_dir")]
    pub dir: PathBuf,
    /// Public address the feeds are served at (their `rel=self` links).
    /// Defaults to `site.base_url`.
    #[serde(default)]
    pub base_url: Option<BaseUrl>,
    /// Entries in each site-wide feed; 0 means every article.
    #[serde(default = "default_limit")]
    pub limit: usize,
    /// Entries in each per-tag feed; 0 means every article with the tag.
    #[serde(default = "default_limit")]
    pub tag_limit: usize,
    #[serde(default = "default_feed_content")]
    pub content: FeedContent,
    #[serde(default = "default_formats")]
    pub formats: Vec<FeedFormat>,
    /// Write a feed per tag under `tags/<tag>/`.
    #[serde(default = "default_true")]
    pub tag_feeds: bool,
}

impl Default for FeedsConfig {
    fn default() -> Self {
        FeedsConfig {
            dir: default_feeds_dir(),
            base_url: None,
            limit: default_limit(),
            tag_limit: default_limit(),
            content: default_feed_content(),
            formats: default_formats(),
            tag_feeds: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port `herald run` listens on.
    #[serde(default = "default_listen")]
    pub listen: std::net::SocketAddr,
    /// `Cache-Control` sent with every feed.
    #[serde(default = "default_cache_control")]
    pub cache_control: String,
    /// How long shutdown waits for requests in flight and a running rebuild.
    #[serde(default = "default_grace")]
    pub shutdown_grace: Duration,
    /// Longest time one request may take.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            cache_control: default_cache_control(),
            shutdown_grace: default_grace(),
            request_timeout: default_request_timeout(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RescanConfig {
    /// Cron expression with seconds (`sec min hour day month weekday`) for
    /// the scheduled rescan, the safety net behind file watching.
    #[serde(default = "default_rescan_schedule")]
    pub schedule: CronSchedule,
    /// Rebuild as soon as files in the content directory change.
    #[serde(default = "default_true")]
    pub watch: bool,
    /// Quiet time after the last file change before rebuilding.
    #[serde(default = "default_debounce")]
    pub debounce: Duration,
}

impl Default for RescanConfig {
    fn default() -> Self {
        RescanConfig {
            schedule: default_rescan_schedule(),
            watch: true,
            debounce: default_debounce(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSubConfig {
    /// WebSub hubs to advertise (`rel="hub"`) and notify after each change.
    #[serde(default)]
    pub hubs: Vec<BaseUrlLike>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribersConfig {
    /// SQLite database file; default `<data_dir>/herald.sqlite3`.
    #[serde(default)]
    pub database: Option<PathBuf>,
    /// Secret that signs confirmation and unsubscribe links. Give it only
    /// through the environment (`HERALD_SUBSCRIBERS__SECRET`) or
    /// `secret_file`; without either herald creates one in `data_dir`.
    #[serde(default)]
    pub secret: Option<Secret>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// How long a confirmation link stays valid.
    #[serde(default = "default_confirm_expiry")]
    pub confirm_expiry: Duration,
    /// Pending subscribers who never confirm are removed after this (their
    /// attempt stays in the consent log).
    #[serde(default = "default_pending_purge")]
    pub pending_purge_after: Duration,
    /// Subscription requests accepted per client IP per hour.
    #[serde(default = "default_per_ip")]
    pub max_requests_per_ip_per_hour: u32,
    /// Least time between two confirmation emails to one address.
    #[serde(default = "default_resend")]
    pub resend_after: Duration,
    /// Tags offered as filters on the subscribe form.
    #[serde(default)]
    pub tags: Vec<String>,
}

impl Default for SubscribersConfig {
    fn default() -> Self {
        SubscribersConfig {
            database: None,
            secret: None,
            secret_file: None,
            confirm_expiry: default_confirm_expiry(),
            pending_purge_after: default_pending_purge(),
            max_requests_per_ip_per_hour: default_per_ip(),
            resend_after: default_resend(),
            tags: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransportKind {
    /// One `.eml` file per message in `mail.outbox_dir`: works with no mail
    /// server.
    Outbox,
    Smtp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    #[serde(default = "default_transport")]
    pub transport: MailTransportKind,
    #[serde(default = "default_outbox")]
    pub outbox_dir: PathBuf,
    /// Sender of every message, `Name <address>`.
    #[serde(default = "default_from")]
    pub from: String,
    #[serde(default)]
    pub smtp: SmtpConfig,
    /// The sender's postal address, printed in every digest's footer (the
    /// law in many countries requires it). One line per `\n`.
    #[serde(default)]
    pub postal_address: String,
    /// An address that unsubscribes by mail: `List-Unsubscribe` then also
    /// carries `mailto:<address>?subject=unsubscribe%20<token>`.
    #[serde(default)]
    pub unsubscribe_mailto: Option<String>,
    /// Messages per second at most (0: as fast as the pool goes).
    #[serde(default = "default_rate_limit")]
    pub rate_limit: f64,
    /// Tries per message before a temporary failure counts as failed.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Wait before the first retry; doubled per attempt, with jitter.
    #[serde(default = "default_retry_base")]
    pub retry_base: Duration,
    /// Longest wait between retries.
    #[serde(default = "default_retry_max")]
    pub retry_max: Duration,
    /// Hard bounces (5xx for the recipient) after which a subscriber is
    /// marked `bounced` and gets no more mail.
    #[serde(default = "default_bounce_limit")]
    pub bounce_limit: u32,
    /// Deliveries taken from the ledger (and marked `sending`) at a time;
    /// a crash leaves at most two batches uncertain.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// How often the daemon looks in the ledger for digests queued by
    /// `herald digest send|retry` from the command line.
    #[serde(default = "default_poll")]
    pub queue_poll: Duration,
    #[serde(default)]
    pub dkim: Option<DkimConfig>,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            transport: default_transport(),
            outbox_dir: default_outbox(),
            from: default_from(),
            smtp: SmtpConfig::default(),
            postal_address: String::new(),
            unsubscribe_mailto: None,
            rate_limit: default_rate_limit(),
            max_attempts: default_max_attempts(),
            retry_base: default_retry_base(),
            retry_max: default_retry_max(),
            bounce_limit: default_bounce_limit(),
            batch_size: default_batch_size(),
            queue_poll: default_poll(),
            dkim: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    #[serde(default = "default_smtp_host")]
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    #[serde(default = "default_smtp_tls")]
    pub tls: SmtpTls,
    #[serde(default)]
    pub username: Option<String>,
    /// Only from the environment: `HERALD_MAIL__SMTP__PASSWORD`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Connections kept open to the server.
    #[serde(default = "default_pool")]
    pub pool_size: u32,
    #[serde(default = "default_smtp_timeout")]
    pub timeout: Duration,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: default_smtp_host(),
            port: default_smtp_port(),
            tls: default_smtp_tls(),
            username: None,
            password: None,
            pool_size: default_pool(),
            timeout: default_smtp_timeout(),
        }
    }
}

/// A digest schedule subscribers can choose: when it is sent and what goes
/// in it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestConfig {
    /// Identifier, e.g. `weekly`.
    pub name: String,
    /// What the subscribe form shows, e.g. "Every Monday morning".
    #[serde(default)]
    pub description: String,
    /// Cron expression with seconds (`0 0 8 * * Mon`), read in `timezone`.
    pub schedule: CronSchedule,
    /// Time zone of the schedule and of the dates in the email; defaults to
    /// `site.timezone`.
    #[serde(default)]
    pub timezone: Option<TimeZone>,
    /// Subject line, a Handlebars template (`{{site.title}}`, `{{count}}`,
    /// `{{first_title}}`, `{{more}}`, `{{date}}`).
    #[serde(default = "default_digest_subject")]
    pub subject: String,
    /// Most articles in one email (the newest).
    #[serde(default = "default_digest_max")]
    pub max_articles: usize,
    /// `summary` or `full` article text.
    #[serde(default = "default_digest_content")]
    pub content: FeedContent,
    /// Tag slugs this digest covers; empty means every article.
    #[serde(default)]
    pub tags: Vec<String>,
    /// A new subscriber's first digest also carries up to this many of the
    /// latest articles from before they confirmed (0: only newer ones).
    #[serde(default)]
    pub first_digest_articles: usize,
}

impl DigestConfig {
    /// The schedule's time zone.
    pub fn tz(&self, site: &SiteConfig) -> chrono_tz::Tz {
        self.timezone.as_ref().unwrap_or(&site.timezone).0
    }
}

/// DKIM signing of outgoing mail (RFC 6376).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimConfig {
    /// The `d=` domain, normally the domain of `mail.from`.
    pub domain: String,
    /// The `s=` selector: the key is published at
    /// `<selector>._domainkey.<domain>`.
    pub selector: String,
    /// `rsa` (PKCS#1 or PKCS#8 PEM) or `ed25519` (base64 of the 32-byte
    /// secret key).
    #[serde(default = "default_dkim_algorithm")]
    pub algorithm: DkimAlgorithm,
    /// File holding the private key, outside the repository. Or give the
    /// key itself in `HERALD_MAIL__DKIM__PRIVATE_KEY`.
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    #[serde(default)]
    pub private_key: Option<Secret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DkimAlgorithm {
    Rsa,
    Ed25519,
}

fn default_dkim_algorithm() -> DkimAlgorithm {
    DkimAlgorithm::Rsa
}
fn default_digest_subject() -> String {
    "{{site.title}}: {{first_title}}{{#if more}} and {{more}} more{{/if}}".into()
}
fn default_digest_max() -> usize {
    10
}
fn default_digest_content() -> FeedContent {
    FeedContent::Summary
}
fn default_rate_limit() -> f64 {
    0.0
}
fn default_max_attempts() -> u32 {
    8
}
fn default_retry_base() -> Duration {
    Duration(std::time::Duration::from_secs(30))
}
fn default_retry_max() -> Duration {
    Duration(std::time::Duration::from_secs(3600))
}
fn default_bounce_limit() -> u32 {
    2
}
fn default_batch_size() -> usize {
    64
}
fn default_poll() -> Duration {
    Duration(std::time::Duration::from_secs(5))
}

fn default_templates_dir() -> PathBuf {
    PathBuf::from("templates")
}
fn default_confirm_expiry() -> Duration {
    Duration(std::time::Duration::from_secs(48 * 3600))
}
fn default_pending_purge() -> Duration {
    Duration(std::time::Duration::from_secs(7 * 24 * 3600))
}
fn default_per_ip() -> u32 {
    10
}
fn default_resend() -> Duration {
    Duration(std::time::Duration::from_secs(600))
}
fn default_transport() -> MailTransportKind {
    MailTransportKind::Outbox
}
fn default_outbox() -> PathBuf {
    PathBuf::from("outbox")
}
fn default_from() -> String {
    "Herald <herald@localhost>".into()
}
fn default_smtp_host() -> String {
    "localhost".into()
}
fn default_smtp_port() -> u16 {
    587
}
fn default_smtp_tls() -> SmtpTls {
    SmtpTls::Starttls
}
fn default_pool() -> u32 {
    4
}
fn default_smtp_timeout() -> Duration {
    Duration(std::time::Duration::from_secs(30))
}

fn default_listen() -> std::net::SocketAddr {
    "127.0.0.1:8080".parse().expect("valid address")
}
fn default_cache_control() -> String {
    "public, max-age=300".into()
}
fn default_grace() -> Duration {
    Duration(std::time::Duration::from_secs(10))
}
fn default_request_timeout() -> Duration {
    Duration(std::time::Duration::from_secs(30))
}
fn default_rescan_schedule() -> CronSchedule {
    CronSchedule::from_str("0 */5 * * * *").expect("valid default schedule")
}
fn default_debounce() -> Duration {
    Duration(std::time::Duration::from_millis(300))
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_content_dir() -> PathBuf {
    PathBuf::from("content")
}
fn default_feeds_dir() -> PathBuf {
    PathBuf::from("feeds")
}
fn default_language() -> LanguageTag {
    LanguageTag("en".into())
}
fn default_max_file_size() -> ByteSize {
    ByteSize(10 * 1024 * 1024)
}
fn default_article_url() -> UrlPattern {
    UrlPattern::from_str("/{year}/{month}/{day}/{slug}/").expect("default pattern is valid")
}
fn default_limit() -> usize {
    50
}
fn default_feed_content() -> FeedContent {
    FeedContent::Full
}
fn default_formats() -> Vec<FeedFormat> {
    FeedFormat::ALL.to_vec()
}
fn default_true() -> bool {
    true
}

impl Config {
    /// Reads the file and applies overrides from the process environment.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut config = Config::parse_with_env(&text, std::env::vars())
            .with_context(|| format!("invalid config file {}", path.display()))?;
        // Relative directories are relative to the directory herald runs in,
        // as the sample config documents; nothing to resolve here.
        config.normalize();
        Ok(config)
    }

    /// Parses config text alone, without looking at the environment.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        Config::parse_with_env(text, std::iter::empty())
    }

    /// Parses config text, then applies `HERALD_SECTION__KEY=value`
    /// overrides from `env`.
    pub fn parse_with_env(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("{}", e.to_string().trim_end()))?;
        let mut overrides: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !RESERVED_ENV.contains(&k.as_str()))
            .collect();
        overrides.sort();
        for (var, value) in overrides {
            apply_override(&mut table, &var, &value)?;
        }
        let de = toml::Value::Table(table);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            anyhow::anyhow!("config key `{path}`: {}", e.into_inner())
        })?;
        config.validate()?;
        Ok(config)
    }

    fn normalize(&mut self) {
        self.feeds.formats.sort();
        self.feeds.formats.dedup();
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.site.title.trim().is_empty() {
            bail!("config key `site.title`: must not be empty");
        }
        if self.site.author.name.trim().is_empty() {
            bail!("config key `site.author.name`: must not be empty");
        }
        if let Some(email) = &self.site.author.email {
            if crate::base::SubscriberEmail::parse(email).is_err() {
                bail!("config key `site.author.email`: `{email}` is not an email address");
            }
        }
        if self.feeds.formats.is_empty() {
            bail!("config key `feeds.formats`: name at least one of \"rss\", \"atom\", \"json\"");
        }
        if self.server.cache_control.is_empty()
            || self
                .server
                .cache_control
                .chars()
                .any(|c| c.is_control() || !c.is_ascii())
        {
            bail!("config key `server.cache_control`: must be a non-empty header value of printable ASCII");
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, d) in self.digest.iter().enumerate() {
            if d.name.is_empty()
                || !d
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                bail!(
                    "config key `digest[{i}].name`: `{}` must be letters, digits, `-` or `_`",
                    d.name
                );
            }
            if !names.insert(d.name.as_str()) {
                bail!("config key `digest[{i}].name`: `{}` is used twice", d.name);
            }
            if d.max_articles == 0 {
                bail!("config key `digest[{i}].max_articles`: must be at least 1");
            }
            if d.subject.chars().any(char::is_control) {
                bail!("config key `digest[{i}].subject`: must be one line");
            }
            if let Some(tag) = d.tags.iter().find(|t| crate::base::text::slugify(t) != **t) {
                bail!("config key `digest[{i}].tags`: `{tag}` is not a tag slug (lower-case, `-` between words)");
            }
        }
        let m = &self.mail;
        if !(m.rate_limit >= 0.0 && m.rate_limit.is_finite()) {
            bail!("config key `mail.rate_limit`: must be 0 (no limit) or a positive number of messages per second");
        }
        if m.max_attempts == 0 {
            bail!("config key `mail.max_attempts`: must be at least 1");
        }
        if m.bounce_limit == 0 {
            bail!("config key `mail.bounce_limit`: must be at least 1");
        }
        if !(1..=10_000).contains(&m.batch_size) {
            bail!("config key `mail.batch_size`: must be between 1 and 10000");
        }
        if m.queue_poll.0.is_zero() {
            bail!("config key `mail.queue_poll`: must be longer than 0");
        }
        if let Some(addr) = &m.unsubscribe_mailto {
            if crate::base::SubscriberEmail::parse(addr).is_err() {
                bail!("config key `mail.unsubscribe_mailto`: `{addr}` is not an email address");
            }
        }
        if m.postal_address
            .chars()
            .any(|c| c.is_control() && c != '\n')
        {
            bail!("config key `mail.postal_address`: only line breaks may separate its lines");
        }
        if self.mail.from.parse::<lettre::message::Mailbox>().is_err() {
            bail!(
                "config key `mail.from`: `{}` is not an address like `Name <name@example.org>`",
                self.mail.from
            );
        }
        if self.content.max_file_size.0 == 0 {
            bail!("config key `content.max_file_size`: must be larger than 0");
        }
        Ok(())
    }

    /// The SQLite database of subscribers.
    pub fn database_path(&self) -> PathBuf {
        self.subscribers
            .database
            .clone()
            .unwrap_or_else(|| self.data_dir.join("herald.sqlite3"))
    }

    /// Where the feeds are served from; their `rel=self` links start here.
    pub fn feeds_base_url(&self) -> &Url {
        self.feeds
            .base_url
            .as_ref()
            .map(|u| &u.0)
            .unwrap_or(&self.site.base_url.0)
    }

    /// One of herald's public pages (`/subscribe`, `/confirm`, …) at the
    /// root of the feeds' origin, with an optional token.
    pub fn page_url(&self, page: &str, token: Option<&str>) -> Url {
        let mut url = self
            .feeds_base_url()
            .join(&format!("/{page}"))
            .expect("a page name is a valid path");
        if let Some(t) = token {
            url.query_pairs_mut().append_pair("token", t);
        }
        url
    }

    /// The formats to write, in a fixed order.
    pub fn formats(&self) -> Vec<FeedFormat> {
        let mut f = self.feeds.formats.clone();
        f.sort();
        f.dedup();
        f
    }
}

/// `HERALD_FEEDS__LIMIT=20` sets `feeds.limit`: strip the prefix, split on
/// `__`, lower-case. The value is read as a TOML value (number, boolean,
/// array) when it parses as one and the file does not already hold a string
/// there; otherwise it is a string.
fn apply_override(table: &mut toml::Table, var: &str, raw: &str) -> anyhow::Result<()> {
    let key_path: Vec<String> = var[ENV_PREFIX.len()..]
        .split("__")
        .map(|s| s.to_ascii_lowercase())
        .collect();
    if key_path.iter().any(|s| s.is_empty()) {
        bail!("environment variable {var}: malformed override name (use HERALD_SECTION__KEY)");
    }
    let dotted = key_path.join(".");
    let (last, parents) = key_path.split_last().expect("non-empty");
    let mut current = table;
    for part in parents {
        let entry = current
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(t) => t,
            _ => bail!("environment variable {var}: config key `{dotted}` is not inside a table"),
        };
    }
    let existing_is_string = matches!(current.get(last), Some(toml::Value::String(_)));
    let value = if existing_is_string {
        toml::Value::String(raw.to_string())
    } else {
        parse_env_value(raw)
    };
    current.insert(last.clone(), value);
    Ok(())
}

fn parse_env_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const MINIMAL: &str = r#"
[site]
title = "T"
base_url = "https://example.org/blog"
author = { name = "A" }
"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::parse(MINIMAL).unwrap();
        assert_eq!(c.site.base_url.0.as_str(), "https://example.org/blog/");
        assert_eq!(c.feeds.limit, 50);
        assert_eq!(c.content.max_file_size.0, 10 * 1024 * 1024);
        assert_eq!(c.feeds_base_url().as_str(), "https://example.org/blog/");
    }

    #[test]
    fn unknown_key_is_named() {
        let text = format!("{MINIMAL}\n[feeds]\nlimmit = 3\n");
        let err = format!("{:#}", Config::parse(&text).unwrap_err());
        assert!(err.contains("limmit"), "{err}");
    }

    #[test]
    fn bad_value_names_the_key() {
        let text = MINIMAL.replace("https://example.org/blog", "example.org");
        let err = format!("{:#}", Config::parse(&text).unwrap_err());
        assert!(err.contains("site.base_url"), "{err}");
        let text = format!("{MINIMAL}\n[content]\nmax_file_size = \"ten\"\n");
        let err = format!("{:#}", Config::parse(&text).unwrap_err());
        assert!(err.contains("content.max_file_size"), "{err}");
    }

    #[test]
    fn env_overrides_any_key_and_names_unknown_ones() {
        let env = vec![
            ("HERALD_FEEDS__LIMIT".to_string(), "7".to_string()),
            ("HERALD_SITE__TITLE".to_string(), "2024".to_string()),
            (
                "HERALD_FEEDS__FORMATS".to_string(),
                "[\"atom\"]".to_string(),
            ),
            ("HERALD_CONFIG".to_string(), "ignored.toml".to_string()),
        ];
        let c = Config::parse_with_env(MINIMAL, env).unwrap();
        assert_eq!(c.feeds.limit, 7);
        assert_eq!(c.site.title, "2024");
        assert_eq!(c.feeds.formats, vec![FeedFormat::Atom]);

        let env = vec![("HERALD_FEEDS__LIMMIT".to_string(), "7".to_string())];
        let err = format!("{:#}", Config::parse_with_env(MINIMAL, env).unwrap_err());
        assert!(err.contains("limmit"), "{err}");
    }

    #[test]
    fn daemon_sections_parse_and_name_bad_values() {
        let text = format!(
            "{MINIMAL}\n[server]\nlisten = \"0.0.0.0:9000\"\nshutdown_grace = \"3s\"\n[rescan]\nschedule = \"*/10 * * * * *\"\ndebounce = \"50ms\"\n[websub]\nhubs = [\"https://hub.example/\"]\n"
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.server.listen.port(), 9000);
        assert_eq!(c.server.shutdown_grace.0, std::time::Duration::from_secs(3));
        assert_eq!(c.rescan.debounce.0, std::time::Duration::from_millis(50));
        assert_eq!(c.websub.hubs.len(), 1);
        let bad = text.replace("*/10 * * * * *", "every minute");
        let err = format!("{:#}", Config::parse(&bad).unwrap_err());
        assert!(err.contains("rescan.schedule"), "{err}");
        let bad = text.replace("\"3s\"", "\"3\"");
        let err = format!("{:#}", Config::parse(&bad).unwrap_err());
        assert!(err.contains("server.shutdown_grace"), "{err}");
    }

    #[test]
    fn sizes_and_patterns_parse() {
        assert_eq!("10 MiB".parse::<ByteSize>().unwrap().0, 10 << 20);
        assert_eq!("512kb".parse::<ByteSize>().unwrap().0, 512_000);
        assert!("12 parsecs".parse::<ByteSize>().is_err());
        assert!("/{year}/{title}/".parse::<UrlPattern>().is_err());
        assert!("/posts/".parse::<UrlPattern>().is_err());
        let p: UrlPattern = "/{section}/{year}/{slug}/".parse().unwrap();
        let vars = BTreeMap::from([("section", ""), ("year", "2024"), ("slug", "a")]);
        assert_eq!(p.expand(&vars), "2024/a/");
    }
}
