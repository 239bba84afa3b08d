//! Template tags in article bodies, which static-site generators run and
//! feeds must never show: Jekyll's Liquid (`{% link %}`, `{{ site.url }}`,
//! `{% raw %}`), Hugo's shortcodes (`{{< ref >}}`, `{{% note %}}`) and
//! Zola's (`{{ youtube(id="…") }}`, `@/` links). Links to other articles
//! become markers that [`super::links`] resolves once every article's URL
//! is known; `{{ site.<name> }}` and `{{< param >}}` come from
//! `content.variables`; highlight blocks become fenced code; text in
//! `{% raw %}` is kept verbatim; every other tag is removed (its content
//! kept) and named in one note per file.

use std::collections::BTreeMap;

use url::Url;

use crate::config::TemplateTags;

/// The start of a marker URL standing for a link to another article:
/// `<MARKER><kind>/<target, percent-encoded>`. `.invalid` is reserved
/// (RFC 2606), so no real link starts this way.
pub const MARKER: &str = "https://herald.invalid/ref/";

/// What the expansion needs besides the text.
pub struct TagContext<'a> {
    pub site: &'a Url,
    pub variables: &'a BTreeMap<String, String>,
    /// The article's own front-matter values, for `{{ page.<key> }}`.
    pub page: &'a dyn Fn(&str) -> Option<String>,
}

/// The syntaxes to look for in one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    liquid: bool,
    hugo: bool,
    zola: bool,
}

impl Dialect {
    /// `auto`: Liquid in files with YAML front matter (Jekyll), Zola's
    /// syntax in files with TOML front matter; Hugo's shortcodes, whose
    /// syntax no one else uses, everywhere.
    pub fn of(setting: TemplateTags, yaml: bool, toml: bool) -> Dialect {
        let (liquid, hugo, zola) = match setting {
            TemplateTags::Auto => (yaml, true, toml),
            TemplateTags::Liquid => (true, false, false),
            TemplateTags::Hugo => (false, true, false),
            TemplateTags::Zola => (false, false, true),
            TemplateTags::None => (false, false, false),
        };
        Dialect { liquid, hugo, zola }
    }
}

/// The body with its template tags handled.
pub struct Expanded {
    pub text: String,
    /// Tags removed, as written in short (`{% for %}`), each once.
    pub removed: Vec<String>,
    /// Links to other articles were turned into markers.
    pub has_refs: bool,
}

impl Expanded {
    /// One note naming what was removed, if anything was.
    pub fn note(&self) -> Option<String> {
        if self.removed.is_empty() {
            return None;
        }
        let shown: Vec<&str> = self.removed.iter().take(6).map(String::as_str).collect();
        let more = self.removed.len().saturating_sub(shown.len());
        Some(format!(
            "removed template tags a site generator would have run: {}{}",
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ))
    }
}

pub fn marker(kind: &str, target: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(target.trim().as_bytes()).collect();
    format!("{MARKER}{kind}/{encoded}")
}

/// Handles every template tag of `dialect` in `body`.
pub fn expand(body: &str, dialect: Dialect, ctx: &TagContext<'_>) -> Expanded {
    let mut out = Expanded {
        text: String::with_capacity(body.len()),
        removed: Vec::new(),
        has_refs: false,
    };
    if !(body.contains("{%") || body.contains("{{") || body.contains("](@/")) {
        out.text.push_str(body);
        return out;
    }
    let mut rest = body;
    while let Some(at) = next_open(rest) {
        out.text.push_str(&rest[..at]);
        rest = &rest[at..];
        let consumed = if rest.starts_with("](@/") && dialect.zola {
            // Zola's internal links: `[text](@/blog/post.md)`.
            let end = rest[4..]
                .find([')', ' ', '#'])
                .map(|e| e + 4)
                .unwrap_or(rest.len());
            (end > 4).then(|| {
                out.text.push_str("](");
                out.text.push_str(&marker("zola", &rest[4..end]));
                out.has_refs = true;
                end
            })
        } else if dialect.hugo && (rest.starts_with("{{<") || rest.starts_with("{{%")) {
            hugo(rest, ctx, &mut out)
        } else if dialect.liquid && rest.starts_with("{%") {
            liquid_tag(rest, &mut out)
        } else if dialect.liquid && rest.starts_with("{{") {
            liquid_output(rest, ctx, &mut out)
        } else if dialect.zola && (rest.starts_with("{{") || rest.starts_with("{%")) {
            zola(rest, &mut out)
        } else {
            None
        };
        match consumed {
            Some(n) => rest = &rest[n..],
            None => {
                // Not a tag of this dialect: keep the two characters.
                let n = if rest.starts_with("](") {
                    2
                } else {
                    2.min(rest.len())
                };
                out.text.push_str(&rest[..n]);
                rest = &rest[n..];
            }
        }
    }
    out.text.push_str(rest);
    out
}

fn next_open(s: &str) -> Option<usize> {
    ["{%", "{{", "](@/"].iter().filter_map(|p| s.find(p)).min()
}

fn remember(out: &mut Expanded, shown: String) {
    if !out.removed.contains(&shown) {
        out.removed.push(shown);
    }
}

/// Where `close` starts in `s`, which starts with `open`: looked for after
/// the opening, so that `{%}` or `{{%}}` is not taken for a closed tag.
fn close_of(s: &str, open: &str, close: &str) -> Option<usize> {
    s.get(open.len()..)?.find(close).map(|e| e + open.len())
}

/// `{% name args %}` at the start of `s`: (name, args, length).
fn split_tag<'a>(s: &'a str, open: &str, close: &str) -> Option<(&'a str, &'a str, usize)> {
    let end = close_of(s, open, close)?;
    let inner = s[open.len()..end].trim_matches('-').trim();
    let (name, args) = inner.split_once(char::is_whitespace).unwrap_or((inner, ""));
    Some((name, args.trim(), end + close.len()))
}

/// The end of a block: the position of `{% <end> %}` (any spacing or
/// whitespace control) in `s` and the length of that tag.
fn find_end(s: &str, open: &str, close: &str, end: &str) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(i) = s[from..].find(open) {
        let at = from + i;
        if let Some((name, _, len)) = split_tag(&s[at..], open, close) {
            if name == end {
                return Some((at, len));
            }
        }
        from = at + open.len();
    }
    None
}

fn fence(out: &mut Expanded, lang: &str, code: &str) {
    out.text.push_str("\n\n```");
    out.text.push_str(lang);
    out.text.push('\n');
    out.text.push_str(code.trim_matches('\n'));
    out.text.push_str("\n```\n");
}

fn liquid_tag(s: &str, out: &mut Expanded) -> Option<usize> {
    let (name, args, len) = split_tag(s, "{%", "%}")?;
    let after = &s[len..];
    match name {
        "raw" => {
            let (at, end_len) = find_end(after, "{%", "%}", "endraw")?;
            out.text.push_str(&after[..at]);
            Some(len + at + end_len)
        }
        "comment" => {
            let (at, end_len) = find_end(after, "{%", "%}", "endcomment")?;
            Some(len + at + end_len)
        }
        "highlight" => {
            let (at, end_len) = find_end(after, "{%", "%}", "endhighlight")?;
            let lang = args.split_whitespace().next().unwrap_or("");
            fence(out, lang, &after[..at]);
            Some(len + at + end_len)
        }
        "link" | "post_url" if !args.is_empty() => {
            out.text.push_str(&marker(name, args));
            out.has_refs = true;
            Some(len)
        }
        _ => {
            remember(out, format!("{{% {name} %}}"));
            Some(len)
        }
    }
}

fn liquid_output(s: &str, ctx: &TagContext<'_>, out: &mut Expanded) -> Option<usize> {
    let end = close_of(s, "{{", "}}")?;
    let inner = s[2..end].trim_matches('-').trim();
    let mut parts = inner.split('|').map(str::trim);
    let head = parts.next().unwrap_or("");
    let filters: Vec<&str> = parts.collect();
    let value = if let Some(lit) = head
        .strip_prefix('"')
        .and_then(|h| h.strip_suffix('"'))
        .or_else(|| head.strip_prefix('\'').and_then(|h| h.strip_suffix('\'')))
    {
        Some(lit.to_string())
    } else if let Some(name) = head.strip_prefix("site.") {
        site_value(name, ctx)
    } else if let Some(name) = head.strip_prefix("page.") {
        (ctx.page)(name)
    } else {
        None
    };
    let value = value.and_then(|v| {
        filters.iter().try_fold(v, |v, f| match *f {
            "relative_url" | "absolute_url" => ctx
                .site
                .join(v.trim_start_matches('/'))
                .ok()
                .map(|u| u.to_string()),
            "escape" | "xml_escape" | "strip" => Some(v),
            _ => None,
        })
    });
    match value {
        Some(v) => out.text.push_str(&v),
        None => remember(out, format!("{{{{ {inner} }}}}")),
    }
    Some(end + 2)
}

/// `site.url` and `site.baseurl` from `site.base_url`, others from
/// `content.variables`.
fn site_value(name: &str, ctx: &TagContext<'_>) -> Option<String> {
    match name {
        "url" => Some(ctx.site.origin().ascii_serialization()),
        "baseurl" => Some(ctx.site.path().trim_end_matches('/').to_string()),
        _ => ctx.variables.get(name).cloned(),
    }
}

/// A shortcode at the start of `s` between `open` and `close`: its inner
/// text and the length of the whole, or `Err(length)` when it was written
/// as `{{</* … */>}}` (`{{/* … */}}` in Zola) to show a shortcode as text,
/// which is then written to `out` without the comment marks.
fn shortcode<'a>(
    s: &'a str,
    open: &str,
    close: &str,
    out: &mut Expanded,
) -> Option<Result<(&'a str, usize), usize>> {
    let end = close_of(s, open, close)?;
    let inner = s[open.len()..end].trim();
    let len = end + close.len();
    if let Some(shown) = inner.strip_prefix("/*").and_then(|i| i.strip_suffix("*/")) {
        out.text
            .push_str(&format!("{open} {} {close}", shown.trim()));
        return Some(Err(len));
    }
    Some(Ok((inner, len)))
}

fn hugo(s: &str, ctx: &TagContext<'_>, out: &mut Expanded) -> Option<usize> {
    let (open, close) = if s.starts_with("{{<") {
        ("{{<", ">}}")
    } else {
        ("{{%", "%}}")
    };
    let (inner, len) = match shortcode(s, open, close, out)? {
        Ok(found) => found,
        Err(shown) => return Some(shown),
    };
    let (name, args) = inner.split_once(char::is_whitespace).unwrap_or((inner, ""));
    let arg = args.trim().trim_matches('"').trim_matches('`');
    match name {
        "ref" | "relref" if !arg.is_empty() => {
            out.text.push_str(&marker("ref", arg));
            out.has_refs = true;
        }
        "param" if ctx.variables.contains_key(arg) => out.text.push_str(&ctx.variables[arg]),
        "highlight" => {
            let after = &s[len..];
            let end_tag = format!("{open} /highlight {close}");
            if let Some(at) = after.find(&end_tag) {
                fence(
                    out,
                    arg.split_whitespace().next().unwrap_or(""),
                    &after[..at],
                );
                return Some(len + at + end_tag.len());
            }
            remember(out, format!("{open} highlight {close}"));
        }
        n => {
            let n = n.trim_start_matches('/');
            remember(out, format!("{open} {n} {close}"));
        }
    }
    Some(len)
}

/// Zola's shortcodes: `{{ name(args) }}`, `{% name(args) %}…{% end %}`,
/// and `{{/* … */}}` to show one as text. Other `{{ }}` (a Rust
/// `{{closure}}` in a backtrace) is text.
fn zola(s: &str, out: &mut Expanded) -> Option<usize> {
    let (open, close) = if s.starts_with("{{") {
        ("{{", "}}")
    } else {
        ("{%", "%}")
    };
    let (inner, len) = match shortcode(s, open, close, out)? {
        Ok(found) => found,
        Err(shown) => return Some(shown),
    };
    let call = inner
        .split_once('(')
        .filter(|(name, rest)| {
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && rest.trim_end().ends_with(')')
        })
        .map(|(name, _)| name);
    match (call, inner) {
        (Some(name), _) => remember(out, format!("{open} {name}() {close}")),
        (None, "end") if open == "{%" => {}
        _ => return None,
    }
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: &str, dialect: Dialect) -> Expanded {
        let site = Url::parse("https://example.org/blog/").unwrap();
        let vars = BTreeMap::from([(
            "repository".to_string(),
            "https://github.com/jekyll/jekyll".to_string(),
        )]);
        let page = |k: &str| (k == "version").then(|| "3.9.3".to_string());
        expand(
            body,
            dialect,
            &TagContext {
                site: &site,
                variables: &vars,
                page: &page,
            },
        )
    }

    fn liquid() -> Dialect {
        Dialect::of(TemplateTags::Liquid, true, false)
    }

    #[test]
    fn liquid_values_links_and_raw() {
        let e = run(
            "See {{ site.repository }}/issues, [v]({% link _posts/2017-01-18-a.markdown %}#x), {% raw %}{{ page.title }} {% raw %}{% endraw %}, {{ page.version }} at {{ \"/docs/\" | relative_url }}.",
            liquid(),
        );
        assert_eq!(
            e.text,
            format!(
                "See https://github.com/jekyll/jekyll/issues, [v]({}#x), {{{{ page.title }}}} {{% raw %}}, 3.9.3 at https://example.org/blog/docs/.",
                marker("link", "_posts/2017-01-18-a.markdown")
            )
        );
        assert!(e.has_refs);
        assert!(e.note().is_none());
    }

    #[test]
    fn other_liquid_tags_are_removed_and_named_once() {
        let e = run(
            "{% assign xs = \"1|2\" | split: \"|\" %}{% for x in xs %}- #{{ x }}\n{% endfor %}{% for y in ys %}{% endfor %}",
            liquid(),
        );
        assert_eq!(e.text, "- #\n");
        assert_eq!(
            e.removed,
            ["{% assign %}", "{% for %}", "{{ x }}", "{% endfor %}"]
        );
        assert!(e.note().unwrap().contains("{% for %}"));
    }

    #[test]
    fn tags_that_close_inside_their_opening_are_text() {
        for dialect in [liquid(), Dialect::of(TemplateTags::Auto, false, true)] {
            for body in ["{%}", "{{%}}", "{{<>}}", "{{}}", "{%%}", "{{%", "](@/"] {
                let e = run(body, dialect);
                assert!(e.text.len() <= body.len(), "{body:?} -> {:?}", e.text);
            }
        }
    }

    #[test]
    fn highlight_blocks_become_fenced_code() {
        let e = run(
            "a\n{% highlight ruby %}\nputs 1\n{% endhighlight %}\nb",
            liquid(),
        );
        assert_eq!(e.text, "a\n\n\n```ruby\nputs 1\n```\n\nb");
        let e = run(
            "{{< highlight go >}}x := 1{{< /highlight >}}",
            Dialect::of(TemplateTags::Hugo, false, true),
        );
        assert_eq!(e.text, "\n\n```go\nx := 1\n```\n");
    }

    #[test]
    fn hugo_shortcodes_and_zola_links() {
        let e = run(
            "[a]({{< ref \"post.md\" >}}) {{% note %}}kept{{% /note %}} {{</* ref x */>}}",
            Dialect::of(TemplateTags::Auto, false, true),
        );
        assert_eq!(
            e.text,
            format!("[a]({}) kept {{{{< ref x >}}}}", marker("ref", "post.md"))
        );
        assert_eq!(e.removed, ["{{% note %}}"]);
        let e = run(
            "[p](@/inside-rust/a.md#q) {{closure}} {{ youtube(id=\"x\") }}",
            Dialect::of(TemplateTags::Auto, false, true),
        );
        assert_eq!(
            e.text,
            format!(
                "[p]({}#q) {{{{closure}}}} ",
                marker("zola", "inside-rust/a.md")
            )
        );
    }
}
