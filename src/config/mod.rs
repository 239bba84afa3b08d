//! Configuration: `config/herald.toml` parsed into typed structs, with
//! `HERALD_…` environment variables overriding any key.
//!
//! Every section denies unknown keys, and every error names the key it is
//! about (`site.base_url: …`), whether the value came from the file or from
//! the environment. Values are turned into types at this edge (URLs, time
//! zones, sizes), so the rest of herald never re-validates them.
//!
//! - [`sections`]: one struct per section, each with its defaults;
//! - [`values`]: the value types (URLs, durations, sizes, cron, …);
//! - `env`: the environment overrides; `validate`: checks across keys.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
use url::Url;

pub use crate::base::FeedFormat;

mod content;
mod cron;
mod deliverability;
mod env;
mod error;
mod net;
mod sections;
mod validate;
mod values;

pub use content::{
    FeedSection, FieldsConfig, FileNames, SectionFeeds, SectionsFrom, TemplateTags, Undated,
};
pub use cron::CronSchedule;
pub use deliverability::{
    read_secret, BouncesConfig, MailgunWebhook, PostmarkWebhook, SendgridWebhook, SesWebhook,
    WebhooksConfig, ANNOUNCEMENTS,
};
pub use error::{env_var_for, ConfigError, Origins, SECRET_KEYS};
pub use net::{canonical, Cidr, ClientIpHeader, ConnectionLimit};
pub use sections::{
    ContentConfig, DigestConfig, DkimAlgorithm, DkimConfig, FeedContent, FeedsConfig, MailConfig,
    MailTransportKind, Person, RescanConfig, ServerConfig, SiteConfig, SmtpConfig, SmtpTls,
    SubscribersConfig, WebSubConfig,
};
pub use values::{
    BaseUrl, BaseUrlLike, ByteSize, DatabaseLocation, Duration, LanguageTag, Secret, Sender,
    TimeZone, UrlPattern,
};

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
    #[serde(default)]
    pub bounces: BouncesConfig,
    #[serde(default)]
    pub webhooks: WebhooksConfig,
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
    /// The keys the environment set, so that later checks name the
    /// variable rather than the file.
    #[serde(skip)]
    pub origins: Origins,
}

fn default_templates_dir() -> PathBuf {
    PathBuf::from("templates")
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

impl Config {
    /// Reads the file and applies overrides from the process environment.
    /// An error about the file names it; one about a `HERALD_…` variable
    /// names the variable only.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut config = match Config::parse_with_env(&text, std::env::vars()) {
            Ok(config) => config,
            Err(e) if e.is_about_the_file() => {
                return Err(anyhow::Error::new(e)
                    .context(format!("invalid config file {}", path.display())))
            }
            Err(e) => return Err(e.into()),
        };
        // Relative directories are relative to the directory herald runs in,
        // as the sample config documents; nothing to resolve here.
        config.normalize();
        Ok(config)
    }

    /// Parses config text alone, without looking at the environment.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse_with_env(text, std::iter::empty())
    }

    /// Parses config text, then applies `HERALD_SECTION__KEY=value`
    /// overrides from `env`. Secrets written into the text are refused.
    pub fn parse_with_env(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let file: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Syntax(e.to_string().trim_end().into()))?;
        error::refuse_secrets_in_file(&file)?;
        let overrides = env::overrides(env)?;
        let mut config: Config = env::deserialize(&file, &overrides)?;
        config.origins = Origins(env::origins(&overrides));
        config.validate()?;
        Ok(config)
    }

    fn normalize(&mut self) {
        self.feeds.formats.sort();
        self.feeds.formats.dedup();
    }

    /// Where subscribers and the ledger live.
    pub fn database(&self) -> DatabaseLocation {
        self.subscribers
            .database
            .clone()
            .unwrap_or_else(|| DatabaseLocation::Sqlite(self.data_dir.join("herald.sqlite3")))
    }

    /// The SQLite file, when the database is one (the default is
    /// `<data_dir>/herald.sqlite3`, which is also what a PostgreSQL setup
    /// would have used).
    pub fn database_path(&self) -> PathBuf {
        match self.database() {
            DatabaseLocation::Sqlite(p) => p,
            DatabaseLocation::Postgres(_) => self.data_dir.join("herald.sqlite3"),
        }
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

    /// The archive of `schedule` (`/archive/<schedule>/`), or one page of
    /// it, at the root of the feeds' origin.
    pub fn archive_url(&self, schedule: &str, slug: Option<&str>) -> Url {
        let path = match slug {
            Some(slug) => format!("/archive/{schedule}/{slug}/"),
            None => format!("/archive/{schedule}/"),
        };
        self.feeds_base_url()
            .join(&path)
            .expect("schedule names and slugs are URL-safe")
    }

    /// The file name of `format` in every feed folder.
    pub fn feed_file_name(&self, format: FeedFormat) -> &str {
        self.feeds.file_names.get(format)
    }

    /// The formats to write, in a fixed order.
    pub fn formats(&self) -> Vec<FeedFormat> {
        let mut f = self.feeds.formats.clone();
        f.sort();
        f.dedup();
        f
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    pub(crate) const MINIMAL: &str = r#"
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
        assert!("/{year}/{titel}/".parse::<UrlPattern>().is_err());
        assert!("/posts/".parse::<UrlPattern>().is_err());
        let date: UrlPattern = "date".parse().unwrap();
        let vars = BTreeMap::from([
            ("categories", "release"),
            ("year", "2013"),
            ("month", "05"),
            ("day", "06"),
            ("slug", "jekyll-1-0-0-released"),
        ]);
        assert_eq!(
            date.expand(&vars),
            "release/2013/05/06/jekyll-1-0-0-released.html"
        );
        let colon: UrlPattern = "/:categories/:year/:i_month/:title/".parse().unwrap();
        assert_eq!(
            colon,
            "/{categories}/{year}/{i_month}/{slug}/".parse().unwrap()
        );
        let p: UrlPattern = "/{section}/{year}/{slug}/".parse().unwrap();
        let vars = BTreeMap::from([("section", ""), ("year", "2024"), ("slug", "a")]);
        assert_eq!(p.expand(&vars), "2024/a/");
    }
}
