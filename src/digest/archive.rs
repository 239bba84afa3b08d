//! The web archive: every run of an archived schedule that sent anything
//! becomes a page at `/archive/<schedule>/<date>/`, the digest's HTML as a
//! reader of every tag got it, rendered without any subscriber (no
//! unsubscribe or preferences link, no address). The page's slug is given
//! before the first message goes out, so the messages can link to it
//! ("view in your browser", `List-Archive`); the page is published (once,
//! in the store, so every replica serves it) as soon as a batch of the run
//! was sent. The HTTP side is `http/archive.rs`.

use chrono::Utc;

use super::{Content, Digests};
use crate::store::{Issue, Run};

impl Digests {
    /// The run's archive slug (given now if it has none), or `None` when
    /// its schedule is not archived.
    pub(super) async fn archive_slug(&self, run: &Run) -> anyhow::Result<Option<String>> {
        let Some(digest) = self.config.digest.iter().find(|d| d.name == run.schedule) else {
            return Ok(None);
        };
        if !digest.archive {
            return Ok(None);
        }
        let date = run
            .tick
            .with_timezone(&digest.tz(&self.config.site))
            .format("%Y-%m-%d")
            .to_string();
        Ok(Some(self.store.assign_archive_slug(run.id, &date).await?))
    }

    /// Publishes the run's page unless it is published (or not
    /// archived). Failures are logged, never fatal: the digests matter
    /// more than their archive.
    pub(super) async fn publish_archive(&self, content: &Content) {
        let (run, slug) = match content {
            Content::Digest(ctx) => (&ctx.run, ctx.archive.as_ref()),
            Content::Announcement(ctx) => (&ctx.run, ctx.archive.as_ref()),
        };
        let Some(slug) = slug else {
            return;
        };
        let result = async {
            if self.store.issue(&run.schedule, slug).await?.is_some() {
                return anyhow::Ok(false);
            }
            let copy = match content {
                Content::Digest(ctx) => {
                    let since = self
                        .store
                        .previous_horizon(&run.schedule, run.id)
                        .await?
                        .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
                    self.composer.web_copy(ctx, since)?
                }
                Content::Announcement(ctx) => Some(self.composer.announcement_web_copy(ctx)?),
            };
            let Some(copy) = copy else {
                return Ok(false);
            };
            let issue = Issue {
                run_id: run.id,
                schedule: run.schedule.clone(),
                slug: slug.clone(),
                subject: copy.subject,
                published_at: self.clock.now(),
                html: copy.html,
                summary: copy.titles.join("\n"),
            };
            Ok(self.store.publish_issue(&issue).await?)
        }
        .await;
        match result {
            Ok(true) => tracing::info!(
                run = run.id,
                "published {}",
                self.config.archive_url(&run.schedule, Some(slug))
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!(run = run.id, "cannot publish the run in the archive: {e:#}"),
        }
    }
}
