//! The sections of `herald.toml`, one struct each. Every section denies
//! unknown keys; a section whose keys all have defaults takes them from its
//! one `impl Default` (`#[serde(default)]` on the struct), so each default
//! is written once.

use std::path::PathBuf;
use std::str::FromStr;

use serde::Deserialize;

use super::content::{
    FeedSection, FieldsConfig, FileNames, SectionFeeds, SectionsFrom, TemplateTags, Undated,
};
use super::cron::CronSchedule;
use super::net::{Cidr, ClientIpHeader, ConnectionLimit};
use super::values::{
    BaseUrl, BaseUrlLike, ByteSize, DatabaseLocation, Duration, LanguageTag, Secret, Sender,
    TimeZone, UrlPattern,
};
use crate::base::FeedFormat;

fn secs(s: u64) -> Duration {
    Duration(std::time::Duration::from_secs(s))
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
    #[serde(default)]
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
#[serde(default, deny_unknown_fields)]
pub struct ContentConfig {
    pub dir: PathBuf,
    /// Files larger than this are rejected rather than read.
    pub max_file_size: ByteSize,
    /// Path of an article under `site.base_url`, used when its front matter
    /// gives neither `url` nor `path`: a pattern or a Jekyll preset name.
    pub article_url: UrlPattern,
    /// Gitignore-style patterns: when any is given, only files matching one
    /// are articles.
    pub include: Vec<String>,
    /// Gitignore-style patterns of files and folders that are not articles.
    pub exclude: Vec<String>,
    /// File extensions read as Markdown with front matter.
    pub markdown_extensions: Vec<String>,
    /// File extensions read as plain-text articles (title line, blank line,
    /// text).
    pub text_extensions: Vec<String>,
    /// What happens to a file that is an article in every way but has no
    /// date: published with the date herald first saw it, or skipped.
    pub undated: Undated,
    /// Front-matter keys read for each field.
    pub fields: FieldsConfig,
    /// Which template tags in bodies are run (links, site variables) or
    /// removed: `auto`, `liquid`, `hugo`, `zola` or `none`.
    pub template_tags: TemplateTags,
    /// Values for `{{ site.<name> }}` (Jekyll) and `{{< param <name> >}}`
    /// (Hugo) in article bodies.
    pub variables: std::collections::BTreeMap<String, String>,
}

impl Default for ContentConfig {
    fn default() -> Self {
        ContentConfig {
            dir: PathBuf::from("content"),
            max_file_size: ByteSize(10 * 1024 * 1024),
            article_url: UrlPattern::from_str("/{year}/{month}/{day}/{slug}/")
                .expect("default pattern is valid"),
            include: Vec::new(),
            exclude: [
                "README",
                "README.*",
                "LICENSE",
                "LICENSE.*",
                "LICENSE-MIT*",
                "LICENSE-APACHE*",
                "LICENCE",
                "LICENCE.*",
                "COPYING",
                "COPYING.*",
                "COPYRIGHT",
                "COPYRIGHT.*",
                "CHANGELOG",
                "CHANGELOG.*",
                "CONTRIBUTING.*",
                "CODE_OF_CONDUCT.*",
                "SECURITY.md",
                "AUTHORS",
                "AUTHORS.*",
                "NOTICE",
                "NOTICE.*",
                "PATENTS",
                "PATENTS.*",
                "/index.*",
                "node_modules/",
                "_site/",
                "_layouts/",
                "_includes/",
                "_data/",
            ]
            .map(String::from)
            .to_vec(),
            markdown_extensions: vec!["md".into(), "markdown".into()],
            text_extensions: vec!["txt".into()],
            undated: Undated::Publish,
            fields: FieldsConfig::default(),
            template_tags: TemplateTags::Auto,
            variables: Default::default(),
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
#[serde(default, deny_unknown_fields)]
pub struct FeedsConfig {
    /// Output directory for the generated feeds.
    pub dir: PathBuf,
    /// Public address the feeds are served at (their `rel=self` links).
    /// Defaults to `site.base_url`.
    pub base_url: Option<BaseUrl>,
    /// Entries in each site-wide feed; 0 means every article.
    pub limit: usize,
    /// Entries in each per-tag feed; 0 means every article with the tag.
    pub tag_limit: usize,
    pub content: FeedContent,
    pub formats: Vec<FeedFormat>,
    /// Write a feed per tag under `tags/<tag>/`.
    pub tag_feeds: bool,
    /// File name of each format in every feed folder.
    pub file_names: FileNames,
    /// Sections whose articles the site-wide feeds hold: empty for every
    /// article, `"/"` for articles in no section (Zola's root feed).
    pub site_sections: Vec<String>,
    /// Where sections come from besides `[[feeds.section]]`.
    pub sections_from: SectionsFrom,
    /// Which sections get feeds at `<section>/<file name>`.
    pub section_feeds: SectionFeeds,
    /// Entries in each section feed; 0 means every article of the section.
    pub section_limit: usize,
    /// Sections given in config (`[[feeds.section]]`).
    pub section: Vec<FeedSection>,
}

impl Default for FeedsConfig {
    fn default() -> Self {
        FeedsConfig {
            dir: PathBuf::from("feeds"),
            base_url: None,
            limit: 50,
            tag_limit: 50,
            content: FeedContent::Full,
            formats: FeedFormat::ALL.to_vec(),
            tag_feeds: true,
            file_names: FileNames::default(),
            site_sections: Vec::new(),
            sections_from: SectionsFrom::Index,
            section_feeds: SectionFeeds::Declared,
            section_limit: 50,
            section: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port `herald run` listens on.
    pub listen: std::net::SocketAddr,
    /// `Cache-Control` sent with every feed.
    pub cache_control: String,
    /// On SIGTERM or SIGINT, the whole stop (HTTP drained, the rebuild and
    /// the digest batch finished or recorded, connections closed) fits in
    /// this; herald then exits 0 anyway. Below a container's kill timeout.
    pub shutdown_grace: Duration,
    /// Longest time one request may take once its head has arrived.
    pub request_timeout: Duration,
    /// A request head must arrive whole within this: from the connection's
    /// start for its first request, from the first byte for later ones.
    pub header_read_timeout: Duration,
    /// A connection with no request in progress and no bytes moving is
    /// closed after this (longer than a reverse proxy keeps its idle
    /// upstream connections, so that the proxy closes first).
    pub keepalive_timeout: Duration,
    /// Connections served at once: `"auto"` (from the open-file limit) or
    /// a number. At the cap, the connection idle the longest makes room.
    pub max_connections: ConnectionLimit,
    /// Reverse proxies (CIDR networks or addresses) whose word on the
    /// client's address is taken, from `client_ip_header`.
    pub trusted_proxies: Vec<Cidr>,
    /// The header trusted proxies name the client in.
    pub client_ip_header: ClientIpHeader,
    /// Serve `/metrics` on this address instead of `listen`.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// A bearer token `/metrics` asks for. Only from the environment
    /// (`HERALD_SERVER__METRICS_TOKEN`) or `metrics_token_file`.
    pub metrics_token: Option<Secret>,
    pub metrics_token_file: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            cache_control: "public, max-age=300".into(),
            shutdown_grace: secs(8),
            request_timeout: secs(30),
            header_read_timeout: secs(10),
            keepalive_timeout: secs(75),
            max_connections: ConnectionLimit::Auto,
            trusted_proxies: Vec::new(),
            client_ip_header: ClientIpHeader::XForwardedFor,
            metrics_listen: None,
            metrics_token: None,
            metrics_token_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RescanConfig {
    /// Cron expression with seconds (`sec min hour day month weekday`) for
    /// the scheduled rescan, the safety net behind file watching.
    pub schedule: CronSchedule,
    /// Rebuild as soon as files in the content directory change.
    pub watch: bool,
    /// Quiet time after the last file change before rebuilding.
    pub debounce: Duration,
}

impl Default for RescanConfig {
    fn default() -> Self {
        RescanConfig {
            schedule: CronSchedule::from_str("0 */5 * * * *").expect("valid default schedule"),
            watch: true,
            debounce: Duration(std::time::Duration::from_millis(300)),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSubConfig {
    /// WebSub hubs to advertise (`rel="hub"`) and notify after each change.
    pub hubs: Vec<BaseUrlLike>,
    /// PEM file of CA certificates trusted for hubs besides the system's.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubscribersConfig {
    /// SQLite file (a path or `sqlite:path`; default
    /// `<data_dir>/herald.sqlite3`) or a PostgreSQL URL without password.
    pub database: Option<DatabaseLocation>,
    /// The PostgreSQL password: only from the environment
    /// (`HERALD_SUBSCRIBERS__DATABASE_PASSWORD`) or `database_password_file`.
    pub database_password: Option<Secret>,
    pub database_password_file: Option<PathBuf>,
    /// Connections each herald process keeps to the database.
    pub database_pool_size: u32,
    /// Longest a PostgreSQL statement may run before it is cancelled (and
    /// the caller told the database is unavailable).
    pub database_statement_timeout: Duration,
    /// Longest wait for a connection (at start, and from the pool).
    pub database_connect_timeout: Duration,
    /// Apply pending migrations when herald opens the database; when false
    /// only `herald db migrate` does, and herald refuses an older schema.
    pub database_migrate: bool,
    /// Secret that signs confirmation and unsubscribe links. Give it only
    /// through the environment (`HERALD_SUBSCRIBERS__SECRET`) or
    /// `secret_file`; without either herald creates one in `data_dir`.
    pub secret: Option<Secret>,
    pub secret_file: Option<PathBuf>,
    /// How long a confirmation link stays valid.
    pub confirm_expiry: Duration,
    /// Pending subscribers who never confirm are removed after this (their
    /// attempt stays in the consent log).
    pub pending_purge_after: Duration,
    /// Subscription requests accepted per client IP per hour.
    pub max_requests_per_ip_per_hour: u32,
    /// Least time between two confirmation emails to one address.
    pub resend_after: Duration,
    /// Tags offered as filters on the subscribe form.
    pub tags: Vec<String>,
    /// Client IPs in consent records are cleared once they are this old.
    pub ip_retention: Duration,
}

impl Default for SubscribersConfig {
    fn default() -> Self {
        SubscribersConfig {
            database: None,
            database_password: None,
            database_password_file: None,
            database_pool_size: 8,
            database_statement_timeout: secs(30),
            database_connect_timeout: secs(10),
            database_migrate: true,
            secret: None,
            secret_file: None,
            confirm_expiry: secs(48 * 3600),
            pending_purge_after: secs(7 * 24 * 3600),
            max_requests_per_ip_per_hour: 10,
            resend_after: secs(600),
            tags: Vec::new(),
            ip_retention: secs(90 * 24 * 3600),
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
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    pub transport: MailTransportKind,
    pub outbox_dir: PathBuf,
    /// Sender of every message, `Name <address>`.
    pub from: Sender,
    pub smtp: SmtpConfig,
    /// The sender's postal address, printed in every digest's footer (the
    /// law in many countries requires it). One line per `\n`.
    pub postal_address: String,
    /// An address that unsubscribes by mail: `List-Unsubscribe` then also
    /// carries `mailto:<address>?subject=unsubscribe%20<token>`.
    pub unsubscribe_mailto: Option<String>,
    /// Messages per second at most (0: as fast as the pool goes).
    pub rate_limit: f64,
    /// Tries per message before a temporary failure counts as failed.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled per attempt, with jitter.
    pub retry_base: Duration,
    /// Longest wait between retries.
    pub retry_max: Duration,
    /// Hard bounces (5xx for the recipient, or a late bounce report) after
    /// which a subscriber is marked `bounced` and gets no more mail.
    pub bounce_limit: u32,
    /// The envelope sender of digests and announcements, where bounce
    /// reports go: `bounces@example.org` is sent as
    /// `bounces+<signed token>@example.org`, which names the delivery.
    /// Unset: the address of `from`, without a token.
    pub bounce_address: Option<String>,
    /// Deliveries taken from the ledger (and marked `sending`) at a time;
    /// a crash leaves at most two batches uncertain.
    pub batch_size: usize,
    /// How often the daemon looks in the ledger for digests queued by
    /// `herald digest send|retry` from the command line.
    pub queue_poll: Duration,
    /// How long a replica's claim on a batch lasts unless renewed: a
    /// replica that dies leaves its batches `sending` this long before
    /// they turn `uncertain`.
    pub claim_lease: Duration,
    pub dkim: Option<DkimConfig>,
    /// The SMTP server accepts SMTPUTF8 (RFC 6531): addresses with letters
    /// other than ASCII before the @ (`jörg@example.org`) are accepted at
    /// sign-up and import, and sent with SMTPUTF8. Off: they are refused
    /// with the reason. Internationalized domains work either way.
    pub smtputf8: bool,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            transport: MailTransportKind::Outbox,
            outbox_dir: PathBuf::from("outbox"),
            from: Sender::try_from("Herald <herald@localhost>".to_string())
                .expect("valid default sender"),
            smtp: SmtpConfig::default(),
            postal_address: String::new(),
            unsubscribe_mailto: None,
            rate_limit: 0.0,
            max_attempts: 8,
            retry_base: secs(30),
            retry_max: secs(3600),
            bounce_limit: 2,
            bounce_address: None,
            batch_size: 256,
            queue_poll: secs(5),
            claim_lease: secs(60),
            dkim: None,
            smtputf8: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    /// Only from the environment: `HERALD_MAIL__SMTP__PASSWORD`.
    pub password: Option<Secret>,
    /// Connections kept open to the server.
    pub pool_size: u32,
    pub timeout: Duration,
    /// PEM file of CA certificates trusted for the server besides the
    /// system's (a relay behind a company CA).
    pub ca_file: Option<PathBuf>,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: "localhost".into(),
            port: 587,
            tls: SmtpTls::Starttls,
            username: None,
            password: None,
            pool_size: 4,
            timeout: secs(30),
            ca_file: None,
        }
    }
}

/// A digest schedule subscribers can choose: when it is sent and what goes
/// in it. `name` and `schedule` are required, so this section has no
/// `Default`; its other keys default one by one.
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
    /// Tag slugs this digest covers; with `sections` empty too, every
    /// article.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Sections (folders, `"/"` for the root) this digest covers, besides
    /// the articles with one of `tags`.
    #[serde(default)]
    pub sections: Vec<String>,
    /// A new subscriber's first digest also carries up to this many of the
    /// latest articles from before they confirmed (0: only newer ones).
    #[serde(default)]
    pub first_digest_articles: usize,
    /// Publish each run that sent anything at `/archive/<name>/<date>/`,
    /// and link to it from the digest ("view in your browser").
    #[serde(default = "default_digest_archive")]
    pub archive: bool,
}

fn default_digest_archive() -> bool {
    true
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

impl DigestConfig {
    /// The schedule's time zone.
    pub fn tz(&self, site: &SiteConfig) -> chrono_tz::Tz {
        self.timezone.as_ref().unwrap_or(&site.timezone).0
    }

    /// When the schedule next fires strictly after `after`.
    pub fn next_due(
        &self,
        site: &SiteConfig,
        after: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        self.schedule.next_after(after, self.tz(site))
    }

    /// "`weekly` (0 0 8 * * Mon, Europe/London) is next due at …": for
    /// logs and `herald digest status`.
    pub fn describe_next(&self, site: &SiteConfig, after: chrono::DateTime<chrono::Utc>) -> String {
        let next = self
            .next_due(site, after)
            .map_or("never again".to_string(), |t| {
                format!("next due at {}", t.format("%Y-%m-%dT%H:%M:%SZ"))
            });
        format!(
            "digest `{}` ({}, {}) is {next}",
            self.name,
            self.schedule,
            self.tz(site)
        )
    }
}

/// DKIM signing of outgoing mail (RFC 6376). `domain` and `selector` are
/// required.
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
    #[serde(default)]
    pub algorithm: DkimAlgorithm,
    /// File holding the private key, outside the repository. Or give the
    /// key itself in `HERALD_MAIL__DKIM__PRIVATE_KEY`.
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    #[serde(default)]
    pub private_key: Option<Secret>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DkimAlgorithm {
    #[default]
    Rsa,
    Ed25519,
}
