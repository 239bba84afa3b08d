//! A digest's view of one article: the template data made once per run
//! for each article a reader gets.

use super::{ArticleView, Composer, ImageView, TagView};
use crate::base::text::html_to_text;
use crate::config::{DigestConfig, FeedContent};
use crate::content::Article;
use crate::templates::TEXT_WIDTH;

impl Composer {
    pub(super) fn view(&self, digest: &DigestConfig, a: &Article) -> ArticleView {
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
}
