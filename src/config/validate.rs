//! Checks that span keys or sections, run after every key has parsed into
//! its type: names unique, numbers in range, addresses well formed.

use anyhow::bail;

use super::Config;
use crate::base::text::slugify;
use crate::base::SubscriberEmail;

impl Config {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.site.title.trim().is_empty() {
            bail!("config key `site.title`: must not be empty");
        }
        if self.site.author.name.trim().is_empty() {
            bail!("config key `site.author.name`: must not be empty");
        }
        if let Some(email) = &self.site.author.email {
            if SubscriberEmail::parse(email).is_err() {
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
        let server = &self.server;
        for (key, value) in [
            ("request_timeout", server.request_timeout),
            ("header_read_timeout", server.header_read_timeout),
            ("keepalive_timeout", server.keepalive_timeout),
        ] {
            if value.0.is_zero() {
                bail!("config key `server.{key}`: must be longer than 0");
            }
        }
        if server.metrics_listen == Some(server.listen) {
            bail!("config key `server.metrics_listen`: is `server.listen`; leave it out to serve /metrics there");
        }
        if server.metrics_token.is_some() && server.metrics_token_file.is_some() {
            bail!("config keys `server.metrics_token` and `server.metrics_token_file` are both set; keep one");
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
            if let Some(tag) = d.tags.iter().find(|t| slugify(t) != **t) {
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
            if SubscriberEmail::parse(addr).is_err() {
                bail!("config key `mail.unsubscribe_mailto`: `{addr}` is not an email address");
            }
        }
        if m.postal_address
            .chars()
            .any(|c| c.is_control() && c != '\n')
        {
            bail!("config key `mail.postal_address`: only line breaks may separate its lines");
        }
        if self.content.max_file_size.0 == 0 {
            bail!("config key `content.max_file_size`: must be larger than 0");
        }
        Ok(())
    }
}
