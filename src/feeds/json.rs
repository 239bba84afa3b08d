//! JSON Feed 1.1: `version`, `title`, `items`; each item with `id` and
//! `content_html` (or `content_text` when feeds carry summaries only),
//! `authors` as an array. Serialized straight from borrowed article data.

use std::io::Write;
use std::sync::Arc;

use serde::Serialize;

use super::chunked::{self, Frame};
use super::{rfc3339, FeedSpec};
use crate::base::FeedFormat;
use crate::config::{Config, FeedContent, Person};
use crate::content::Article;

#[derive(Serialize)]
struct JsonFeed<'a> {
    version: &'static str,
    title: &'a str,
    home_page_url: &'a str,
    feed_url: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    language: &'a str,
    authors: Vec<JsonAuthor<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hubs: Vec<JsonHub<'a>>,
    /// Must stay the last field: the chunked writer splits the frame here.
    items: Vec<JsonItem<'a>>,
}

#[derive(Serialize)]
struct JsonHub<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    url: &'a str,
}

#[derive(Serialize)]
struct JsonAuthor<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonItem<'a> {
    id: &'a str,
    url: &'a str,
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_html: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_text: Option<&'a str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    summary: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    date_published: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    date_modified: Option<String>,
    authors: Vec<JsonAuthor<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<JsonAttachment<'a>>,
}

#[derive(Serialize)]
struct JsonAttachment<'a> {
    url: &'a str,
    mime_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    size_in_bytes: Option<u64>,
}

pub fn render(spec: &FeedSpec, config: &Config, out: &mut dyn Write) -> anyhow::Result<()> {
    let site = &config.site;
    let feed = JsonFeed {
        version: "https://jsonfeed.org/version/1.1",
        title: &spec.title,
        home_page_url: site.base_url.url().as_str(),
        feed_url: spec.self_url(config, FeedFormat::Json).to_string(),
        description: &spec.description,
        language: site.language.as_str(),
        authors: vec![author(&site.author)],
        hubs: config
            .websub
            .hubs
            .iter()
            .map(|h| JsonHub {
                kind: "WebSub",
                url: h.0.as_str(),
            })
            .collect(),
        items: Vec::new(),
    };
    // `items` is the last field, so the frame ends in `"items":[]}`.
    let mut doc = serde_json::to_vec(&feed)?;
    doc.push(b'\n');
    let frame = Frame::split_before_last(doc, "]}")?;
    chunked::write(out, &frame, &spec.articles, b",", |chunk| {
        let items: Vec<JsonItem<'_>> = chunk.iter().map(|a| item(a, config)).collect();
        let mut bytes = serde_json::to_vec(&items)?;
        // Drop the array's brackets: the frame has them.
        bytes.pop();
        bytes.remove(0);
        Ok(bytes)
    })
}

fn author(p: &Person) -> JsonAuthor<'_> {
    JsonAuthor {
        name: &p.name,
        url: p.url.as_deref(),
    }
}

fn item<'a>(a: &'a Arc<Article>, config: &Config) -> JsonItem<'a> {
    // An item needs `content_html` or `content_text`; an article with no
    // body has its summary (at least its title) as text.
    let full = config.feeds.content == FeedContent::Full && !a.content_html.trim().is_empty();
    JsonItem {
        id: &a.id,
        url: a.url.as_str(),
        title: &a.title,
        content_html: full.then_some(a.content_html.as_str()),
        content_text: (!full).then_some(a.summary.as_str()),
        summary: &a.summary,
        image: a.image.as_ref().map(|i| i.url.as_str()),
        date_published: rfc3339(&a.published),
        date_modified: a.updated.map(|_| rfc3339(&a.last_modified())),
        authors: a.authors.iter().map(author).collect(),
        tags: a.tags.iter().map(|t| t.name.as_str()).collect(),
        language: a.language.as_ref().map(|l| l.as_str()),
        attachments: a
            .image
            .iter()
            .map(|i| JsonAttachment {
                url: i.url.as_str(),
                mime_type: &i.mime,
                size_in_bytes: (i.length > 0).then_some(i.length),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feeds::tests::sample_spec;

    #[test]
    fn chunked_output_is_the_whole_feed_as_one_json_document() {
        let (spec, config) = sample_spec(300);
        let mut chunked = Vec::new();
        render(&spec, &config, &mut chunked).unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&chunked).unwrap();
        let items = parsed["items"].as_array().unwrap();
        assert_eq!(items.len(), 300);
        let whole_items: Vec<JsonItem<'_>> =
            spec.articles.iter().map(|a| item(a, &config)).collect();
        assert_eq!(parsed["items"], serde_json::to_value(&whole_items).unwrap());
        assert!(chunked.ends_with(b"]}\n"));
    }
}
