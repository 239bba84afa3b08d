//! Links from one article to another (`{% link %}`, `{% post_url %}`,
//! Hugo's `ref`/`relref`, Zola's `@/` links), left as markers by
//! [`super::template_tags`], become the other article's permalink once every
//! article of the build is known. A target that is not an article gets the
//! URL its generator would give it by default, with a note.

use std::collections::HashMap;
use std::sync::Arc;

use url::Url;

use super::template_tags::MARKER;
use super::{Article, SourceFile};

/// Where each article can be found by the names links use for it.
struct Index<'a> {
    /// `posts/a.md`
    by_source: HashMap<&'a str, &'a Url>,
    /// `posts/a` (no extension), `a` (stem), `bundle` (a bundle's folder).
    by_name: HashMap<&'a str, Option<&'a Url>>,
}

impl<'a> Index<'a> {
    fn new(articles: &'a [(Arc<Article>, &'a SourceFile)]) -> Index<'a> {
        let mut by_source = HashMap::new();
        let mut by_name: HashMap<&str, Option<&Url>> = HashMap::new();
        let mut add = |name: &'a str, url: &'a Url| {
            by_name
                .entry(name)
                // The same short name for two articles names neither.
                .and_modify(|u| {
                    if *u != Some(url) {
                        *u = None
                    }
                })
                .or_insert(Some(url));
        };
        for (a, f) in articles {
            by_source.insert(f.rel.as_str(), &a.url);
            let no_ext = f.rel.rsplit_once('.').map(|(s, _)| s).unwrap_or(&f.rel);
            add(no_ext, &a.url);
            add(f.stem(), &a.url);
            if f.stem() == "index" {
                // A bundle by its folder: `posts/trip` and `trip`.
                add(f.section(), &a.url);
                add(f.name_for_slug(), &a.url);
            }
        }
        Index { by_source, by_name }
    }

    fn find(&self, kind: &str, target: &str) -> Option<&'a Url> {
        let t = target.trim_start_matches("./").trim_start_matches('/');
        if let Some(u) = self.by_source.get(t) {
            return Some(u);
        }
        if kind == "link" {
            // `{% link %}` paths are relative to the Jekyll site, which may
            // hold the content directory (`blog/_posts/…`) or sit inside it.
            if let Some(u) = self
                .by_source
                .iter()
                .find(|(src, _)| t.ends_with(&format!("/{src}")) || src.ends_with(&format!("/{t}")))
                .map(|(_, u)| *u)
            {
                return Some(u);
            }
        }
        let name = t.trim_end_matches('/');
        let name = name.rsplit_once('.').map(|(s, _)| s).unwrap_or(name);
        let last = name.rsplit('/').next().unwrap_or(name);
        self.by_name
            .get(name)
            .or_else(|| self.by_name.get(last))
            .copied()
            .flatten()
    }
}

/// What a target that is not an article links to: the URL its generator
/// gives such a file by default.
fn fallback(kind: &str, target: &str, base: &Url) -> Url {
    let t = target.trim_start_matches('/');
    let stem = t.rsplit_once('.').map(|(s, _)| s).unwrap_or(t);
    let path = match kind {
        // Jekyll: collection `_docs/x.md` -> `/docs/x.html`, page -> `/x.html`.
        "link" => format!("{}.html", stem.trim_start_matches('_')),
        "post_url" => String::new(),
        _ => format!(
            "{}/",
            stem.trim_end_matches("/index").trim_end_matches("/_index")
        ),
    };
    base.join(&path).unwrap_or_else(|_| base.clone())
}

/// Replaces the markers in every article that has some, noting each
/// target that is not an article.
pub fn resolve(
    articles: &mut [(Arc<Article>, &SourceFile)],
    base: &Url,
    warnings: &mut Vec<String>,
) {
    if !articles.iter().any(|(a, _)| a.has_refs) {
        return;
    }
    let resolved: Vec<(usize, Article, Vec<String>)> = {
        let index = Index::new(articles);
        articles
            .iter()
            .enumerate()
            .filter(|(_, (a, _))| a.has_refs)
            .map(|(i, (a, f))| {
                let mut notes = Vec::new();
                let mut lookup = |kind: &str, target: &str| -> String {
                    match index.find(kind, target) {
                        Some(u) => u.to_string(),
                        None => {
                            let u = fallback(kind, target, base);
                            notes.push(format!(
                                "{}: link to `{target}` ({kind}): no article there; linked to {u}",
                                f.abs.display()
                            ));
                            u.to_string()
                        }
                    }
                };
                let mut new = Article::clone(a);
                new.content_html = replace_markers(&a.content_html, &mut lookup);
                new.summary = replace_markers(&a.summary, &mut lookup);
                new.has_refs = false;
                notes.dedup();
                (i, new, notes)
            })
            .collect()
    };
    for (i, new, notes) in resolved {
        warnings.extend(notes);
        articles[i].0 = Arc::new(new);
    }
}

fn replace_markers(text: &str, lookup: &mut dyn FnMut(&str, &str) -> String) -> String {
    if !text.contains(MARKER) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(MARKER) {
        out.push_str(&rest[..at]);
        let after = &rest[at + MARKER.len()..];
        let kind_end = after.find('/').unwrap_or(after.len());
        let kind = &after[..kind_end];
        let target_raw = &after[(kind_end + 1).min(after.len())..];
        let len = target_raw
            .find(|c: char| !(c.is_ascii_alphanumeric() || "%+-._*".contains(c)))
            .unwrap_or(target_raw.len());
        let target: String =
            url::form_urlencoded::parse(format!("t={}", &target_raw[..len]).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
        let (path, fragment) = match target.split_once('#') {
            Some((p, f)) => (p, Some(f)),
            None => (target.as_str(), None),
        };
        out.push_str(&lookup(kind, path));
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
        rest = &target_raw[len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::template_tags::marker;

    #[test]
    fn markers_become_urls_with_their_fragments() {
        let html = format!(
            "<a href=\"{}#v1\">a</a> <a href=\"{}\">b</a>",
            marker("link", "_posts/a.md"),
            marker("ref", "b.md#sec")
        );
        let mut seen = Vec::new();
        let out = replace_markers(&html, &mut |k, t| {
            seen.push(format!("{k}:{t}"));
            format!("https://e.org/{t}")
        });
        assert_eq!(
            out,
            "<a href=\"https://e.org/_posts/a.md#v1\">a</a> <a href=\"https://e.org/b.md#sec\">b</a>"
        );
        assert_eq!(seen, ["link:_posts/a.md", "ref:b.md"]);
    }

    #[test]
    fn targets_that_are_not_articles_get_the_generators_default_url() {
        let base = Url::parse("https://example.org/").unwrap();
        assert_eq!(
            fallback("link", "_docs/history.md", &base).as_str(),
            "https://example.org/docs/history.html"
        );
        assert_eq!(
            fallback("zola", "inside-rust/a/index.md", &base).as_str(),
            "https://example.org/inside-rust/a/"
        );
    }
}
