//! Checks that span keys or sections, run after every key has parsed into
//! its type: names unique, numbers in range, addresses well formed.

use super::{Config, ConfigError};
use crate::base::text::slugify;
use crate::base::SubscriberEmail;

/// Returns the error about `key` (naming its `HERALD_…` variable when the
/// environment set it).
macro_rules! fail {
    ($config:expr, $key:expr, $($message:tt)*) => {
        return Err($config.origins.error(&$key, format!($($message)*)))
    };
}

impl Config {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.site.title.trim().is_empty() {
            fail!(self, "site.title", "must not be empty");
        }
        if self.site.author.name.trim().is_empty() {
            fail!(self, "site.author.name", "must not be empty");
        }
        if let Some(email) = &self.site.author.email {
            if SubscriberEmail::parse(email).is_err() {
                fail!(
                    self,
                    "site.author.email",
                    "`{email}` is not an email address"
                );
            }
        }
        if self.feeds.formats.is_empty() {
            fail!(
                self,
                "feeds.formats",
                "name at least one of \"rss\", \"atom\", \"json\""
            );
        }
        if self.server.cache_control.is_empty()
            || self
                .server
                .cache_control
                .chars()
                .any(|c| c.is_control() || !c.is_ascii())
        {
            fail!(
                self,
                "server.cache_control",
                "must be a non-empty header value of printable ASCII"
            );
        }
        if let Some(address) = &self.mail.bounce_address {
            let plain = SubscriberEmail::parse(address)
                .is_ok_and(|e| e.as_str().is_ascii() && !e.as_str().contains('+'));
            if !plain {
                fail!(
                    self,
                    "mail.bounce_address",
                    "`{address}` must be a plain ASCII address without `+` (herald adds `+<token>`)"
                );
            }
        }
        if let Some(key) = &self.webhooks.sendgrid.public_key {
            use base64::Engine as _;
            if base64::engine::general_purpose::STANDARD
                .decode(key.trim())
                .is_err()
            {
                fail!(
                    self,
                    "webhooks.sendgrid.public_key",
                    "is not base64 (copy the verification key SendGrid shows)"
                );
            }
        }
        let server = &self.server;
        for (key, value) in [
            ("server.request_timeout", server.request_timeout),
            ("server.header_read_timeout", server.header_read_timeout),
            ("server.keepalive_timeout", server.keepalive_timeout),
        ] {
            if value.0.is_zero() {
                fail!(self, key, "must be longer than 0");
            }
        }
        if server.metrics_listen == Some(server.listen) {
            fail!(
                self,
                "server.metrics_listen",
                "is `server.listen`; leave it out to serve /metrics there"
            );
        }
        if server.metrics_token.is_some() && server.metrics_token_file.is_some() {
            fail!(
                self,
                "server.metrics_token",
                "`server.metrics_token_file` is set too; keep one"
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, d) in self.digest.iter().enumerate() {
            if d.name.is_empty()
                || !d
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                fail!(
                    self,
                    format!("digest[{i}].name"),
                    "`{}` must be letters, digits, `-` or `_`",
                    d.name
                );
            }
            if d.name == super::ANNOUNCEMENTS {
                fail!(
                    self,
                    format!("digest[{i}].name"),
                    "`{}` is the name of the announcements' archive; choose another",
                    d.name
                );
            }
            if !names.insert(d.name.as_str()) {
                fail!(
                    self,
                    format!("digest[{i}].name"),
                    "`{}` is used twice",
                    d.name
                );
            }
            if d.max_articles == 0 {
                fail!(
                    self,
                    format!("digest[{i}].max_articles"),
                    "must be at least 1"
                );
            }
            if d.subject.chars().any(char::is_control) {
                fail!(self, format!("digest[{i}].subject"), "must be one line");
            }
            if let Some(tag) = d.tags.iter().find(|t| slugify(t) != **t) {
                fail!(
                    self,
                    format!("digest[{i}].tags"),
                    "`{tag}` is not a tag slug (lower-case, `-` between words)"
                );
            }
        }
        let m = &self.mail;
        // Bounded both ways: the wait between two messages, 1 / rate, must
        // be a time a timer can hold.
        if !(m.rate_limit == 0.0 || (0.001..=1_000_000.0).contains(&m.rate_limit)) {
            fail!(
                self,
                "mail.rate_limit",
                "must be 0 (no limit) or between 0.001 and 1000000 messages per second"
            );
        }
        if m.max_attempts == 0 {
            fail!(self, "mail.max_attempts", "must be at least 1");
        }
        if m.bounce_limit == 0 {
            fail!(self, "mail.bounce_limit", "must be at least 1");
        }
        if !(1..=10_000).contains(&m.batch_size) {
            fail!(self, "mail.batch_size", "must be between 1 and 10000");
        }
        if m.queue_poll.0.is_zero() {
            fail!(self, "mail.queue_poll", "must be longer than 0");
        }
        if let Some(addr) = &m.unsubscribe_mailto {
            if SubscriberEmail::parse(addr).is_err() {
                fail!(
                    self,
                    "mail.unsubscribe_mailto",
                    "`{addr}` is not an email address"
                );
            }
        }
        if m.postal_address
            .chars()
            .any(|c| c.is_control() && c != '\n')
        {
            fail!(
                self,
                "mail.postal_address",
                "only line breaks may separate its lines"
            );
        }
        let s = &self.subscribers;
        if !(1..=1000).contains(&s.database_pool_size) {
            fail!(
                self,
                "subscribers.database_pool_size",
                "must be between 1 and 1000"
            );
        }
        if s.database_statement_timeout.0.is_zero() {
            fail!(
                self,
                "subscribers.database_statement_timeout",
                "must be longer than 0"
            );
        }
        if s.database_connect_timeout.0.is_zero() {
            fail!(
                self,
                "subscribers.database_connect_timeout",
                "must be longer than 0"
            );
        }
        if m.claim_lease.0 < std::time::Duration::from_secs(1) {
            fail!(self, "mail.claim_lease", "must be at least 1s");
        }
        if self.content.max_file_size.0 == 0 {
            fail!(self, "content.max_file_size", "must be larger than 0");
        }
        self.validate_content()
    }

    /// The content-side keys: patterns, extensions, sections, file names.
    fn validate_content(&self) -> Result<(), ConfigError> {
        let c = &self.content;
        for (key, lines) in [
            ("content.include", &c.include),
            ("content.exclude", &c.exclude),
        ] {
            let mut b = ignore::gitignore::GitignoreBuilder::new(&c.dir);
            for l in lines.iter() {
                if let Err(e) = b.add_line(None, l) {
                    fail!(self, key, "`{l}` is not a valid pattern ({e})");
                }
            }
        }
        for (key, exts) in [
            ("content.markdown_extensions", &c.markdown_extensions),
            ("content.text_extensions", &c.text_extensions),
        ] {
            if let Some(e) = exts
                .iter()
                .find(|e| e.trim_start_matches('.').is_empty() || e.contains(['/', '*']))
            {
                fail!(self, key, "`{e}` is not a file extension like \"md\"");
            }
        }
        let f = &self.feeds;
        let names = [&f.file_names.rss, &f.file_names.atom, &f.file_names.json];
        for n in names {
            if n.is_empty() || n.starts_with('.') || n.contains(['/', '\\', '?', '#', '%']) {
                fail!(
                    self,
                    "feeds.file_names",
                    "`{n}` must be a plain file name like \"feed.xml\""
                );
            }
        }
        if names[0] == names[1] || names[0] == names[2] || names[1] == names[2] {
            fail!(
                self,
                "feeds.file_names",
                "each format needs a file name of its own"
            );
        }
        let paths = f
            .site_sections
            .iter()
            .map(|p| ("feeds.site_sections", p))
            .chain(f.section.iter().map(|s| ("feeds.section.path", &s.path)));
        for (key, p) in paths {
            let t = p.trim_matches('/');
            if t.split('/').any(|seg| seg == ".." || seg == ".")
                || p.contains(['\\', '?', '#'])
                || (key == "feeds.section.path" && t.is_empty())
            {
                fail!(
                    self,
                    key,
                    "`{p}` must be a folder under the content directory"
                );
            }
            if key == "feeds.section.path" && f.tag_feeds && t == "tags" {
                fail!(
                    self,
                    key,
                    "`tags/` holds the tag feeds; name the section otherwise"
                );
            }
        }
        Ok(())
    }
}
