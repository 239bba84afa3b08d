//! Handlebars templates for pages and mail. herald carries its own copies
//! (the files in `templates/`, built into the binary); a site owner
//! overrides any of them by putting a file of the same name in the
//! directory named by `templates_dir`. At load (`herald run` and `herald
//! check` alike) every template must parse, its includes must not loop
//! ([`includes`]), and every template herald renders must render its
//! sample data ([`samples`]) in strict mode, so that a name that does not
//! exist stops herald at start, with the file and line, rather than failing
//! each page view or send. A file in `templates_dir` that is not the name of
//! a template is reported (a misspelt override would be ignored otherwise).
//!
//! HTML templates escape every `{{value}}` (only `{{{triple}}}` inserts
//! trusted HTML); `.txt` templates and subjects are written as they are.
//!
//! The digest: `digest.html` (in the partial block `digest_layout.html`,
//! one `digest_article.html` per article) and `digest.txt` (one
//! `digest_article.txt` per article). Templates double as partials under
//! their own names: `{{> digest_article.txt number=1}}`. Helpers for every
//! template: `inc` (n + 1, for numbering from `@index`), `concat` (joins its
//! arguments) and `wrap` (plain text wrapped at `width`, 72 by default, the
//! first line led by `first`, the others by `indent`).

mod helpers;
mod includes;
mod samples;
pub mod skeleton;

use std::path::Path;

use anyhow::Context;
use handlebars::{Handlebars, RenderError, RenderErrorReason};
use serde::Serialize;

pub use includes::MAX_DEPTH;
pub use samples::{entry_samples, sample_digest};
pub use skeleton::{Piece, Skeleton};

use crate::base::text::escape_html;

/// Name (without `.hbs`) and built-in text of every template.
const BUILT_IN: &[(&str, &str)] = &[
    (
        "layout.html",
        include_str!("../../templates/layout.html.hbs"),
    ),
    ("feeds.html", include_str!("../../templates/feeds.html.hbs")),
    (
        "subscribe.html",
        include_str!("../../templates/subscribe.html.hbs"),
    ),
    (
        "message.html",
        include_str!("../../templates/message.html.hbs"),
    ),
    (
        "unsubscribe.html",
        include_str!("../../templates/unsubscribe.html.hbs"),
    ),
    (
        "preferences.html",
        include_str!("../../templates/preferences.html.hbs"),
    ),
    (
        "confirm.txt",
        include_str!("../../templates/confirm.txt.hbs"),
    ),
    (
        "confirm.html",
        include_str!("../../templates/confirm.html.hbs"),
    ),
    (
        "digest_layout.html",
        include_str!("../../templates/digest_layout.html.hbs"),
    ),
    (
        "digest_article.html",
        include_str!("../../templates/digest_article.html.hbs"),
    ),
    (
        "digest.html",
        include_str!("../../templates/digest.html.hbs"),
    ),
    (
        "digest_article.txt",
        include_str!("../../templates/digest_article.txt.hbs"),
    ),
    ("digest.txt", include_str!("../../templates/digest.txt.hbs")),
    (
        "archive.html",
        include_str!("../../templates/archive.html.hbs"),
    ),
    (
        "announcement.html",
        include_str!("../../templates/announcement.html.hbs"),
    ),
    (
        "announcement.txt",
        include_str!("../../templates/announcement.txt.hbs"),
    ),
];

/// Partial names that are another name of a template: the pages use
/// `{{#> layout}}`, which is `layout.html`.
const ALIASES: &[(&str, &str)] = &[("layout", "layout.html")];

/// Column at which `wrap` breaks lines unless told otherwise; a comfortable
/// width in every plain-text mail client.
pub const TEXT_WIDTH: usize = 72;

#[derive(Debug)]
pub struct Templates {
    /// Every template, escaping values for HTML.
    html: Handlebars<'static>,
    /// The same templates with no escaping, for `.txt` ones and subjects.
    plain: Handlebars<'static>,
    /// What the operator should hear about but that does not stop herald.
    warnings: Vec<String>,
}

impl Templates {
    /// The built-in templates, each replaced by `<dir>/<name>.hbs` where that
    /// file exists; checked as the module docs say.
    pub fn load(dir: Option<&Path>) -> anyhow::Result<Templates> {
        let mut html = registry();
        html.register_escape_fn(escape_html);
        let mut plain = registry();
        plain.register_escape_fn(handlebars::no_escape);
        let mut origins = Vec::with_capacity(BUILT_IN.len());
        let mut includes = includes::Includes::default();
        for (name, built_in) in BUILT_IN {
            let file = dir
                .map(|d| d.join(format!("{name}.hbs")))
                .filter(|p| p.is_file());
            let (text, origin) = match &file {
                Some(path) => (
                    std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read template {}", path.display()))?,
                    path.display().to_string(),
                ),
                None => (built_in.to_string(), format!("built-in {name}.hbs")),
            };
            for registry in [&mut html, &mut plain] {
                for (alias, real) in ALIASES {
                    if real == name {
                        registry
                            .register_partial(alias, &text)
                            .map_err(|e| anyhow::anyhow!("template {origin}: {e}"))?;
                    }
                }
                registry
                    .register_template_string(name, &text)
                    .map_err(|e| anyhow::anyhow!("template {origin}: {e}"))?;
            }
            let parsed = handlebars::Template::compile(&text)
                .map_err(|e| anyhow::anyhow!("template {origin}: {e}"))?;
            includes
                .add(name, &parsed, ALIASES)
                .map_err(|e| anyhow::anyhow!("template {origin}: {e}"))?;
            origins.push((*name, origin));
        }
        // Before anything is rendered: a loop of includes would overflow
        // the stack.
        includes.check().map_err(|e| match dir {
            Some(d) => anyhow::anyhow!("{e} (overrides in {})", d.display()),
            None => anyhow::anyhow!("{e}"),
        })?;
        let warnings = dir.map(unknown_files).unwrap_or_default();
        let templates = Templates {
            html,
            plain,
            warnings,
        };
        let origin_of = |name: &str| {
            let real = ALIASES
                .iter()
                .find(|(alias, _)| *alias == name)
                .map_or(name, |(_, real)| real);
            origins
                .iter()
                .find(|(n, _)| *n == real)
                .map_or(format!("{name}.hbs"), |(_, o)| o.clone())
        };
        for (name, variants) in samples::entry_samples() {
            for sample in &variants {
                let registry = templates.registry_for(name);
                if let Err(e) = registry.render(name, sample) {
                    let at = e.template_name.as_deref().unwrap_or(name);
                    let fields = sample
                        .as_object()
                        .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
                        .unwrap_or_default();
                    anyhow::bail!(
                        "template {}: {} (checked by rendering {name} with sample data; its data has: {fields}; see \"Templates\" in the README)",
                        origin_of(at),
                        describe(&e),
                    );
                }
            }
        }
        Ok(templates)
    }

    /// Problems that do not stop herald, such as a file in the templates
    /// folder that is no template's name.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn registry_for(&self, name: &str) -> &Handlebars<'static> {
        if name.ends_with(".txt") {
            &self.plain
        } else {
            &self.html
        }
    }

    /// HTML templates escape every value; `.txt` ones do not.
    pub fn render(&self, name: &str, data: &impl Serialize) -> anyhow::Result<String> {
        self.registry_for(name)
            .render(name, data)
            .map_err(|e| anyhow::anyhow!("rendering template {name}: {}", describe(&e)))
    }

    /// Renders a one-line template given as text, such as a digest's
    /// subject from the config (`"{{site.title}}: {{count}} new articles"`),
    /// without HTML escaping. Line breaks and runs of white space become
    /// single spaces, so a value can never start another header line; an
    /// empty result is an error.
    pub fn render_subject(
        &self,
        template_text: &str,
        data: &impl Serialize,
    ) -> anyhow::Result<String> {
        let raw = self
            .plain
            .render_template(template_text, data)
            .map_err(|e| anyhow::anyhow!("subject template {template_text:?}: {}", describe(&e)))?;
        let subject = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        anyhow::ensure!(
            !subject.is_empty(),
            "subject template {template_text:?} renders an empty subject"
        );
        Ok(subject)
    }

    /// Checks a subject template at start: it must parse, and render
    /// [`sample_digest`] (so it names only fields a digest has) to a
    /// non-empty line.
    pub fn check_subject(&self, template_text: &str) -> anyhow::Result<()> {
        handlebars::Template::compile(template_text)
            .map_err(|e| anyhow::anyhow!("subject template {template_text:?}: {e}"))?;
        self.render_subject(template_text, &sample_digest())
            .map(drop)
    }
}

/// A render error in one line: where (template, line and column) and what.
/// Handlebars' own text says the reason twice (its message, then its
/// source) and in Rust's debug notation (`Some("subscriber.name")`).
fn describe(e: &RenderError) -> String {
    let what = match e.reason() {
        RenderErrorReason::MissingVariable(Some(path)) => {
            format!("`{path}` is not a field of the data this template gets")
        }
        RenderErrorReason::MissingVariable(None) => {
            "names a field that is not in the data this template gets".to_string()
        }
        other => other.to_string(),
    };
    match (&e.template_name, e.line_no, e.column_no) {
        (Some(t), Some(line), Some(col)) => format!("\"{t}\" line {line}, column {col}: {what}"),
        (Some(t), _, _) => format!("\"{t}\": {what}"),
        _ => what,
    }
}

/// A warning for each file in the templates folder that is no template's
/// `<name>.hbs`: a misspelt override (`digset.txt.hbs`) would otherwise be
/// ignored without a word.
fn unknown_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let known: Vec<String> = BUILT_IN.iter().map(|(n, _)| format!("{n}.hbs")).collect();
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && !known.contains(n))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            format!(
                "{}: not a template herald knows, so it is not used (the names are: {})",
                dir.join(n).display(),
                known.join(", ")
            )
        })
        .collect()
}

/// A registry with herald's settings and helpers, escaping not yet chosen.
fn registry() -> Handlebars<'static> {
    let mut r = Handlebars::new();
    r.set_strict_mode(true);
    r.register_helper("inc", Box::new(helpers::inc));
    r.register_helper("concat", Box::new(helpers::concat));
    r.register_helper("wrap", Box::new(helpers::wrap));
    r
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn built_in_templates_render_and_escape() {
        let t = Templates::load(None).unwrap();
        let html = t
            .render(
                "message.html",
                &serde_json::json!({"language": "en", "site_title": "<Site>", "title": "T", "kind": "ok", "message": "<b>x</b>", "link": null}),
            )
            .unwrap();
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt;"), "{html}");
        assert!(html.contains("&lt;Site&gt;"));
    }

    #[test]
    fn an_override_replaces_a_template_and_a_broken_one_names_its_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("confirm.txt.hbs"), "Confirm: {{{link}}}\n").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let out = t
            .render(
                "confirm.txt",
                &serde_json::json!({"link": "https://x/?a=1&b=2"}),
            )
            .unwrap();
        assert_eq!(out, "Confirm: https://x/?a=1&b=2\n");
        std::fs::write(
            dir.path().join("message.html.hbs"),
            "line one\nline two {{name}\n",
        )
        .unwrap();
        let err = format!("{:#}", Templates::load(Some(dir.path())).unwrap_err());
        assert!(err.contains("message.html.hbs"), "{err}");
        assert!(err.contains("\"message.html\":2:"), "names the line: {err}");
    }

    /// Digest data with hostile values where subscribers and authors can put
    /// text.
    fn digest_fixture() -> Value {
        let mut d = sample_digest();
        d["subscriber"]["email"] = "\"<script>alert(1)</script>\"@example.net".into();
        d["count"] = 2.into();
        d["articles"] = serde_json::json!([
            {
                "title": "Fish & <Chips>",
                "url": "https://example.org/posts/fish/?a=1&b=2",
                "date": "28 November 2026",
                "date_iso": "2026-11-28T09:00:00+00:00",
                "authors": "Ann Author, Bob",
                "summary": "Frying <b>well</b> & quickly.",
                "content_html": "<p>Trusted <em>HTML</em> body.</p>",
                "content_text": "Trusted HTML body.",
                "image": null,
                "tags": [{"name": "Food & Drink", "url": "https://example.org/tags/food/"}]
            },
            {
                "title": "Second",
                "url": "https://example.org/posts/second/",
                "date": "27 November 2026",
                "date_iso": "2026-11-27T09:00:00+00:00",
                "authors": "",
                "summary": "Second summary.",
                "content_html": "<p>Second body.</p>",
                "content_text": "Second body.",
                "image": {"url": "https://example.org/a.png", "alt": "A \"quoted\" chart"},
                "tags": []
            }
        ]);
        d
    }

    #[test]
    fn the_digest_escapes_what_subscribers_and_authors_wrote_but_not_trusted_html() {
        let t = Templates::load(None).unwrap();
        let mut data = digest_fixture();
        let html = t.render("digest.html", &data).unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;@example.net"));
        assert!(html.contains(">Fish &amp; &lt;Chips&gt;</a>"), "{html}");
        assert!(html.contains("href=\"https://example.org/posts/fish/?a=1&amp;b=2\""));
        assert!(html.contains("Frying &lt;b&gt;well&lt;/b&gt; &amp; quickly."));
        assert!(html.contains("#Food &amp; Drink</a>"));
        assert!(html.contains("alt=\"A &quot;quoted&quot; chart\""));
        assert!(!html.contains("Trusted"), "summary mode shows no content");
        assert!(html.contains("href=\"#article-2\"") && html.contains("id=\"article-2\""));

        data["full_content"] = true.into();
        let html = t.render("digest.html", &data).unwrap();
        assert!(
            html.contains("<p>Trusted <em>HTML</em> body.</p>"),
            "{html}"
        );
        assert!(!html.contains("Frying"), "full mode shows no summary");

        // Text is written as it is: no entities in a plain-text part.
        let text = t.render("digest.txt", &data).unwrap();
        assert!(text.contains("1. Fish & <Chips>\n"), "{text}");
        assert!(text.contains("\"<script>alert(1)</script>\"@example.net"));
        assert!(text.contains("\nhttps://example.org/posts/fish/?a=1&b=2\n"));
        assert!(text.contains("\nTrusted HTML body.\n") && !text.contains("Frying"));
        data["full_content"] = false.into();
        let text = t.render("digest.txt", &data).unwrap();
        assert!(text.contains("\nFrying <b>well</b> & quickly.\n") && !text.contains("Trusted"));
    }

    #[test]
    fn an_empty_postal_address_leaves_no_trace() {
        let t = Templates::load(None).unwrap();
        let mut data = digest_fixture();
        let with = t.render("digest.txt", &data).unwrap();
        assert!(
            with.ends_with("\n\nExample Ltd\n1 Main Street\nSpringfield\n"),
            "{with}"
        );
        let html = t.render("digest.html", &data).unwrap();
        assert!(html.contains("Example Ltd<br>1 Main Street<br>Springfield</p>"));
        data["postal_address"] = serde_json::json!([]);
        let without = t.render("digest.txt", &data).unwrap();
        assert!(
            without.ends_with("Feed: https://example.org/atom.xml\n"),
            "{without}"
        );
        let html = t.render("digest.html", &data).unwrap();
        assert!(!html.contains("<br>") && !html.contains("<p style=\"margin:0;\"></p>"));
    }

    #[test]
    fn the_digest_text_can_be_replaced_and_a_broken_partial_names_its_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("digest.txt.hbs"),
            "{{count}} for {{subscriber.email}}: {{#each articles}}{{> digest_article.txt number=(inc @index)}}{{/each}}",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("digest_article.txt.hbs"),
            "[{{number}}] {{title}} ",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let text = t.render("digest.txt", &digest_fixture()).unwrap();
        assert_eq!(
            text,
            "2 for \"<script>alert(1)</script>\"@example.net: [1] Fish & <Chips> [2] Second "
        );
        // The built-in HTML is untouched by a text override.
        assert!(t
            .render("digest.html", &digest_fixture())
            .unwrap()
            .contains("<!doctype html>"));

        std::fs::write(
            dir.path().join("digest_article.html.hbs"),
            "<p>\n{{title}</p>\n",
        )
        .unwrap();
        let err = format!("{:#}", Templates::load(Some(dir.path())).unwrap_err());
        assert!(err.contains("digest_article.html.hbs"), "{err}");
        assert!(
            err.contains("\"digest_article.html\":2:"),
            "names the line: {err}"
        );
    }

    #[test]
    fn a_digest_template_naming_an_unknown_field_fails_at_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("digest_article.html.hbs"),
            "<p>{{title}}</p>\n<p>{{subtitle}}</p>\n",
        )
        .unwrap();
        let err = format!("{:#}", Templates::load(Some(dir.path())).unwrap_err());
        assert!(err.contains("digest_article.html"), "{err}");
        assert!(err.contains("subtitle"), "{err}");
    }

    #[test]
    fn a_page_naming_an_unknown_field_fails_at_load_saying_so_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("subscribe.html.hbs"),
            "{{#> layout title=\"Subscribe\"}}\n<h1>{{site.nmae}}</h1>\n{{/layout}}\n",
        )
        .unwrap();
        let err = format!("{:#}", Templates::load(Some(dir.path())).unwrap_err());
        assert!(err.contains("subscribe.html.hbs"), "{err}");
        assert!(err.contains("line 2"), "{err}");
        assert_eq!(err.matches("site.nmae").count(), 1, "{err}");
        assert!(!err.contains("Some("), "{err}");
        assert!(
            err.contains("site_title"),
            "lists the fields there are: {err}"
        );
        // And at render time, one line too.
        let t = Templates::load(None).unwrap();
        let err = format!(
            "{:#}",
            t.render("digest.txt", &serde_json::json!({})).unwrap_err()
        );
        assert_eq!(err.matches("site.title").count(), 1, "{err}");
    }

    #[test]
    fn a_misnamed_override_is_a_warning_naming_the_known_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("digset.txt.hbs"), "{{count}}").unwrap();
        std::fs::write(dir.path().join(".gitkeep"), "").unwrap();
        std::fs::write(dir.path().join("digest.txt.hbs"), "{{count}}").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        assert_eq!(t.warnings().len(), 1, "{:?}", t.warnings());
        let w = &t.warnings()[0];
        assert!(
            w.contains("digset.txt.hbs") && w.contains("digest.txt.hbs"),
            "{w}"
        );
    }

    #[test]
    fn subjects_render_on_one_line_without_escaping() {
        let t = Templates::load(None).unwrap();
        let mut data = digest_fixture();
        data["site"]["title"] = "Fish &\r\n  <Chips>".into();
        let subject = t
            .render_subject("{{site.title}}:\n{{count}} new articles", &data)
            .unwrap();
        assert_eq!(subject, "Fish & <Chips>: 2 new articles");
        t.check_subject("{{site.title}}: {{count}} new {{digest.name}}")
            .unwrap();
        let err = format!("{:#}", t.check_subject("{{site.title").unwrap_err());
        assert!(err.contains("subject template"), "{err}");
        let err = format!("{:#}", t.check_subject("{{site.name}} digest").unwrap_err());
        assert!(err.contains("site.name"), "{err}");
        let err = format!(
            "{:#}",
            t.check_subject("{{#if false}}x{{/if}} ").unwrap_err()
        );
        assert!(err.contains("empty"), "{err}");
    }
}
