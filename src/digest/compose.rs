//! One subscriber's digest email: the template data, the HTML and text
//! parts, the subject, and the list headers (RFC 2369 `List-Id` and
//! `List-Unsubscribe`, RFC 8058 one-click `List-Unsubscribe-Post`),
//! optionally DKIM-signed with both List-Unsubscribe headers in the signed
//! set (RFC 8058 §4 asks for that).

use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use handlebars::Handlebars;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig as LettreDkim, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::HeaderName;
use lettre::message::Mailbox;
use lettre::Message;
use serde::Serialize;

use super::select::{self, Reader};
use super::Articles;
use crate::base::text::html_to_text;
use crate::config::{Config, DigestConfig, DkimAlgorithm, FeedContent};
use crate::content::Article;
use crate::mail::Outgoing;
use crate::store::{Run, SubscriberEmail};
use crate::subscribers::tokens::{envelope_address, Signer};
use crate::templates::{Templates, TEXT_WIDTH};

/// What is the same for every digest herald sends: built once at start, so
/// that a bad DKIM key or subject template stops herald there.
pub struct Composer {
    config: Arc<Config>,
    templates: Arc<Templates>,
    signer: Signer,
    from: Mailbox,
    dkim: Option<LettreDkim>,
    subjects: Handlebars<'static>,
}

/// A run's view of the articles, shared by all its recipients: each
/// article's template data is made once, when first needed.
pub struct RunContext {
    pub run: Run,
    pub digest: DigestConfig,
    /// The run's page in the web archive (its slug), when the schedule
    /// is archived: the messages link to it.
    pub archive: Option<String>,
    articles: Articles,
    views: Vec<OnceLock<ArticleView>>,
    date: String,
}

/// A recipient of a digest.
#[derive(Debug, Clone, Copy)]
pub struct Recipient<'a> {
    pub id: i64,
    pub email: &'a SubscriberEmail,
    pub since: DateTime<Utc>,
    pub first: bool,
    pub tags: &'a [String],
}

/// A composed digest.
pub struct Composed {
    pub message: Message,
    pub article_count: usize,
    pub html: String,
    pub text: String,
}

#[derive(Debug, Serialize)]
struct ArticleView {
    title: String,
    url: String,
    date: String,
    date_iso: String,
    authors: String,
    summary: String,
    content_html: String,
    content_text: String,
    image: Option<ImageView>,
    tags: Vec<TagView>,
}

#[derive(Debug, Serialize)]
struct ImageView {
    url: String,
    alt: String,
}

#[derive(Debug, Serialize)]
struct TagView {
    name: String,
    url: String,
}

#[derive(Serialize)]
struct Data<'a> {
    language: &'a str,
    site: SiteView<'a>,
    digest: DigestView<'a>,
    subscriber: SubscriberView<'a>,
    date: &'a str,
    count: usize,
    first_title: &'a str,
    more: usize,
    full_content: bool,
    /// The web archive's copy: no subscriber, no personal links.
    archive: bool,
    articles: Vec<&'a ArticleView>,
    links: Links,
    reason: String,
    postal_address: Vec<&'a str>,
}

#[derive(Serialize)]
struct SiteView<'a> {
    title: &'a str,
    url: &'a str,
    description: &'a str,
}

#[derive(Serialize)]
struct DigestView<'a> {
    name: &'a str,
    description: &'a str,
}

#[derive(Serialize)]
struct SubscriberView<'a> {
    email: &'a str,
}

#[derive(Serialize)]
struct Links {
    unsubscribe: String,
    preferences: String,
    site: String,
    feed: String,
    /// The run's page in the web archive ("view in your browser").
    archive: Option<String>,
    subscribe: String,
}

/// A run as the web archive shows it: no subscriber, no personal links.
pub struct WebCopy {
    pub subject: String,
    pub html: String,
    /// The articles' titles, newest first.
    pub titles: Vec<String>,
}

/// What one message of a run is made of, whatever it carries.
pub(super) struct MailParts<'a> {
    pub run: &'a Run,
    /// The list's name in `List-Id`: the schedule, or `announcements`.
    pub list: &'a str,
    pub list_archive: String,
    pub to: Recipient<'a>,
    pub subject: &'a str,
    pub html: &'a str,
    pub text: &'a str,
    pub unsubscribe: &'a str,
    pub token: &'a str,
    pub now: DateTime<Utc>,
}

/// The parts of a rendered digest.
struct Rendered {
    subject: String,
    html: String,
    text: String,
    count: usize,
    unsubscribe: String,
}

impl Composer {
    pub fn new(
        config: Arc<Config>,
        templates: Arc<Templates>,
        signer: Signer,
    ) -> anyhow::Result<Composer> {
        let from: Mailbox = config.mail.from.mailbox().clone();
        let mut subjects = Handlebars::new();
        subjects.set_strict_mode(true);
        subjects.register_escape_fn(handlebars::no_escape);
        for (i, d) in config.digest.iter().enumerate() {
            // Names only fields the digest data has, and renders non-empty.
            templates
                .check_subject(&d.subject)
                .map_err(|e| anyhow::anyhow!("config key `digest[{i}].subject`: {e:#}"))?;
            subjects
                .register_template_string(&d.name, &d.subject)
                .map_err(|e| anyhow::anyhow!("config key `digest[{i}].subject`: {e}"))?;
        }
        let dkim = config.mail.dkim.as_ref().map(load_dkim).transpose()?;
        Ok(Composer {
            config,
            templates,
            signer,
            from,
            dkim,
            subjects,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The context for sending `run` from `articles` (newest first).
    pub fn context(&self, run: Run, articles: Articles) -> anyhow::Result<RunContext> {
        let digest = self
            .config
            .digest
            .iter()
            .find(|d| d.name == run.schedule)
            .with_context(|| {
                format!(
                    "run {} is for the schedule `{}`, which the config no longer has",
                    run.id, run.schedule
                )
            })?
            .clone();
        let tz = digest.tz(&self.config.site);
        let date = run
            .tick
            .with_timezone(&tz)
            .format("%A, %-d %B %Y")
            .to_string();
        let views = (0..articles.len()).map(|_| OnceLock::new()).collect();
        Ok(RunContext {
            run,
            digest,
            archive: None,
            articles,
            views,
            date,
        })
    }

    /// The digest for `to`, or `None` when nothing in it is new to them.
    pub fn compose(
        &self,
        ctx: &RunContext,
        to: Recipient<'_>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<Composed>> {
        let reader = Reader {
            since: to.since,
            first: to.first,
            tags: to.tags,
        };
        let picked = select::select(&ctx.articles, &ctx.digest, ctx.run.horizon, reader);
        if picked.is_empty() {
            return Ok(None);
        }
        let token = self.signer.manage_token(to.id, now);
        let r = self.render(ctx, &picked, Some((to.email, &token)))?;
        let message = self.message(
            ctx,
            to,
            &r.subject,
            &r.html,
            &r.text,
            &r.unsubscribe,
            &token,
            now,
        )?;
        Ok(Some(Composed {
            message,
            article_count: r.count,
            html: r.html,
            text: r.text,
        }))
    }

    /// The web archive's copy of a run: what a reader of every tag got who
    /// had received the run before (`since`), rendered without any
    /// subscriber (`archive` true, no unsubscribe or preferences links).
    /// `None` when the run carried nothing for such a reader.
    pub fn web_copy(
        &self,
        ctx: &RunContext,
        since: DateTime<Utc>,
    ) -> anyhow::Result<Option<WebCopy>> {
        let reader = Reader {
            since,
            first: false,
            tags: &[],
        };
        let picked = select::select(&ctx.articles, &ctx.digest, ctx.run.horizon, reader);
        if picked.is_empty() {
            return Ok(None);
        }
        let titles = picked
            .iter()
            .map(|&i| ctx.articles.articles[i].title.clone())
            .collect();
        let r = self.render(ctx, &picked, None)?;
        Ok(Some(WebCopy {
            subject: r.subject,
            html: r.html,
            titles,
        }))
    }

    /// Subject, HTML and text of the digest of `picked` for `reader` (its
    /// address and management token), or for the web archive.
    fn render(
        &self,
        ctx: &RunContext,
        picked: &[usize],
        reader: Option<(&SubscriberEmail, &str)>,
    ) -> anyhow::Result<Rendered> {
        let articles: Vec<&ArticleView> = picked
            .iter()
            .map(|&i| {
                ctx.views[i].get_or_init(|| self.view(&ctx.digest, &ctx.articles.articles[i]))
            })
            .collect();
        let site = &self.config.site;
        let page = |name: &str| match reader {
            Some((_, token)) => self.config.page_url(name, Some(token)).to_string(),
            None => String::new(),
        };
        let unsubscribe = page("unsubscribe");
        let links = Links {
            preferences: page("preferences"),
            unsubscribe: unsubscribe.clone(),
            site: site.base_url.url().to_string(),
            feed: self.site_feed_url(),
            archive: ctx.archive.as_deref().map(|slug| {
                self.config
                    .archive_url(&ctx.run.schedule, Some(slug))
                    .to_string()
            }),
            subscribe: self.config.page_url("subscribe", None).to_string(),
        };
        let what = if ctx.digest.description.is_empty() {
            format!("the {} digest", ctx.digest.name)
        } else {
            format!(
                "the {} digest ({})",
                ctx.digest.name,
                ctx.digest.description.trim_end_matches('.')
            )
        };
        let data = Data {
            language: site.language.as_str(),
            site: SiteView {
                title: &site.title,
                url: site.base_url.url().as_str(),
                description: &site.description,
            },
            digest: DigestView {
                name: &ctx.digest.name,
                description: &ctx.digest.description,
            },
            subscriber: SubscriberView {
                email: reader.map_or("", |(email, _)| email.as_str()),
            },
            date: &ctx.date,
            count: articles.len(),
            first_title: &articles[0].title,
            more: articles.len() - 1,
            full_content: ctx.digest.content == FeedContent::Full,
            archive: reader.is_none(),
            articles,
            links,
            reason: format!(
                "You receive this email because you subscribed to {what} of {} and confirmed your address.",
                site.title
            ),
            postal_address: self
                .config
                .mail
                .postal_address
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect(),
        };
        let subject = self
            .subjects
            .render(&ctx.digest.name, &data)
            .with_context(|| format!("rendering the subject of digest `{}`", ctx.digest.name))?;
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        let html = self.templates.render("digest.html", &data)?;
        let text = self.templates.render("digest.txt", &data)?;
        Ok(Rendered {
            subject,
            html,
            text,
            count: data.count,
            unsubscribe,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn message(
        &self,
        ctx: &RunContext,
        to: Recipient<'_>,
        subject: &str,
        html: &str,
        text: &str,
        unsubscribe: &str,
        token: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Message> {
        self.mail(MailParts {
            run: &ctx.run,
            list: &ctx.digest.name,
            list_archive: self.list_archive(ctx),
            to,
            subject,
            html,
            text,
            unsubscribe,
            token,
            now,
        })
    }

    /// A message of a run with every header herald sets: the Message-ID
    /// that names the delivery, the list headers (RFC 2369, 2919, 8058),
    /// the envelope sender with its token, DKIM.
    pub(super) fn mail(&self, m: MailParts<'_>) -> anyhow::Result<Message> {
        let site = &self.config.site;
        let host = site.base_url.url().host_str().unwrap_or("localhost");
        // RFC 2369/2919: a phrase and a unique dot-atom id per list.
        let phrase: String = format!("{} {} digest", site.title, m.list)
            .chars()
            .filter(|c| !matches!(c, '"' | '\\'))
            .collect();
        let list_id = format!("\"{phrase}\" <{}.digest.{host}>", m.list);
        let mut unsub = format!("<{}>", m.unsubscribe);
        if let Some(mailbox) = &self.config.mail.unsubscribe_mailto {
            unsub.push_str(&format!(
                ", <mailto:{mailbox}?subject=unsubscribe%20{}>",
                m.token
            ));
        }
        let run = m.run;
        let to = m.to;
        let mut message = Outgoing::new(&self.from, to.email, m.subject, m.text, m.html)?
            // The same Message-ID on every attempt at this delivery.
            .with_message_id(&format!("digest.{}.{}.{}", run.nonce, run.id, to.id))?
            .date(m.now.into())
            .header("List-Id", &list_id)?
            .header("List-Unsubscribe", &unsub)?
            .header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")?
            .header("List-Archive", &format!("<{}>", m.list_archive))?
            .header("Auto-Submitted", "auto-generated")?;
        if let Some(bounce) = &self.config.mail.bounce_address {
            // Bounce reports come back to an address that names this
            // delivery (see `subscribers::bounces`).
            let token = self.signer.envelope_token(run.id, to.id);
            message = message.envelope_from(&envelope_address(bounce, &token))?;
        }
        let mut message = message.build()?;
        if let Some(dkim) = &self.dkim {
            message.sign(dkim);
        }
        Ok(message)
    }

    pub(super) fn templates(&self) -> &Templates {
        &self.templates
    }

    pub(super) fn signer(&self) -> &Signer {
        &self.signer
    }

    fn view(&self, digest: &DigestConfig, a: &Article) -> ArticleView {
        let tz = digest.tz(&self.config.site);
        let published = a.published.with_timezone(&tz);
        let full = digest.content == FeedContent::Full;
        let base = self.config.site.base_url.url();
        ArticleView {
            title: a.title.clone(),
            url: a.url.to_string(),
            date: published.format("%-d %B %Y").to_string(),
            date_iso: a.published.to_rfc3339(),
            authors: a
                .authors
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            summary: a.summary.clone(),
            content_html: if full {
                a.content_html.clone()
            } else {
                String::new()
            },
            content_text: if full {
                html_to_text(&a.content_html, TEXT_WIDTH)
            } else {
                String::new()
            },
            image: a.image.as_ref().map(|i| ImageView {
                url: i.url.to_string(),
                alt: a.title.clone(),
            }),
            tags: a
                .tags
                .iter()
                .map(|t| TagView {
                    name: t.name.clone(),
                    url: base
                        .join(&format!("tags/{}/", t.slug))
                        .map(|u| u.to_string())
                        .unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// `List-Archive` (RFC 2369): the schedule's web archive when it has
    /// one, else the site's feed.
    fn list_archive(&self, ctx: &RunContext) -> String {
        if ctx.archive.is_some() {
            self.config.archive_url(&ctx.run.schedule, None).to_string()
        } else {
            self.site_feed_url()
        }
    }

    /// The site-wide feed in the first configured format.
    fn site_feed_url(&self) -> String {
        let format = self
            .config
            .formats()
            .first()
            .copied()
            .unwrap_or(crate::base::FeedFormat::Atom);
        self.config
            .feeds_base_url()
            .join(self.config.feed_file_name(format))
            .map(|u| u.to_string())
            .unwrap_or_default()
    }
}

/// Reads the DKIM key (from `private_key`, i.e. the environment, or the
/// file) and signs From, To, Subject, Date, Message-ID, MIME-Version,
/// Content-Type and both List-Unsubscribe headers.
fn load_dkim(c: &crate::config::DkimConfig) -> anyhow::Result<LettreDkim> {
    let key = match (&c.private_key, &c.private_key_file) {
        (Some(k), _) => k.expose().to_string(),
        (None, Some(path)) => std::fs::read_to_string(path).with_context(|| {
            format!(
                "config key `mail.dkim.private_key_file`: cannot read {}",
                path.display()
            )
        })?,
        (None, None) => bail!(
            "config key `mail.dkim`: give `private_key_file` or the key in HERALD_MAIL__DKIM__PRIVATE_KEY"
        ),
    };
    let algorithm = match c.algorithm {
        DkimAlgorithm::Rsa => DkimSigningAlgorithm::Rsa,
        DkimAlgorithm::Ed25519 => DkimSigningAlgorithm::Ed25519,
    };
    let signing_key = DkimSigningKey::new(key.trim(), algorithm).map_err(|e| {
        anyhow::anyhow!(
            "config key `mail.dkim`: the private key cannot be used ({e}); RSA keys must be PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`), Ed25519 keys base64"
        )
    })?;
    let headers = [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "List-Id",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
    ]
    .into_iter()
    .map(HeaderName::new_from_ascii_str)
    .collect();
    Ok(LettreDkim::new(
        c.selector.clone(),
        c.domain.clone(),
        signing_key,
        headers,
        DkimCanonicalization {
            header: DkimCanonicalizationType::Relaxed,
            body: DkimCanonicalizationType::Relaxed,
        },
    ))
}
