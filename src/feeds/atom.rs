//! Atom 1.0 (RFC 4287): feed `id`, `title`, `updated`, an author, a self
//! link; each entry with `id`, `title`, `updated`, `published`, an
//! alternate link and `content` or `summary`.

use std::io::Write;
use std::sync::Arc;

use atom_syndication::{
    Category, Content, Entry, Feed, Generator, Link, Person as AtomPerson, Text, WriteConfig,
};

use super::chunked::{self, Frame};
use super::{FeedSpec, GENERATOR, VERSION};
use crate::base::FeedFormat;
use crate::config::{Config, FeedContent, Person};
use crate::content::Article;

pub fn render(spec: &FeedSpec, config: &Config, out: &mut dyn Write) -> anyhow::Result<()> {
    let frame = Frame::split_before_last(write_feed(spec, config, Vec::new())?, "</feed>")?;
    chunked::write(out, &frame, &spec.articles, b"", |chunk| {
        let doc = write_feed(
            spec,
            config,
            chunk.iter().map(|a| entry(a, config)).collect(),
        )?;
        chunked::items_between(&doc, "<entry>", "</entry>")
    })
}

/// The whole feed document with `entries`.
fn write_feed(spec: &FeedSpec, config: &Config, entries: Vec<Entry>) -> anyhow::Result<Vec<u8>> {
    let site = &config.site;
    let self_url = spec.self_url(config, FeedFormat::Atom).to_string();
    let feed = Feed {
        title: Text::plain(spec.title.clone()),
        id: self_url.clone(),
        updated: spec.updated,
        authors: vec![person(&site.author)],
        generator: Some(Generator {
            value: GENERATOR.into(),
            uri: None,
            version: Some(VERSION.into()),
        }),
        links: vec![
            Link {
                href: self_url,
                rel: "self".into(),
                mime_type: Some("application/atom+xml".into()),
                ..Link::default()
            },
            Link {
                href: site.base_url.url().to_string(),
                rel: "alternate".into(),
                mime_type: Some("text/html".into()),
                ..Link::default()
            },
        ]
        .into_iter()
        .chain(config.websub.hubs.iter().map(|hub| Link {
            href: hub.0.to_string(),
            rel: "hub".into(),
            ..Link::default()
        }))
        .collect(),
        subtitle: (!spec.description.is_empty()).then(|| Text::plain(spec.description.clone())),
        lang: Some(site.language.as_str().to_string()),
        entries,
        ..Feed::default()
    };
    Ok(feed.write_with_config(
        Vec::new(),
        WriteConfig {
            write_document_declaration: true,
            indent_size: None,
        },
    )?)
}

fn person(p: &Person) -> AtomPerson {
    AtomPerson {
        name: p.name.clone(),
        email: p.email.clone(),
        uri: p.url.clone(),
        ..AtomPerson::default()
    }
}

fn entry(a: &Arc<Article>, config: &Config) -> Entry {
    let mut links = vec![Link {
        href: a.url.to_string(),
        rel: "alternate".into(),
        mime_type: Some("text/html".into()),
        ..Link::default()
    }];
    if let Some(img) = &a.image {
        links.push(Link {
            href: img.url.to_string(),
            rel: "enclosure".into(),
            mime_type: Some(img.mime.clone()),
            length: (img.length > 0).then(|| img.length.to_string()),
            ..Link::default()
        });
    }
    Entry {
        title: Text::plain(a.title.clone()),
        id: a.id.clone(),
        updated: a.last_modified(),
        published: Some(a.published),
        authors: a.authors.iter().map(person).collect(),
        categories: a
            .tags
            .iter()
            .map(|t| Category {
                term: t.name.clone(),
                scheme: None,
                label: None,
            })
            .collect(),
        links,
        summary: (!a.summary.is_empty()).then(|| Text::plain(a.summary.clone())),
        // An article with no body gets no empty `content` (its summary,
        // the title, stands in).
        content: (config.feeds.content == FeedContent::Full && !a.content_html.trim().is_empty())
            .then(|| Content {
                value: Some(a.content_html.clone()),
                content_type: Some("html".into()),
                lang: a.language.as_ref().map(|l| l.as_str().to_string()),
                ..Content::default()
            }),
        ..Entry::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feeds::tests::sample_spec;

    #[test]
    fn chunked_output_equals_whole_document_output() {
        let (spec, config) = sample_spec(300);
        let mut chunked = Vec::new();
        render(&spec, &config, &mut chunked).unwrap();
        let entries: Vec<Entry> = spec.articles.iter().map(|a| entry(a, &config)).collect();
        let whole = write_feed(&spec, &config, entries).unwrap();
        assert_eq!(
            String::from_utf8(chunked).unwrap(),
            String::from_utf8(whole).unwrap()
        );
    }
}
