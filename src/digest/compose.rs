//! One subscriber's digest email: the template data, the HTML and text
//! parts, the subject, and the list headers (RFC 2369 `List-Id` and
//! `List-Unsubscribe`, RFC 8058 one-click `List-Unsubscribe-Post`),
//! optionally DKIM-signed with both List-Unsubscribe headers in the signed
//! set (RFC 8058 §4 asks for that).
//!
//! Two ways to the same email. [`Composer::prepare`] (in `variant.rs`) is
//! how digests are sent: each distinct set of articles is rendered once
//! per run and each recipient's message spliced from it. Composer::compose
//! is the straightforward way, one full render per recipient: kept for
//! previews and as the oracle the tests hold the spliced messages to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context;
use chrono::{DateTime, Utc};
use handlebars::Handlebars;
use lettre::message::Mailbox;
use lettre::Message;
use serde::Serialize;

use super::select::{self, Reader};
use super::variant::{RunHeaders, Variant};
use super::Articles;
use crate::config::{Config, DigestConfig, FeedContent};
use crate::mail::{DkimSigner, Outgoing, Wire};
use crate::store::{Run, SubscriberEmail};
use crate::subscribers::tokens::{envelope_address, Signer};
use crate::templates::Templates;

mod view;

/// What is the same for every digest herald sends: built once at start, so
/// that a bad DKIM key or subject template stops herald there.
pub struct Composer {
    pub(super) config: Arc<Config>,
    pub(super) templates: Arc<Templates>,
    pub(super) signer: Signer,
    pub(super) from: Mailbox,
    pub(super) dkim: Option<DkimSigner>,
    pub(super) subjects: Handlebars<'static>,
}

/// A run's view of the articles, shared by all its recipients: each
/// article's template data is made once, when first needed, and each
/// distinct digest (set of articles) once, when first sent.
pub struct RunContext {
    pub run: Run,
    pub digest: DigestConfig,
    /// The run's page in the web archive (its slug), when the schedule
    /// is archived: the messages link to it. Set with
    /// [`Composer::set_archive`].
    pub archive: Option<String>,
    pub(super) articles: Articles,
    pub(super) views: Vec<OnceLock<ArticleView>>,
    pub(super) date: String,
    pub(super) headers: RunHeaders,
    /// Rendered digests by their articles; cleared when it reaches
    /// [`super::variant::MAX_VARIANTS`] so that memory stays bounded.
    pub(super) variants: Mutex<HashMap<Vec<usize>, Arc<Variant>>>,
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
pub(super) struct ArticleView {
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
pub(super) struct Data<'a> {
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
pub(super) struct Links {
    pub(super) unsubscribe: String,
    pub(super) preferences: String,
    pub(super) site: String,
    pub(super) feed: String,
    /// The run's page in the web archive ("view in your browser").
    pub(super) archive: Option<String>,
    pub(super) subscribe: String,
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
    /// The `List-Archive` header's value, angle brackets included.
    pub list_archive: String,
    pub to: Recipient<'a>,
    pub subject: &'a str,
    pub html: &'a str,
    pub text: &'a str,
    pub unsubscribe: &'a str,
    pub token: &'a str,
    pub now: DateTime<Utc>,
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
        let dkim = config
            .mail
            .dkim
            .as_ref()
            .map(DkimSigner::from_config)
            .transpose()?;
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
        let headers = self.run_headers(&run, &digest, None);
        Ok(RunContext {
            run,
            digest,
            archive: None,
            articles,
            views,
            date,
            headers,
            variants: Mutex::new(HashMap::new()),
        })
    }

    /// Links the messages of `ctx` to its page in the web archive (`slug`)
    /// or, with `None`, to none.
    pub fn set_archive(&self, ctx: &mut RunContext, slug: Option<String>) {
        ctx.headers = self.run_headers(&ctx.run, &ctx.digest, slug.as_deref());
        ctx.archive = slug;
        ctx.variants.lock().expect("variants lock").clear();
    }

    /// The articles `to` gets, as indices into the run's articles; empty
    /// when nothing is new to them.
    pub(super) fn pick(&self, ctx: &RunContext, to: &Recipient<'_>) -> Vec<usize> {
        let reader = Reader {
            since: to.since,
            first: to.first,
            tags: to.tags,
        };
        select::select(&ctx.articles, &ctx.digest, ctx.run.horizon, reader)
    }

    /// The template data of each picked article, made once per run.
    pub(super) fn views<'a>(&self, ctx: &'a RunContext, picked: &[usize]) -> Vec<&'a ArticleView> {
        picked
            .iter()
            .map(|&i| {
                ctx.views[i].get_or_init(|| self.view(&ctx.digest, &ctx.articles.articles[i]))
            })
            .collect()
    }

    /// The links in a digest of `ctx`; those that take a reader's token
    /// empty without one (the web archive's copy).
    pub(super) fn links(&self, ctx: &RunContext, token: Option<&str>) -> Links {
        let page = |name: &str| match token {
            Some(token) => self.config.page_url(name, Some(token)).to_string(),
            None => String::new(),
        };
        Links {
            preferences: page("preferences"),
            unsubscribe: page("unsubscribe"),
            site: self.config.site.base_url.url().to_string(),
            feed: self.site_feed_url(),
            archive: ctx.archive.as_deref().map(|slug| {
                self.config
                    .archive_url(&ctx.run.schedule, Some(slug))
                    .to_string()
            }),
            subscribe: self.config.page_url("subscribe", None).to_string(),
        }
    }

    /// The digest for `to`, or `None` when nothing in it is new to them.
    pub fn compose(
        &self,
        ctx: &RunContext,
        to: Recipient<'_>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<Composed>> {
        let picked = self.pick(ctx, &to);
        if picked.is_empty() {
            return Ok(None);
        }
        let token = self.signer.manage_token(to.id, now);
        let links = self.links(ctx, Some(&token));
        let unsubscribe = links.unsubscribe.clone();
        let data = self.data(ctx, self.views(ctx, &picked), to.email.as_str(), links);
        let subject = self.subject(ctx, &data)?;
        let html = self.templates.render("digest.html", &data)?;
        let text = self.templates.render("digest.txt", &data)?;
        let count = data.count;
        let message = self.mail(MailParts {
            run: &ctx.run,
            list: &ctx.digest.name,
            list_archive: self.list_archive(&ctx.run.schedule, ctx.archive.is_some()),
            to,
            subject: &subject,
            html: &html,
            text: &text,
            unsubscribe: &unsubscribe,
            token: &token,
            now,
        })?;
        Ok(Some(Composed {
            message,
            article_count: count,
            html,
            text,
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
        let data = self.data(ctx, self.views(ctx, &picked), "", self.links(ctx, None));
        Ok(Some(WebCopy {
            subject: self.subject(ctx, &data)?,
            html: self.templates.render("digest.html", &data)?,
            titles,
        }))
    }

    /// The template data of one digest (`email` empty: the web archive's
    /// copy).
    pub(super) fn data<'a>(
        &'a self,
        ctx: &'a RunContext,
        articles: Vec<&'a ArticleView>,
        email: &'a str,
        links: Links,
    ) -> Data<'a> {
        let site = &self.config.site;
        let what = if ctx.digest.description.is_empty() {
            format!("the {} digest", ctx.digest.name)
        } else {
            format!(
                "the {} digest ({})",
                ctx.digest.name,
                ctx.digest.description.trim_end_matches('.')
            )
        };
        Data {
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
            subscriber: SubscriberView { email },
            date: &ctx.date,
            count: articles.len(),
            first_title: articles.first().map_or("", |a| a.title.as_str()),
            more: articles.len().saturating_sub(1),
            full_content: ctx.digest.content == FeedContent::Full,
            archive: email.is_empty(),
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
        }
    }

    /// The digest's subject for `data`, on one line.
    pub(super) fn subject(&self, ctx: &RunContext, data: &Data<'_>) -> anyhow::Result<String> {
        let subject = self
            .subjects
            .render(&ctx.digest.name, data)
            .with_context(|| format!("rendering the subject of digest `{}`", ctx.digest.name))?;
        Ok(subject.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    /// `List-Id`: RFC 2369/2919, a phrase and a unique dot-atom id per
    /// list (`list`: a schedule, or `announcements`).
    pub(super) fn list_id(&self, list: &str) -> String {
        let site = &self.config.site;
        let host = site.base_url.url().host_str().unwrap_or("localhost");
        let phrase: String = format!("{} {} digest", site.title, list)
            .chars()
            .filter(|c| !matches!(c, '"' | '\\'))
            .collect();
        format!("\"{phrase}\" <{}.digest.{host}>", list)
    }

    /// `List-Unsubscribe`: the one-click link, and a mailbox if configured.
    pub(super) fn list_unsubscribe(&self, unsubscribe: &str, token: &str) -> String {
        let mut unsub = format!("<{unsubscribe}>");
        if let Some(mailbox) = &self.config.mail.unsubscribe_mailto {
            unsub.push_str(&format!(
                ", <mailto:{mailbox}?subject=unsubscribe%20{}>",
                token
            ));
        }
        unsub
    }

    /// `List-Archive` (RFC 2369): the schedule's web archive when the run
    /// has a page there, else the site's feed.
    pub(super) fn list_archive(&self, schedule: &str, archived: bool) -> String {
        let url = if archived {
            self.config.archive_url(schedule, None).to_string()
        } else {
            self.site_feed_url()
        };
        format!("<{url}>")
    }

    /// The envelope sender (`MAIL FROM`) of `run`'s delivery to subscriber
    /// `id`: with `mail.bounce_address`, an address whose token names the
    /// delivery, so that a bounce report identifies it (see
    /// `subscribers::bounces`); else `From`'s address.
    pub(super) fn envelope_sender(&self, run: &Run, id: i64) -> anyhow::Result<lettre::Address> {
        match &self.config.mail.bounce_address {
            Some(bounce) => {
                let token = self.signer.envelope_token(run.id, id);
                let address = envelope_address(bounce, &token);
                address
                    .parse()
                    .with_context(|| format!("`{address}` is not an envelope sender"))
            }
            None => Ok(self.from.email.clone()),
        }
    }

    /// The local part of the Message-ID of `run`'s delivery to subscriber
    /// `id`: the same on every attempt.
    pub(super) fn message_id_local(run: &Run, id: i64) -> String {
        format!("digest.{}.{}.{}", run.nonce, run.id, id)
    }

    /// A message of a run built whole through lettre (an announcement, or a
    /// digest the straightforward way), with every header herald sets: the
    /// Message-ID that names the delivery, the list headers (RFC 2369,
    /// 2919, 8058), the envelope sender with its token. Signed when it
    /// goes on the wire ([`Composer::wire`]); what a run sends of a digest
    /// is built and signed by [`Composer::prepare`].
    pub(super) fn mail(&self, m: MailParts<'_>) -> anyhow::Result<Message> {
        let run = m.run;
        let to = m.to;
        let message = Outgoing::new(&self.from, to.email, m.subject, m.text, m.html)?
            // The same Message-ID on every attempt at this delivery.
            .with_message_id(&Self::message_id_local(run, to.id))?
            .date(m.now.into())
            .header("List-Id", &self.list_id(m.list))?
            .header(
                "List-Unsubscribe",
                &self.list_unsubscribe(m.unsubscribe, m.token),
            )?
            .header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")?
            .header("List-Archive", &m.list_archive)?
            .header("Auto-Submitted", "auto-generated")?
            .envelope_from(self.envelope_sender(run, to.id)?.as_ref())?
            .build()?;
        Ok(message)
    }

    /// A message lettre built, as it goes on the wire: DKIM-signed when
    /// `mail.dkim` is set.
    pub fn wire(&self, message: &Message, now: DateTime<Utc>) -> Wire {
        match &self.dkim {
            Some(dkim) => {
                let text = String::from_utf8_lossy(&message.formatted()).into_owned();
                let signature = dkim.sign_message(&text, now.timestamp());
                Wire::new(message.envelope().clone(), signature + &text)
            }
            None => Wire::from_message(message),
        }
    }

    pub(super) fn templates(&self) -> &Templates {
        &self.templates
    }

    pub(super) fn signer(&self) -> &Signer {
        &self.signer
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
