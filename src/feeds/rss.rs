//! RSS 2.0 with the RSS Best Practices Profile: `atom:link rel=self`,
//! summary in `description` and full HTML in `content:encoded` (never an
//! empty one), one of `author` (a single author with an email) or
//! `dc:creator` (names) per item and never both, RFC 822 dates with
//! four-digit years, `isPermaLink="false"` on ids that are not the
//! permalink.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use rss::extension::atom::{AtomExtension, Link};
use rss::extension::dublincore::DublinCoreExtension;
use rss::{Category, Channel, Enclosure, Guid, Item};

use super::chunked::{self, Frame};
use super::{FeedSpec, GENERATOR, VERSION};
use crate::base::FeedFormat;
use crate::config::{Config, FeedContent};
use crate::content::Article;

pub fn render(spec: &FeedSpec, config: &Config, out: &mut dyn Write) -> anyhow::Result<()> {
    let frame = Frame::split_before_last(write_channel(spec, config, Vec::new())?, "</channel>")?;
    chunked::write(out, &frame, &spec.articles, b"", |chunk| {
        let doc = write_channel(
            spec,
            config,
            chunk.iter().map(|a| item(a, config)).collect(),
        )?;
        chunked::items_between(&doc, "<item>", "</item>")
    })
}

/// The whole channel document with `items`.
fn write_channel(spec: &FeedSpec, config: &Config, items: Vec<Item>) -> anyhow::Result<Vec<u8>> {
    let site = &config.site;
    let updated = spec.updated.to_rfc2822();
    let description = if spec.description.is_empty() {
        spec.title.clone()
    } else {
        spec.description.clone()
    };
    // Declared up front rather than inferred from the items, so that the
    // frame (rendered without items) declares them too.
    let namespaces = BTreeMap::from([
        (
            "content".to_string(),
            "http://purl.org/rss/1.0/modules/content/".to_string(),
        ),
        (
            "dc".to_string(),
            rss::extension::dublincore::NAMESPACE.to_string(),
        ),
    ]);
    let channel = Channel {
        title: spec.title.clone(),
        link: site.base_url.url().to_string(),
        description,
        language: Some(site.language.as_str().to_string()),
        pub_date: Some(updated.clone()),
        last_build_date: Some(updated),
        generator: Some(format!("{GENERATOR} {VERSION}")),
        docs: Some("https://www.rssboard.org/rss-specification".into()),
        atom_ext: Some(AtomExtension {
            links: std::iter::once(Link {
                href: spec.self_url(config, FeedFormat::Rss).to_string(),
                rel: "self".into(),
                mime_type: Some("application/rss+xml".into()),
                ..Link::default()
            })
            .chain(config.websub.hubs.iter().map(|hub| Link {
                href: hub.0.to_string(),
                rel: "hub".into(),
                ..Link::default()
            }))
            .collect(),
        }),
        namespaces,
        items,
        ..Channel::default()
    };
    Ok(channel.write_to(Vec::new())?)
}

fn item(a: &Arc<Article>, config: &Config) -> Item {
    // The profile: `author` holds one email address; names, and several
    // authors, go in `dc:creator`. An item carrying both says the same
    // thing twice, which the W3C validator flags.
    let author = match a.authors.as_slice() {
        [p] => p.email.as_ref().map(|e| format!("{e} ({})", p.name)),
        _ => None,
    };
    let creators = if author.is_some() {
        Vec::new()
    } else {
        a.authors.iter().map(|p| p.name.clone()).collect()
    };
    let full = config.feeds.content == FeedContent::Full && !a.content_html.trim().is_empty();
    Item {
        title: Some(a.title.clone()),
        link: Some(a.url.to_string()),
        description: Some(a.summary.clone()).filter(|s| !s.is_empty()),
        content: full.then(|| a.content_html.clone()),
        author,
        dublin_core_ext: (!creators.is_empty()).then(|| DublinCoreExtension {
            creators,
            ..DublinCoreExtension::default()
        }),
        categories: a
            .tags
            .iter()
            .map(|t| Category {
                name: t.name.clone(),
                domain: None,
            })
            .collect(),
        guid: Some(Guid {
            permalink: a.id == a.url.as_str(),
            value: a.id.clone(),
        }),
        pub_date: Some(a.published.to_rfc2822()),
        enclosure: a.image.as_ref().map(|i| Enclosure {
            url: i.url.to_string(),
            length: i.length.to_string(),
            mime_type: i.mime.clone(),
        }),
        ..Item::default()
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
        let items: Vec<Item> = spec.articles.iter().map(|a| item(a, &config)).collect();
        let whole = write_channel(&spec, &config, items).unwrap();
        assert_eq!(
            String::from_utf8(chunked).unwrap(),
            String::from_utf8(whole).unwrap()
        );
    }
}
