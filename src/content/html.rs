//! Post-processing of article HTML: every URL attribute (`href`, `src`,
//! `srcset`, `poster`, `cite`, `action`, `data`, …) becomes absolute against
//! the article's URL, with non-ASCII percent-encoded (feed readers and mail
//! clients ignore `xml:base`), and active content that validators flag and
//! readers strip (`<script>`, `<embed>`, `<object>`, `<link>`, `<meta>`,
//! `<style>`, frames, `on*` handlers, `javascript:` URLs) is removed; an
//! `<iframe>` becomes a link to what it showed.

use lol_html::html_content::Element;
use lol_html::{element, rewrite_str, RewriteStrSettings};
use url::Url;

/// Attributes that hold one URL, on whatever element they appear (`<link
/// href>` pasted into a post too).
const URL_ATTRS: &[(&str, &str)] = &[
    ("[href]", "href"),
    ("[src]", "src"),
    ("[poster]", "poster"),
    ("[cite]", "cite"),
    ("[action]", "action"),
    ("[formaction]", "formaction"),
    ("[data]", "data"),
    ("[background]", "background"),
    ("[longdesc]", "longdesc"),
];

pub fn absolutize_and_clean(html: &str, base: &Url) -> Result<String, String> {
    if !html.contains('<') {
        return Ok(html.to_string());
    }
    // Inside <noscript> an HTML parser sees only text, so its images and
    // links would escape the pass below. Feeds carry no scripts, so the
    // fallback content is what readers should get: unwrap it first.
    let unwrapped;
    let html = if html.contains("<noscript") || html.contains("<iframe") {
        let settings = RewriteStrSettings::new()
            .append_element_content_handler(element!("noscript", |el| {
                el.remove_and_keep_content();
                Ok(())
            }))
            // Readers drop frames; a link keeps what it showed reachable.
            // Its URL is made absolute by the pass below.
            .append_element_content_handler(element!("iframe", |el| {
                match el.get_attribute("src").filter(|s| !s.trim().is_empty()) {
                    Some(src) => el.replace(
                        &format!("<a href=\"{src}\">{src}</a>"),
                        lol_html::html_content::ContentType::Html,
                    ),
                    None => el.remove(),
                }
                Ok(())
            }));
        unwrapped = rewrite_str(html, settings)
            .map_err(|e| format!("cannot process the article's HTML: {e}"))?;
        unwrapped.as_str()
    } else {
        html
    };
    let mut settings = RewriteStrSettings::new()
        // The elements the W3C validator calls a security risk in feed
        // content, and that readers strip anyway.
        .append_element_content_handler(element!(
            "script, embed, object, applet, link, meta, base, basefont, style, frame, frameset, noframes, param, head, title",
            |el| {
                el.remove();
                Ok(())
            }
        ))
        .append_element_content_handler(element!("*", |el| {
            strip_event_handlers(el);
            Ok(())
        }))
        .append_element_content_handler(element!("[srcset]", |el| {
            if let Some(v) = el.get_attribute("srcset") {
                el.set_attribute("srcset", &absolutize_srcset(&v, base))?;
            }
            Ok(())
        }));
    for &(selector, attr) in URL_ATTRS {
        settings = settings.append_element_content_handler(element!(selector, move |el| {
            if let Some(v) = el.get_attribute(attr) {
                match absolutize(&v, base) {
                    Some(abs) => el.set_attribute(attr, &abs)?,
                    None => el.remove_attribute(attr),
                }
            }
            Ok(())
        }));
    }
    rewrite_str(html, settings).map_err(|e| format!("cannot process the article's HTML: {e}"))
}

fn strip_event_handlers(el: &mut Element<'_, '_>) {
    let handlers: Vec<String> = el
        .attributes()
        .iter()
        .map(|a| a.name())
        .filter(|n| n.len() > 2 && n.starts_with("on"))
        .collect();
    for name in handlers {
        el.remove_attribute(&name);
    }
}

/// The attribute value made absolute, still entity-escaped for HTML;
/// `None` for script URLs, which are dropped.
fn absolutize(raw: &str, base: &Url) -> Option<String> {
    let decoded = decode_entities(raw);
    match resolve_url(&decoded, base)? {
        Ok(abs) => Some(abs.replace('&', "&amp;")),
        // Leave what cannot be parsed as the author wrote it.
        Err(()) => Some(raw.to_string()),
    }
}

/// Resolves a URL as written (not entity-escaped) against `base`.
/// `None` for `javascript:` and `vbscript:` URLs; `Some(Err(()))` for what
/// does not parse as a URL reference.
pub fn resolve_url(raw: &str, base: &Url) -> Option<Result<String, ()>> {
    let trimmed = raw.trim();
    if is_script_url(trimmed) {
        return None;
    }
    // Already absolute, plain and ASCII: nothing to do (the common case).
    // Anything else goes through the URL parser, which percent-encodes
    // non-ASCII paths as RFC 3986 wants.
    if trimmed.is_ascii()
        && !trimmed.contains(' ')
        && (trimmed.starts_with("https://")
            || trimmed.starts_with("http://")
            || trimmed.starts_with("mailto:"))
    {
        return Some(Ok(trimmed.to_string()));
    }
    Some(base.join(trimmed).map(|u| u.to_string()).map_err(|_| ()))
}

/// `javascript:` or `vbscript:`, in any case and with the white space or
/// control characters browsers ignore inside the scheme.
fn is_script_url(url: &str) -> bool {
    let mut probe = [0u8; 11];
    let mut n = 0;
    for b in url
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && !b.is_ascii_control())
    {
        if n == probe.len() {
            break;
        }
        probe[n] = b.to_ascii_lowercase();
        n += 1;
    }
    probe.starts_with(b"javascript:") || probe[..n].starts_with(b"vbscript:")
}

fn absolutize_srcset(raw: &str, base: &Url) -> String {
    raw.split(',')
        .map(|candidate| {
            let candidate = candidate.trim();
            let (url, descriptor) = match candidate.split_once(char::is_whitespace) {
                Some((u, d)) => (u, Some(d.trim())),
                None => (candidate, None),
            };
            let abs = absolutize(url, base).unwrap_or_default();
            match descriptor {
                Some(d) if !d.is_empty() => format!("{abs} {d}"),
                _ => abs,
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Decodes the few entities that occur in URLs (`&amp;` above all).
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest.find(';').filter(|&e| e <= 10);
        let decoded = end.and_then(|e| {
            let name = &rest[1..e];
            let ch = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            ch.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://example.org/2024/05/01/post/").unwrap()
    }

    #[test]
    fn relative_urls_become_absolute() {
        let html = r##"<p><a href="../other/?a=1&amp;b=2">x</a> <img src="pic.png" srcset="a.png 1x, /b.png 2x"> <a href="https://x.org/">y</a> <a href="#fn1">1</a></p>"##;
        let out = absolutize_and_clean(html, &base()).unwrap();
        assert!(
            out.contains(r#"href="https://example.org/2024/05/01/other/?a=1&amp;b=2""#),
            "{out}"
        );
        assert!(
            out.contains(r#"src="https://example.org/2024/05/01/post/pic.png""#),
            "{out}"
        );
        assert!(out.contains(r#"srcset="https://example.org/2024/05/01/post/a.png 1x, https://example.org/b.png 2x""#), "{out}");
        assert!(out.contains(r#"href="https://x.org/""#), "{out}");
        assert!(
            out.contains(r##"href="https://example.org/2024/05/01/post/#fn1""##),
            "{out}"
        );
    }

    #[test]
    fn every_url_attribute_becomes_absolute_and_ascii() {
        let html = r#"<link rel="stylesheet" href="style.css"><form action="/s"><input formaction="go"></form><ins cite="why.html">x</ins><a href="https://example.org/café/">c</a><iframe src="v/1"></iframe>"#;
        let out = absolutize_and_clean(html, &base()).unwrap();
        // A stylesheet link is removed (validators flag it); a frame
        // becomes a link.
        assert!(!out.contains("<link"), "{out}");
        assert!(
            out.contains(r#"<a href="https://example.org/2024/05/01/post/v/1">v/1</a>"#),
            "{out}"
        );
        assert!(out.contains(r#"action="https://example.org/s""#), "{out}");
        assert!(
            out.contains(r#"formaction="https://example.org/2024/05/01/post/go""#),
            "{out}"
        );
        assert!(
            out.contains(r#"cite="https://example.org/2024/05/01/post/why.html""#),
            "{out}"
        );
        assert!(
            out.contains(r#"href="https://example.org/caf%C3%A9/""#),
            "{out}"
        );
    }

    #[test]
    fn active_content_is_removed() {
        let html = r#"<p onclick="x()">a<script>alert(1)</script><a href=" JavaScript:alert(1)">b</a><object data="x"></object></p>"#;
        let out = absolutize_and_clean(html, &base()).unwrap();
        assert_eq!(out, "<p>a<a>b</a></p>");
    }

    #[test]
    fn noscript_fallbacks_are_unwrapped_and_absolutized() {
        let html = r#"<div><noscript><img src="chart.png"></noscript></div>"#;
        let out = absolutize_and_clean(html, &base()).unwrap();
        assert_eq!(
            out,
            r#"<div><img src="https://example.org/2024/05/01/post/chart.png"></div>"#
        );
    }
}
