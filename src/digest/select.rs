//! Which articles go in one subscriber's digest: first seen (published by
//! herald) after their last digest and by the run's horizon, within the
//! digest's and their tag filters, newest first, at most `max_articles`.

use chrono::{DateTime, Utc};

use super::Published;
use crate::config::DigestConfig;
use crate::content::Article;

/// What is known of the recipient.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    /// Articles first seen after this are new to them.
    pub since: DateTime<Utc>,
    /// Their first digest of this schedule.
    pub first: bool,
    /// Tag slugs they chose; empty means all.
    pub tags: &'a [String],
}

/// Subscriber choices name tags by slug and sections as `section:<path>`
/// (a tag slug never holds `:`); an article matches any one of them.
pub const SECTION_CHOICE: &str = "section:";

fn matches(article: &Article, wanted: &[String]) -> bool {
    wanted.is_empty()
        || article.tags.iter().any(|t| wanted.contains(&t.slug))
        || wanted.iter().any(|w| {
            w.strip_prefix(SECTION_CHOICE)
                .is_some_and(|s| s.trim_matches('/') == article.section)
        })
}

/// The digest's own filter: its tags and its sections.
fn in_digest(article: &Article, digest: &DigestConfig) -> bool {
    (digest.tags.is_empty() && digest.sections.is_empty())
        || article.tags.iter().any(|t| digest.tags.contains(&t.slug))
        || digest
            .sections
            .iter()
            .any(|s| s.trim_matches('/') == article.section)
}

/// Indices into `published.articles` (newest first, as a catalog is) of
/// the articles for `reader`: first seen in `(since, horizon]`. A first
/// digest may also carry up to `first_digest_articles` of the latest
/// older articles. Drafts never appear.
pub fn select(
    published: &Published,
    digest: &DigestConfig,
    horizon: DateTime<Utc>,
    reader: Reader<'_>,
) -> Vec<usize> {
    let backfill = if reader.first {
        digest.first_digest_articles
    } else {
        0
    };
    let mut picked = Vec::new();
    for &i in published.by_first_seen() {
        let a = &published.articles[i];
        let seen = published.first_seen[i];
        if a.draft || seen > horizon {
            continue;
        }
        if !in_digest(a, digest) || !matches(a, reader.tags) {
            continue;
        }
        if seen <= reader.since && picked.len() >= backfill {
            // Latest first seen first: everything after this is old too.
            break;
        }
        picked.push(i);
    }
    // Newest first, as they are shown; the limit keeps the newest.
    picked.sort_unstable();
    picked.truncate(digest.max_articles);
    picked
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::content::Tag;

    fn article(id: &str, day: u32, tags: &[&str]) -> Arc<Article> {
        let published =
            chrono::DateTime::parse_from_rfc3339(&format!("2026-11-{day:02}T09:00:00+00:00"))
                .unwrap();
        Arc::new(Article {
            source: format!("{id}.md"),
            slug: id.into(),
            title: id.into(),
            url: format!("https://example.org/{id}/").parse().unwrap(),
            id: id.into(),
            published,
            updated: None,
            summary: String::new(),
            content_html: String::new(),
            authors: Vec::new(),
            tags: tags.iter().filter_map(|t| Tag::new(t)).collect(),
            language: None,
            image: None,
            draft: false,
            date_assigned: false,
            notes: Vec::new(),
            section: String::new(),
            has_refs: false,
        })
    }

    fn digest(extra: &str) -> DigestConfig {
        let text = format!(
            "[site]\ntitle = \"T\"\nbase_url = \"https://example.org/\"\nauthor = {{ name = \"A\" }}\n[[digest]]\nname = \"weekly\"\nschedule = \"0 0 8 * * Mon\"\n{extra}"
        );
        Config::parse(&text).unwrap().digest.remove(0)
    }

    fn at(day: u32) -> DateTime<Utc> {
        format!("2026-11-{day:02}T12:00:00Z").parse().unwrap()
    }

    /// Newest first, like a catalog; first seen at their dates.
    fn catalog() -> Published {
        dated(vec![
            article("future", 28, &["rust"]),
            article("e", 25, &["rust"]),
            article("d", 24, &["python"]),
            article("c", 23, &["rust", "python"]),
            article("b", 20, &[]),
            article("a", 10, &["rust"]),
        ])
    }

    #[test]
    fn digests_and_readers_can_be_limited_to_sections() {
        let in_section = |id: &str, day: u32, section: &str| {
            let mut a = Article::clone(&article(id, day, &[]));
            a.section = section.into();
            Arc::new(a)
        };
        let arts = dated(vec![
            in_section("inside", 25, "inside-rust"),
            in_section("root", 24, ""),
            article("tagged", 23, &["rust"]),
        ]);
        let all = Reader {
            since: at(1),
            first: false,
            tags: &[],
        };
        let d = digest("sections = [\"inside-rust\"]");
        assert_eq!(titles(&arts, &select(&arts, &d, at(26), all)), ["inside"]);
        let d = digest("sections = [\"/\"]\ntags = [\"rust\"]");
        assert_eq!(
            titles(&arts, &select(&arts, &d, at(26), all)),
            ["root", "tagged"]
        );
        let chosen = ["section:inside-rust".to_string()];
        let reader = Reader {
            tags: &chosen,
            ..all
        };
        assert_eq!(
            titles(&arts, &select(&arts, &digest(""), at(26), reader)),
            ["inside"]
        );
    }

    fn dated(articles: Vec<Arc<Article>>) -> Published {
        Published::dated(articles, at(28))
    }

    fn titles(p: &Published, picked: &[usize]) -> Vec<String> {
        picked.iter().map(|&i| p.articles[i].id.clone()).collect()
    }

    #[test]
    fn only_new_published_articles_newest_first() {
        let arts = catalog();
        let d = digest("");
        let reader = Reader {
            since: at(21),
            first: false,
            tags: &[],
        };
        assert_eq!(
            titles(&arts, &select(&arts, &d, at(26), reader)),
            ["e", "d", "c"]
        );
        // Nothing new: nothing at all.
        let reader = Reader {
            since: at(26),
            first: false,
            tags: &[],
        };
        assert!(select(&arts, &d, at(26), reader).is_empty());
    }

    #[test]
    fn tag_filters_of_digest_and_reader_both_apply() {
        let arts = catalog();
        let rust = vec!["rust".to_string()];
        let reader = Reader {
            since: at(1),
            first: false,
            tags: &rust,
        };
        assert_eq!(
            titles(&arts, &select(&arts, &digest(""), at(26), reader)),
            ["e", "c", "a"]
        );
        let d = digest("tags = [\"python\"]");
        assert_eq!(titles(&arts, &select(&arts, &d, at(26), reader)), ["c"]);
    }

    #[test]
    fn limit_and_first_digest_backfill() {
        let arts = catalog();
        let d = digest("max_articles = 2\nfirst_digest_articles = 3");
        let reader = Reader {
            since: at(26),
            first: true,
            tags: &[],
        };
        // Nothing is new, but a first digest carries the latest ones (up
        // to the maximum).
        assert_eq!(
            titles(&arts, &select(&arts, &d, at(26), reader)),
            ["e", "d"]
        );
        let reader = Reader {
            first: false,
            ..reader
        };
        assert!(select(&arts, &d, at(26), reader).is_empty());
    }

    #[test]
    fn drafts_never_appear() {
        let mut list = catalog().articles;
        Arc::make_mut(&mut list[1]).draft = true;
        let arts = dated(list);
        let reader = Reader {
            since: at(21),
            first: false,
            tags: &[],
        };
        assert_eq!(
            titles(&arts, &select(&arts, &digest(""), at(26), reader)),
            ["d", "c"]
        );
    }

    #[test]
    fn an_article_dated_before_the_last_digest_but_published_after_it_is_new() {
        // Dated the 20th, first seen on the 25th, after the digest of the
        // 24th; "b" is as old as it says.
        let (late, old) = (article("late", 20, &[]), article("b", 19, &[]));
        let p = Published::new(vec![late, old], vec![at(25), at(19)], at(27));
        let reader = Reader {
            since: at(24),
            first: false,
            tags: &[],
        };
        assert_eq!(
            titles(&p, &select(&p, &digest(""), at(26), reader)),
            ["late"]
        );
        // Not before the run's horizon reaches its first-seen time.
        assert!(select(&p, &digest(""), at(24), reader).is_empty());
    }
}
