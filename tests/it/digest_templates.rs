//! The built-in digest templates rendered with a realistic digest: the text
//! part checked line by line, the HTML part kept as
//! `target/test-artifacts/digest.html` and photographed by headless
//! Chromium as `digest.png` (a mail pane's width, images shown),
//! `digest-narrow.png` (a phone's width) and `digest-no-images.png` (images
//! blocked, as many mail clients start); the same digest with whole
//! articles is `digest-full.html` and `digest-full.png`.
//!
//! Without Chromium the screenshot test prints `SKIPPED: …` and passes,
//! except in CI (`CI` set), where it fails.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use herald::base::text::html_to_text;
use herald::templates::{Templates, TEXT_WIDTH};
use serde_json::{json, Value};

use crate::helpers::repo_root;

/// Bound on one Chromium run (start, load a local file, screenshot).
const SHOT_WITHIN: Duration = Duration::from_secs(60);

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// A three-article weekly digest; `image_base` is where the first article's
/// cover lives (an `https://` URL, or a local `file://` one for the
/// screenshots, which reach no network).
fn digest(full_content: bool, image_base: &str) -> Value {
    let content_html = "<p>The compiler learned to explain <em>why</em> a borrow \
        fails, and <code>cargo</code> can now <a href=\"https://example.org/docs/publish/\">publish \
        a workspace</a> in one step.</p><ul><li>Faster incremental builds</li>\
        <li>Smaller binaries</li></ul>";
    json!({
        "language": "en",
        "site": {
            "title": "Example Site",
            "url": "https://example.org/",
            "description": "Notes on software, the web and the craft of writing both."
        },
        "digest": {"name": "weekly", "description": "Every Monday morning"},
        "subscriber": {"email": "ann@example.net"},
        "date": "Monday, 30 November 2026",
        "count": 3,
        "full_content": full_content,
        "archive": false,
        "articles": [
            {
                "title": "Rust 2026: what is new in the compiler & the tools",
                "url": "https://example.org/posts/rust-2026/",
                "date": "28 November 2026",
                "date_iso": "2026-11-28T09:00:00+00:00",
                "authors": "Ann Author, Bob Builder",
                "summary": "The compiler learned to explain why a borrow fails, cargo can publish \
                    a whole workspace in one step, and incremental builds got faster again. \
                    Here is what changes for everyday code.",
                "content_html": content_html,
                "content_text": html_to_text(content_html, TEXT_WIDTH),
                "image": {"url": format!("{image_base}rust-2026.svg"), "alt": "Rust 2026"},
                "tags": [
                    {"name": "Rust", "url": "https://example.org/tags/rust/"},
                    {"name": "Releases", "url": "https://example.org/tags/releases/"}
                ]
            },
            {
                "title": "Email that works everywhere: tables, inline styles and <alt> text",
                "url": "https://example.org/posts/email-everywhere/",
                "date": "25 November 2026",
                "date_iso": "2026-11-25T07:30:00+00:00",
                "authors": "Bob Builder",
                "summary": "Mail clients are browsers from another decade. Three habits keep a \
                    newsletter readable in all of them.",
                "content_html": "<p>Mail clients are browsers from another decade.</p>",
                "content_text": "Mail clients are browsers from another decade.",
                "image": null,
                "tags": [{"name": "Email", "url": "https://example.org/tags/email/"}]
            },
            {
                "title": "A very long title about a subject that needs more than seventy-two \
                    columns to say what it means",
                "url": "https://example.org/posts/long-title/",
                "date": "23 November 2026",
                "date_iso": "2026-11-23T18:00:00+00:00",
                "authors": "",
                "summary": "Short.",
                "content_html": "<p>Short.</p>",
                "content_text": "Short.",
                "image": null,
                "tags": []
            }
        ],
        "links": {
            "unsubscribe": "https://example.org/unsubscribe?token=abc123&list=weekly",
            "preferences": "https://example.org/preferences?token=abc123",
            "site": "https://example.org/",
            "feed": "https://example.org/atom.xml",
            "archive": null,
            "subscribe": "https://example.org/subscribe"
        },
        "reason": "You receive this email because you subscribed to the weekly digest of \
            Example Site on 1 November 2026.",
        "postal_address": ["Example Ltd", "1 Main Street", "Springfield"]
    })
}

/// Compares line by line, naming the first line that differs.
fn assert_lines(actual: &str, expected: &str) {
    let got: Vec<&str> = actual.lines().collect();
    let want: Vec<&str> = expected.lines().collect();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "line {} differs; the whole text:\n{actual}", i + 1);
    }
    assert_eq!(
        got.len(),
        want.len(),
        "line counts differ; the whole text:\n{actual}"
    );
    assert!(actual.ends_with('\n') && !actual.ends_with("\n\n"));
}

const SUMMARY_TEXT: &str = "\
Example Site · weekly digest
Monday, 30 November 2026

3 new articles in this issue:

1. Rust 2026: what is new in the compiler & the tools
2. Email that works everywhere: tables, inline styles and <alt> text
3. A very long title about a subject that needs more than seventy-two
   columns to say what it means

------------------------------------------------------------------------

1. Rust 2026: what is new in the compiler & the tools
https://example.org/posts/rust-2026/
28 November 2026 · Ann Author, Bob Builder

The compiler learned to explain why a borrow fails, cargo can publish a
whole workspace in one step, and incremental builds got faster again.
Here is what changes for everyday code.

Tags: Rust, Releases

------------------------------------------------------------------------

2. Email that works everywhere: tables, inline styles and <alt> text
https://example.org/posts/email-everywhere/
25 November 2026 · Bob Builder

Mail clients are browsers from another decade. Three habits keep a
newsletter readable in all of them.

Tags: Email

------------------------------------------------------------------------

3. A very long title about a subject that needs more than seventy-two
   columns to say what it means
https://example.org/posts/long-title/
23 November 2026

Short.

========================================================================

This email was sent to ann@example.net. You receive this email because
you subscribed to the weekly digest of Example Site on 1 November 2026.

Unsubscribe:
https://example.org/unsubscribe?token=abc123&list=weekly

Choose your schedules and topics:
https://example.org/preferences?token=abc123

Example Site: https://example.org/
Feed: https://example.org/atom.xml

Example Ltd
1 Main Street
Springfield
";

/// The first article in full-content mode, its text made from its HTML by
/// `html_to_text`, and no postal address.
const FULL_TEXT_ARTICLE: &str = "\
1. Rust 2026: what is new in the compiler & the tools
https://example.org/posts/rust-2026/
28 November 2026 · Ann Author, Bob Builder

The compiler learned to explain *why* a borrow fails, and `cargo` can
now [publish a workspace][1] in one step.
* Faster incremental builds
* Smaller binaries

[1]: https://example.org/docs/publish/

Tags: Rust, Releases
";

#[test]
fn the_text_digest_reads_line_by_line_as_written() {
    let t = Templates::load(None).unwrap();
    let text = t
        .render("digest.txt", &digest(false, "https://example.org/img/"))
        .unwrap();
    assert_lines(&text, SUMMARY_TEXT);
    for line in text.lines() {
        assert!(
            line.chars().count() <= TEXT_WIDTH || !line.contains(' '),
            "only a lone URL may pass {TEXT_WIDTH} columns: {line:?}"
        );
        assert_eq!(line, line.trim_end(), "trailing white space");
    }
}

#[test]
fn the_text_digest_in_full_content_mode_carries_each_article_as_text() {
    let t = Templates::load(None).unwrap();
    let mut data = digest(true, "https://example.org/img/");
    data["postal_address"] = json!([]);
    let text = t.render("digest.txt", &data).unwrap();
    let start = text
        .find("1. Rust 2026: what is new in the compiler & the tools\nhttps://")
        .unwrap_or_else(|| panic!("no first article in:\n{text}"));
    let article = &text[start..start + FULL_TEXT_ARTICLE.len()];
    assert_lines(article, FULL_TEXT_ARTICLE);
    assert!(!text.contains("The compiler learned to explain why a borrow fails, cargo"));
    assert!(
        text.ends_with("\nFeed: https://example.org/atom.xml\n"),
        "no address lines: {text}"
    );
}

/// Where the HTML and the screenshots are kept for whoever looks at a test
/// run afterwards.
pub(crate) fn artifacts_dir() -> PathBuf {
    let dir = repo_root().join("target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("create target/test-artifacts");
    dir
}

/// A cover picture for the first article, so the screenshot shows how an
/// image sits in the layout.
const COVER_SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="1056" height="480" viewBox="0 0 1056 480">
<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">
<stop offset="0" stop-color="#1c3f70"/><stop offset="1" stop-color="#b7472a"/></linearGradient></defs>
<rect width="1056" height="480" fill="url(#g)"/>
<circle cx="860" cy="120" r="220" fill="#ffffff" fill-opacity="0.08"/>
<circle cx="180" cy="430" r="160" fill="#ffffff" fill-opacity="0.06"/>
<text x="72" y="270" font-family="sans-serif" font-size="96" font-weight="bold" fill="#ffffff">Rust 2026</text>
<text x="76" y="330" font-family="sans-serif" font-size="34" fill="#ffffff" fill-opacity="0.85">compiler · cargo · tooling</text>
</svg>
"##;

/// Every start tag `<name …>` in `html`, with its attributes.
fn start_tags<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}");
    html.match_indices(&open)
        .filter(|(i, _)| {
            html[i + open.len()..]
                .chars()
                .next()
                .is_some_and(|c| c == ' ' || c == '>')
        })
        .map(|(i, _)| &html[i..i + html[i..].find('>').expect("tag closes")])
        .collect()
}

/// The checks an email's HTML must pass whatever its client: one document
/// with a language and charset, layout tables only, inline styles only, no
/// scripts, alternative text for every image, absolute links.
fn assert_email_safe(html: &str) {
    assert!(html.starts_with("<!doctype html>\n<html lang=\"en\">"));
    assert!(html.contains("<meta charset=\"utf-8\">"));
    for banned in [
        "<style",
        "<script",
        "<link",
        "class=",
        "javascript:",
        "<svg",
    ] {
        assert!(!html.contains(banned), "{banned} in the digest HTML");
    }
    // Outside Outlook's conditional comments, tables are for layout only.
    let outside_mso: String = html
        .split("<!--[if mso]>")
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                part
            } else {
                part.split_once("<![endif]-->").expect("comment ends").1
            }
        })
        .collect();
    let tables = start_tags(&outside_mso, "table");
    assert!(tables.len() >= 3);
    for t in &tables {
        assert!(t.contains("role=\"presentation\""), "{t}");
    }
    for element in ["table", "tr", "td", "p", "a", "h1", "h2", "div"] {
        assert_eq!(
            start_tags(&outside_mso, element).len(),
            outside_mso.matches(&format!("</{element}>")).count(),
            "<{element}> opened and closed as often"
        );
    }
    for img in start_tags(html, "img") {
        assert!(
            img.contains(" alt=\"") && !img.contains(" alt=\"\""),
            "{img}"
        );
        assert!(img.contains(" width=\""), "{img}");
    }
    for a in start_tags(html, "a") {
        let href = a
            .split_once(" href=\"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(href, _)| href)
            .unwrap_or_else(|| panic!("a link without href: {a}"));
        assert!(
            href.starts_with("https://") || href.starts_with("#article-"),
            "a relative link: {href}"
        );
    }
    // (The article's own HTML, trusted and inserted as it is, may have
    // paragraphs and links without styles, but no layout elements.)
    for tag in ["table", "td", "h1", "h2", "img"] {
        for t in start_tags(&outside_mso, tag) {
            assert!(t.contains(" style=\""), "no inline style: {t}");
        }
    }
}

#[test]
fn the_html_digest_is_email_safe_and_readable_in_headless_chromium() {
    let artifacts = artifacts_dir();
    let t = Templates::load(None).unwrap();
    let mut hostile = digest(false, "https://example.org/img/");
    hostile["subscriber"]["email"] = json!("\"<img src=x onerror=alert(1)>\"@example.net");
    let html = t.render("digest.html", &hostile).unwrap();
    assert_email_safe(&html);
    assert!(html.contains("&quot;&lt;img src=x onerror=alert(1)&gt;&quot;@example.net"));
    assert!(html
        .contains(">Email that works everywhere: tables, inline styles and &lt;alt&gt; text</a>"));
    assert!(html.contains("href=\"https://example.org/unsubscribe?token=abc123&amp;list=weekly\""));
    let full = t
        .render("digest.html", &digest(true, "https://example.org/img/"))
        .unwrap();
    assert_email_safe(&full);
    assert!(full.contains("<a href=\"https://example.org/docs/publish/\">publish a workspace</a>"));

    // The artifact shows a real picture: its image is a local file, so the
    // browser needs no network.
    let cover = artifacts.join("rust-2026.svg");
    std::fs::write(&cover, COVER_SVG).unwrap();
    let base = format!("file://{}/", artifacts.display());
    let html_path = artifacts.join("digest.html");
    let html = t.render("digest.html", &digest(false, &base)).unwrap();
    std::fs::write(&html_path, &html).unwrap();
    let full_path = artifacts.join("digest-full.html");
    let full = t.render("digest.html", &digest(true, &base)).unwrap();
    std::fs::write(&full_path, &full).unwrap();
    eprintln!(
        "digest HTML: {} and {}",
        html_path.display(),
        full_path.display()
    );

    let chromium = match chromium() {
        Ok(c) => c,
        Err(missing) if std::env::var_os("CI").is_some() => {
            panic!("CI must take the digest screenshot, but {missing}")
        }
        Err(missing) => {
            eprintln!("SKIPPED: digest screenshot not taken; {missing}");
            return;
        }
    };
    let shots = [
        ("digest.png", &html_path, (700, 1700), false),
        ("digest-narrow.png", &html_path, (390, 2000), false),
        ("digest-no-images.png", &html_path, (700, 1500), true),
        ("digest-full.png", &full_path, (700, 1700), false),
    ];
    for (name, html, size, no_images) in shots {
        let png = artifacts.join(name);
        let _ = std::fs::remove_file(&png);
        screenshot(&chromium, html, &png, size, no_images);
        let bytes = assert_png(&png, size);
        eprintln!("screenshot: {} ({bytes} bytes)", png.display());
    }
}

/// Chromium, from `BROWSER_TEST_CHROMIUM` or Debian's path, or what is
/// missing.
pub(crate) fn chromium() -> Result<PathBuf, String> {
    let path = std::env::var_os("BROWSER_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "Chromium is missing ({}; apt-get install chromium)",
            path.display()
        ))
    }
}

/// Photographs `html` at a window of `size` CSS pixels with a fresh
/// profile, no network (every host name fails to resolve) and, when asked,
/// images blocked. Chromium and its helpers run in their own process
/// group, killed whole if they overrun.
pub(crate) fn screenshot(
    chromium: &Path,
    html: &Path,
    png: &Path,
    (width, height): (u32, u32),
    no_images: bool,
) {
    use std::os::unix::process::CommandExt;

    let profile = tempfile::tempdir().expect("temp dir");
    let mut cmd = std::process::Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--disable-domain-reliability",
        "--disable-breakpad",
        "--no-proxy-server",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--lang=en-US",
    ])
    .arg(format!(
        "--user-data-dir={}",
        profile.path().join("profile").display()
    ))
    .arg(format!("--window-size={width},{height}"))
    .arg(format!("--screenshot={}", png.display()))
    .args(no_images.then_some("--blink-settings=imagesEnabled=false"))
    .arg(if html.starts_with("http:") {
        // A page served by herald on loopback (an IP, so the resolver
        // rule above does not stop it).
        html.display().to_string()
    } else {
        format!("file://{}", html.display())
    })
    .env("XDG_CONFIG_HOME", profile.path().join("config"))
    .env("XDG_CACHE_HOME", profile.path().join("cache"))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0);
    let child = cmd.spawn().expect("start chromium");
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait_with_output());
    });
    let out = match done_rx.recv_timeout(SHOT_WITHIN) {
        Ok(out) => out.expect("wait for chromium"),
        Err(_) => {
            // Its group id is its pid (process_group(0)).
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
            panic!(
                "chromium did not take {} within {SHOT_WITHIN:?}",
                png.display()
            );
        }
    };
    assert!(
        out.status.success() && png.is_file(),
        "chromium failed ({}) to write {}:\n{}",
        out.status,
        png.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Checks that `path` is a PNG of the window's size with something drawn
/// in it; returns its length.
pub(crate) fn assert_png(path: &Path, (width, height): (u32, u32)) -> usize {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("screenshot {}: {e}", path.display()));
    assert!(
        bytes.len() >= 24 && bytes[..8] == PNG_SIGNATURE && &bytes[12..16] == b"IHDR",
        "{} is not a PNG",
        path.display()
    );
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((w, h), (width, height), "{}", path.display());
    // A blank page compresses to a few kilobytes; a page of text to tens.
    assert!(
        bytes.len() > 30_000,
        "{} is only {} bytes: nothing rendered?",
        path.display(),
        bytes.len()
    );
    bytes.len()
}
