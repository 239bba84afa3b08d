//! Announcements (`herald announce FILE.md --to …`): a one-off message to
//! the active subscribers of the whole list, one schedule or one tag, sent
//! exactly as a digest run is. The run (schedule `announcements`, trigger
//! `announcement`) is planned whole with its message into the ledger, in
//! one transaction, so any process can send it, and send it on after a
//! crash: the same claims, leases, retries, `uncertain` deliveries, list
//! headers, envelope tokens and DKIM. No digest cursor moves. Its page in
//! the web archive is `/archive/announcements/<date>/`.

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Composed, Composer, Digests, Recipient, WebCopy};
use crate::base::text::html_to_text;
use crate::store::{Announcement, NewAnnouncement, NewDelivery, Run, SubscriberEmail};
use crate::templates::TEXT_WIDTH;

/// Recipients read from the store at a time while planning.
const PLAN_PAGE: usize = 2_000;

/// An announcement run with its message, shared by all its recipients.
pub struct AnnounceContext {
    pub run: Run,
    pub message: Announcement,
    /// The run's page in the web archive (its slug).
    pub archive: Option<String>,
    date: String,
}

impl Composer {
    pub fn announcement_context(&self, run: Run, message: Announcement) -> AnnounceContext {
        let date = run
            .tick
            .with_timezone(&self.config().site.timezone.0)
            .format("%A, %-d %B %Y")
            .to_string();
        AnnounceContext {
            run,
            message,
            archive: None,
            date,
        }
    }

    /// HTML and text for `reader` (address and management token), or for
    /// the web archive.
    fn render_announcement(
        &self,
        ctx: &AnnounceContext,
        reader: Option<(&SubscriberEmail, &str)>,
    ) -> anyhow::Result<(String, String, String)> {
        let config = self.config();
        let site = &config.site;
        let page = |name: &str| match reader {
            Some((_, token)) => config.page_url(name, Some(token)).to_string(),
            None => String::new(),
        };
        let unsubscribe = page("unsubscribe");
        let data = json!({
            "language": site.language.as_str(),
            "site": {
                "title": site.title,
                "url": site.base_url.url().as_str(),
                "description": site.description,
            },
            "subject": ctx.message.subject,
            "date": ctx.date,
            "content_html": ctx.message.html,
            "content_text": ctx.message.text,
            "archive": reader.is_none(),
            "subscriber": {"email": reader.map_or("", |(e, _)| e.as_str())},
            "links": {
                "unsubscribe": unsubscribe,
                "preferences": page("preferences"),
                "site": site.base_url.url().as_str(),
                "feed": config.feeds_base_url().as_str(),
                "archive": ctx.archive.as_deref().map(|slug| {
                    config.archive_url(&ctx.run.schedule, Some(slug)).to_string()
                }),
                "subscribe": config.page_url("subscribe", None).to_string(),
            },
            "reason": format!(
                "You receive this email because you subscribed to {} and confirmed your address.",
                site.title
            ),
            "postal_address": config
                .mail
                .postal_address
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>(),
        });
        let html = self.templates().render("announcement.html", &data)?;
        let text = self.templates().render("announcement.txt", &data)?;
        Ok((html, text, unsubscribe))
    }

    /// The announcement for `to`.
    pub fn compose_announcement(
        &self,
        ctx: &AnnounceContext,
        to: Recipient<'_>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Composed> {
        let token = self.signer().manage_token(to.id, now);
        let (html, text, unsubscribe) = self.render_announcement(ctx, Some((to.email, &token)))?;
        let config = self.config();
        let list_archive = match &ctx.archive {
            Some(_) => config.archive_url(&ctx.run.schedule, None),
            None => config.feeds_base_url().clone(),
        };
        let list_archive = format!("<{list_archive}>");
        let message = self.mail(super::compose::MailParts {
            run: &ctx.run,
            list: &ctx.run.schedule,
            list_archive,
            to,
            subject: &ctx.message.subject,
            html: &html,
            text: &text,
            unsubscribe: &unsubscribe,
            token: &token,
            now,
        })?;
        Ok(Composed {
            message,
            article_count: 0,
            html,
            text,
        })
    }

    /// The announcement as the web archive shows it.
    pub fn announcement_web_copy(&self, ctx: &AnnounceContext) -> anyhow::Result<WebCopy> {
        let (html, text, _) = self.render_announcement(ctx, None)?;
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && *l != ctx.message.subject);
        Ok(WebCopy {
            subject: ctx.message.subject.clone(),
            html,
            titles: first.map(str::to_string).into_iter().collect(),
        })
    }
}

/// The message of a Markdown file: subject from its `title` (or first
/// heading), body as HTML with absolute links, and as text.
pub fn announcement_from_markdown(
    text: &str,
    base: &url::Url,
    audience: crate::store::Audience,
    archive: bool,
) -> anyhow::Result<Announcement> {
    let message = crate::content::render_message(text, base).map_err(anyhow::Error::msg)?;
    let subject = message.title.context(
        "the file has no title: give `title` in its front matter or start with a `# Heading`",
    )?;
    let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok(Announcement {
        audience,
        text: html_to_text(&message.html, TEXT_WIDTH),
        html: message.html,
        subject,
        archive,
    })
}

impl Digests {
    /// Everyone an announcement to `message.audience` would go to now.
    pub async fn plan_announcement(
        &self,
        message: &Announcement,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<NewDelivery>> {
        let mut planned = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .audience_page(&message.audience, after, PLAN_PAGE)
                .await?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.id);
            planned.extend(page.into_iter().map(|c| NewDelivery {
                subscriber_id: c.id,
                email: c.email,
                since: now,
                first: false,
            }));
        }
        Ok(planned)
    }

    /// Plans and records an announcement run; it is then sent like any
    /// run ([`Digests::drain`]).
    pub async fn start_announcement(&self, message: &Announcement) -> anyhow::Result<Run> {
        let now = crate::store::db_time(self.clock.now());
        let planned = self.plan_announcement(message, now).await?;
        self.start_planned_announcement(message, now, planned).await
    }

    /// Records an announcement run to those `plan_announcement` found at
    /// `now`.
    pub async fn start_planned_announcement(
        &self,
        message: &Announcement,
        now: DateTime<Utc>,
        planned: Vec<NewDelivery>,
    ) -> anyhow::Result<Run> {
        let run = self
            .store
            .create_announcement(NewAnnouncement {
                message,
                now,
                deliveries: &planned,
            })
            .await?;
        tracing::info!(
            run = run.id,
            audience = %message.audience,
            recipients = planned.len(),
            "announcement planned"
        );
        Ok(run)
    }
}
