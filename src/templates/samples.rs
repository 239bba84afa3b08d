//! Data of the shape each template receives, with sample values: every
//! template, built in or overridden, is rendered against it at start in
//! strict mode (so a field that does not exist stops herald there, not at
//! the first page view), and it is the reference of the template authors'
//! section of the README.
//!
//! Strict mode only catches a name on a branch taken, so each template has
//! variants: one with every optional part present, one with them absent.

use serde_json::{json, Value};

/// The templates herald renders by name, each with its sample variants
/// (the first the fullest). The others (`layout.html`,
/// `digest_layout.html`, `digest_article.*`) are partials these include.
pub fn entry_samples() -> Vec<(&'static str, Vec<Value>)> {
    let page = |extra: Value| {
        let mut data = json!({"site_title": "Example Site", "language": "en"});
        if let (Value::Object(d), Value::Object(e)) = (&mut data, extra) {
            d.extend(e);
        }
        data
    };
    let schedules = json!([
        {"name": "weekly", "label": "Every Monday morning", "checked": true},
        {"name": "daily", "label": "daily", "checked": false}
    ]);
    let group = |name: &str| {
        json!({"name": name, "files": [{
            "href": "https://example.org/atom.xml",
            "media_type": "application/atom+xml",
            "title": "Example Site (Atom)",
            "format": "Atom",
            "noun": "Atom feed"
        }]})
    };
    let confirm = json!({
        "site_title": "Example Site",
        "site_url": "https://example.org/",
        "language": "en",
        "email": "ann@example.net",
        "link": "https://example.org/confirm?token=sample",
        "expiry_hours": 48
    });
    vec![
        (
            "feeds.html",
            vec![
                page(json!({
                    "description": "Notes on software, weekly.",
                    "groups": [group("Example Site"), group("rust")],
                    "site": group("Example Site"),
                    "tags": [group("rust")]
                })),
                page(json!({"description": "", "groups": [], "site": null, "tags": []})),
            ],
        ),
        (
            "subscribe.html",
            vec![
                page(json!({
                    "action": "/subscribe",
                    "email": "ann@example.net",
                    "error": "Please check the form: the address is empty.",
                    "schedules": schedules,
                    "tags": ["rust", "web"],
                    "sections": [{"value": "section:inside-rust", "label": "Inside Rust", "checked": false}]
                })),
                page(json!({
                    "action": "/subscribe", "email": "", "error": null,
                    "schedules": [], "tags": [], "sections": []
                })),
            ],
        ),
        (
            "message.html",
            vec![
                page(json!({
                    "title": "You are subscribed",
                    "kind": "ok",
                    "message": "ann@example.net will receive new articles by email.",
                    "link": "https://example.org/preferences?token=sample",
                    "link_text": "Choose what you receive"
                })),
                page(json!({
                    "title": "This link has expired",
                    "kind": "error",
                    "message": "The link is no longer valid.",
                    "link": null
                })),
            ],
        ),
        (
            "unsubscribe.html",
            vec![page(json!({
                "email": "ann@example.net",
                "action": "https://example.org/unsubscribe?token=sample",
                "preferences": "https://example.org/preferences?token=sample"
            }))],
        ),
        (
            "preferences.html",
            vec![
                page(json!({
                    "email": "ann@example.net",
                    "saved": true,
                    "action": "https://example.org/preferences?token=sample",
                    "unsubscribe": "https://example.org/unsubscribe?token=sample",
                    "schedules": schedules,
                    "tags": [{"name": "rust", "checked": true}, {"name": "web", "checked": false}],
                    "sections": [{"value": "section:inside-rust", "label": "Inside Rust", "checked": true}]
                })),
                page(json!({
                    "email": "ann@example.net",
                    "saved": false,
                    "action": "https://example.org/preferences?token=sample",
                    "unsubscribe": "https://example.org/unsubscribe?token=sample",
                    "schedules": [],
                    "tags": [],
                    "sections": []
                })),
            ],
        ),
        ("confirm.txt", vec![confirm.clone()]),
        ("confirm.html", vec![confirm]),
        (
            "archive.html",
            vec![
                page(json!({
                    "title": "Example Site archive: weekly",
                    "schedule": "weekly",
                    "feed": "https://example.org/archive/weekly/atom.xml",
                    "subscribe": "https://example.org/subscribe",
                    "issues": [{
                        "subject": "Example Site: A sample article",
                        "url": "https://example.org/archive/weekly/2026-11-30/",
                        "date": "30 November 2026",
                        "date_iso": "2026-11-30T08:00:00+00:00",
                        "schedule": "weekly",
                        "schedule_url": "https://example.org/archive/weekly/",
                        "summary": ["A sample article"]
                    }]
                })),
                page(json!({
                    "title": "Example Site archive",
                    "schedule": null,
                    "feed": null,
                    "subscribe": "https://example.org/subscribe",
                    "issues": []
                })),
            ],
        ),
        (
            "announcement.html",
            vec![sample_announcement(), bare_announcement()],
        ),
        (
            "announcement.txt",
            vec![sample_announcement(), bare_announcement()],
        ),
        ("digest.html", vec![sample_digest(), bare_digest()]),
        ("digest.txt", vec![sample_digest(), bare_digest()]),
    ]
}

/// Data of the shape every digest template receives, with sample values:
/// the reference for template authors and what templates and subjects are
/// checked against at start.
pub fn sample_digest() -> Value {
    json!({
        "language": "en",
        "site": sample_site(),
        "digest": {"name": "weekly", "description": "Every Monday morning"},
        "subscriber": {"email": "ann@example.net"},
        "date": "Monday, 30 November 2026",
        "count": 1,
        // For subject lines: the newest article's title, and how many more.
        "first_title": "A sample article",
        "more": 0,
        "full_content": false,
        // The web archive's copy: no subscriber, no personal links.
        "archive": false,
        "articles": [{
            "title": "A sample article",
            "url": "https://example.org/posts/sample/",
            "date": "28 November 2026",
            "date_iso": "2026-11-28T09:00:00+00:00",
            "authors": "Ann Author",
            "summary": "What the article is about.",
            "content_html": "<p>What the article is about.</p>",
            "content_text": "What the article is about.",
            "image": {"url": "https://example.org/posts/sample/cover.png", "alt": "A sample article"},
            "tags": [{"name": "Rust", "url": "https://example.org/tags/rust/"}]
        }],
        "links": sample_links("weekly"),
        "reason": "You receive this email because you subscribed to the weekly digest of Example Site on 1 November 2026.",
        "postal_address": ["Example Ltd", "1 Main Street", "Springfield"]
    })
}

fn sample_site() -> Value {
    json!({
        "title": "Example Site",
        "url": "https://example.org/",
        "description": "Notes on software, weekly."
    })
}

/// A reader's links in a message of `schedule`.
fn sample_links(schedule: &str) -> Value {
    json!({
        "unsubscribe": "https://example.org/unsubscribe?token=sample",
        "preferences": "https://example.org/preferences?token=sample",
        "site": "https://example.org/",
        "feed": "https://example.org/atom.xml",
        "archive": format!("https://example.org/archive/{schedule}/2026-11-30/"),
        "subscribe": "https://example.org/subscribe"
    })
}

/// The digest with the other mode and without its optional parts.
fn bare_digest() -> Value {
    let mut bare = sample_digest();
    bare["full_content"] = true.into();
    as_archive_copy(&mut bare);
    bare["postal_address"] = json!([]);
    bare["site"]["description"] = "".into();
    bare["articles"][0]["image"] = Value::Null;
    bare["articles"][0]["authors"] = "".into();
    bare["articles"][0]["tags"] = json!([]);
    bare
}

/// Data of the shape `announcement.html` and `announcement.txt` receive.
pub fn sample_announcement() -> Value {
    json!({
        "language": "en",
        "site": sample_site(),
        "subject": "We are moving to a new address",
        "date": "Monday, 30 November 2026",
        "content_html": "<p>From December on, the site lives at <a href=\"https://example.net/\">example.net</a>.</p>",
        "content_text": "From December on, the site lives at example.net.",
        "archive": false,
        "subscriber": {"email": "ann@example.net"},
        "links": sample_links("announcements"),
        "reason": "You receive this email because you subscribed to Example Site and confirmed your address.",
        "postal_address": ["Example Ltd", "1 Main Street", "Springfield"]
    })
}

/// The announcement as the web archive shows it, without optional parts.
fn bare_announcement() -> Value {
    let mut bare = sample_announcement();
    bare["postal_address"] = json!([]);
    as_archive_copy(&mut bare);
    bare
}

/// The data as the web archive's copy gets it: no subscriber, no
/// personal links, no link to itself.
fn as_archive_copy(data: &mut Value) {
    data["archive"] = true.into();
    data["links"]["archive"] = Value::Null;
    data["links"]["unsubscribe"] = "".into();
    data["links"]["preferences"] = "".into();
    data["subscriber"]["email"] = "".into();
}
