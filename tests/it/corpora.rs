//! Real content built end to end: the shared corpora (the Rust blog, Jekyll's
//! news posts, the seed article) and the sample site in `content/`. Every
//! feed file a build writes is read back by feed-rs and by Python's
//! feedparser and compared with what the source files themselves say.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
use feed_rs::model::{Entry, Feed};
use serde_json::Value;

use crate::helpers::{feedparser, repo_root, shared_corpus, TestSite};

const BASE: &str = "https://example.org/";
const FORMATS: [&str; 3] = ["rss.xml", "atom.xml", "feed.json"];

/// What the sources say one published article must look like in a feed.
#[derive(Debug, Clone)]
struct Expected {
    title: String,
    /// `None` where herald picks the date (files that carry none).
    published: Option<DateTime<Utc>>,
    /// Tag names, lower-case.
    tags: BTreeSet<String>,
}

/// Expected articles by permalink.
type ExpectedSite = BTreeMap<String, Expected>;

/// One build through the library, read back.
struct Built {
    published: usize,
    drafts: usize,
    scheduled: usize,
    /// (path as herald shows it, line, reason)
    rejected: Vec<(PathBuf, Option<usize>, String)>,
    /// Files that are not articles: (path as herald shows it, reason).
    skipped: Vec<(PathBuf, String)>,
    warnings: Vec<String>,
    /// Every feed file, by path under the feeds directory (`tags/x/rss.xml`).
    feeds: BTreeMap<String, Feed>,
    /// The bytes of each of those files.
    raw: BTreeMap<String, Vec<u8>>,
    /// feedparser_check.py's report for each of those files; `None` when
    /// feedparser is unavailable outside CI.
    reports: Option<BTreeMap<String, Value>>,
}

/// Builds `content` with unlimited feeds and reads every file back.
fn build_and_read(content: &Path) -> Built {
    let mut site = TestSite::over(content);
    site.feeds_section = "limit = 0\ntag_limit = 0\nsection_limit = 0".into();
    let outcome = site.build();
    let files = feed_files(&site.feeds);
    assert!(!files.is_empty(), "the build wrote no feed files");
    let rel = |p: &Path| {
        p.strip_prefix(&site.feeds)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/")
    };
    let raw: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|p| (rel(p), std::fs::read(p).unwrap()))
        .collect();
    let feeds = raw
        .iter()
        .map(|(rel, bytes)| {
            let feed = feed_rs::parser::parse(bytes.as_slice())
                .unwrap_or_else(|e| panic!("feed-rs cannot parse {rel}: {e}"));
            (rel.clone(), feed)
        })
        .collect();
    let reports = feedparser(&files).map(|v| {
        let list = v.as_array().expect("feedparser_check.py prints an array");
        assert_eq!(list.len(), files.len(), "one report per file");
        files
            .iter()
            .map(|p| rel(p))
            .zip(list.iter().cloned())
            .collect()
    });
    Built {
        published: outcome.catalog.len(),
        drafts: outcome.load.drafts,
        scheduled: outcome.load.scheduled,
        rejected: outcome
            .load
            .rejected
            .iter()
            .map(|e| (e.path.clone(), e.line, e.reason.clone()))
            .collect(),
        skipped: outcome
            .load
            .skipped
            .iter()
            .map(|s| (s.path.clone(), s.reason.clone()))
            .collect(),
        warnings: outcome.load.warnings.clone(),
        feeds,
        raw,
        reports,
    }
}

/// Every file under the feeds directory `dir` (which should hold only the
/// site-wide feeds and `tags/*/…`), sorted.
fn feed_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.expect("feeds directory is readable"))
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    files.sort();
    files
}

/// Builds `name` once for all tests that read it; `None` (saying so) when
/// the shared corpus is absent.
fn corpus(cell: &'static OnceLock<Option<Built>>, name: &str) -> Option<&'static Built> {
    let built = cell
        .get_or_init(|| shared_corpus(name).map(|dir| build_and_read(&dir)))
        .as_ref();
    if built.is_none() {
        eprintln!("SKIPPED: shared corpus {name} is absent");
    }
    built
}

fn rust_blog() -> Option<&'static Built> {
    static CELL: OnceLock<Option<Built>> = OnceLock::new();
    corpus(&CELL, "rust-blog/content")
}

fn jekyll() -> Option<&'static Built> {
    static CELL: OnceLock<Option<Built>> = OnceLock::new();
    corpus(&CELL, "jekyll-posts")
}

fn seed() -> Option<&'static Built> {
    static CELL: OnceLock<Option<Built>> = OnceLock::new();
    corpus(&CELL, "seed")
}

fn sample_dir() -> PathBuf {
    repo_root().join("content")
}

fn sample() -> &'static Built {
    static CELL: OnceLock<Built> = OnceLock::new();
    CELL.get_or_init(|| build_and_read(&sample_dir()))
}

// ---------------------------------------------------------------------------
// Reading entries back

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

fn iso(d: DateTime<Utc>) -> String {
    d.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// An entry's permalink: the first link that is not an enclosure or other
/// relation (RSS `link`, Atom `rel="alternate"`, JSON Feed `url`).
fn entry_link(e: &Entry) -> &str {
    e.links
        .iter()
        .find(|l| matches!(l.rel.as_deref(), None | Some("alternate")))
        .map(|l| l.href.as_str())
        .unwrap_or_else(|| panic!("entry {} has no link", e.id))
}

fn entries_by_link<'a>(rel: &str, feed: &'a Feed) -> BTreeMap<&'a str, &'a Entry> {
    let map: BTreeMap<&str, &Entry> = feed.entries.iter().map(|e| (entry_link(e), e)).collect();
    assert_eq!(
        map.len(),
        feed.entries.len(),
        "{rel}: two entries share a link"
    );
    map
}

fn report_entries<'a>(rel: &str, report: &'a Value) -> BTreeMap<&'a str, &'a Value> {
    let entries = report["entries"].as_array().expect("entries");
    let map: BTreeMap<&str, &Value> = entries
        .iter()
        .map(|e| {
            (
                e["link"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{rel}: entry without link: {e}")),
                e,
            )
        })
        .collect();
    assert_eq!(map.len(), entries.len(), "{rel}: two entries share a link");
    map
}

/// The tag slug of a tag feed's path (`tags/release/rss.xml`), or `None`
/// for the site-wide feeds.
fn tag_of(rel: &str) -> Option<&str> {
    rel.strip_prefix("tags/")
        .map(|r| r.split('/').next().unwrap())
}

/// Tag names in these corpora are lower-case words, so the slug is the name.
fn slug(tag: &str) -> String {
    let s = tag.to_lowercase();
    assert!(
        s.chars().all(|c| c.is_alphanumeric() || c == '-'),
        "test data: tag {tag:?} needs real slugging"
    );
    s
}

fn show_difference(want: &BTreeSet<&str>, got: &BTreeSet<&str>) -> String {
    let missing: Vec<_> = want.difference(got).take(10).collect();
    let extra: Vec<_> = got.difference(want).take(10).collect();
    format!(
        "{} missing (first: {missing:?}), {} unexpected (first: {extra:?})",
        want.difference(got).count(),
        got.difference(want).count()
    )
}

/// Every feed file holds exactly the expected articles (the tag feeds those
/// with their tag), with their titles, dates and tags, as feed-rs and
/// feedparser read them; feedparser finds nothing malformed.
fn assert_feeds_hold(built: &Built, expected: &ExpectedSite) {
    assert_feeds_hold_with_sections(built, expected, &[]);
}

/// The same, for a site whose `sections` (folders, each holding the
/// articles whose URL path starts with it) have feeds of their own.
fn assert_feeds_hold_with_sections(built: &Built, expected: &ExpectedSite, sections: &[&str]) {
    assert_eq!(built.published, expected.len(), "articles published");

    let tags: BTreeSet<String> = expected
        .values()
        .flat_map(|e| e.tags.iter().map(|t| slug(t)))
        .collect();
    let mut want_files: BTreeSet<String> = FORMATS.iter().map(|f| f.to_string()).collect();
    for t in &tags {
        want_files.extend(FORMATS.iter().map(|f| format!("tags/{t}/{f}")));
    }
    for s in sections {
        want_files.extend(FORMATS.iter().map(|f| format!("{s}/{f}")));
    }
    let section_of = |rel: &str| {
        sections
            .iter()
            .find(|s| rel.starts_with(&format!("{s}/")))
            .copied()
    };
    let got_files: BTreeSet<String> = built.feeds.keys().cloned().collect();
    assert_eq!(got_files, want_files, "feed files written");

    let wanted_in = |rel: &str| -> BTreeMap<&str, &Expected> {
        expected
            .iter()
            .filter(|(url, e)| match (tag_of(rel), section_of(rel)) {
                (Some(t), _) => e.tags.iter().any(|x| slug(x) == t),
                (None, Some(s)) => url.starts_with(&format!("{BASE}{s}/")),
                (None, None) => true,
            })
            .map(|(url, e)| (url.as_str(), e))
            .collect()
    };

    for (rel, feed) in &built.feeds {
        let want = wanted_in(rel);
        let got = entries_by_link(rel, feed);
        let (w, g): (BTreeSet<&str>, BTreeSet<&str>) = (
            want.keys().copied().collect(),
            got.keys().copied().collect(),
        );
        assert!(w == g, "{rel} (feed-rs): {}", show_difference(&w, &g));
        assert_eq!(feed.entries.len(), want.len(), "{rel}: entries");
        for (url, exp) in &want {
            let e = got[url];
            let title = e.title.as_ref().map(|t| t.content.as_str());
            assert_eq!(title, Some(exp.title.as_str()), "{rel}: title of {url}");
            let published = e
                .published
                .unwrap_or_else(|| panic!("{rel}: {url} has no date"));
            if let Some(p) = exp.published {
                assert_eq!(published.timestamp(), p.timestamp(), "{rel}: date of {url}");
            }
            let terms: BTreeSet<String> =
                e.categories.iter().map(|c| c.term.to_lowercase()).collect();
            assert_eq!(terms, exp.tags, "{rel}: tags of {url}");
        }
    }

    let Some(reports) = &built.reports else {
        eprintln!("SKIPPED feedparser comparison: feedparser is not available");
        return;
    };
    for (rel, report) in reports {
        assert_eq!(
            report["bozo"], 0,
            "{rel}: feedparser says malformed: {}",
            report["bozo_exception"]
        );
        let want = wanted_in(rel);
        let got = report_entries(rel, report);
        let (w, g): (BTreeSet<&str>, BTreeSet<&str>) = (
            want.keys().copied().collect(),
            got.keys().copied().collect(),
        );
        assert!(w == g, "{rel} (feedparser): {}", show_difference(&w, &g));
        for (url, exp) in &want {
            let e = got[url];
            assert_eq!(
                e["title"].as_str(),
                Some(exp.title.as_str()),
                "{rel}: title of {url} (feedparser)"
            );
            assert!(
                e["published"].is_string(),
                "{rel}: {url} has no date (feedparser)"
            );
            if let Some(p) = exp.published {
                assert_eq!(
                    e["published"].as_str(),
                    Some(iso(p).as_str()),
                    "{rel}: date of {url} (feedparser)"
                );
            }
            let terms: BTreeSet<String> = e["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_lowercase())
                .collect();
            assert_eq!(terms, exp.tags, "{rel}: tags of {url} (feedparser)");
        }
    }
}

/// Every href/src feedparser's script found in entry content is absolute,
/// apart from `tolerated` values that the sources themselves write as
/// absolute URLs with a misspelt scheme.
fn assert_content_urls_absolute(built: &Built, tolerated: &[&str]) {
    let Some(reports) = &built.reports else {
        eprintln!("SKIPPED: feedparser is not available to list content URLs");
        return;
    };
    // (entry link, URL) -> feed files it was found in
    let mut offenders: BTreeMap<(String, String), Vec<&str>> = BTreeMap::new();
    let mut seen = 0usize;
    for (rel, report) in reports {
        for e in report["entries"].as_array().unwrap() {
            for u in e["urls"].as_array().unwrap() {
                let u = u.as_str().unwrap();
                seen += 1;
                let absolute = ["http://", "https://", "mailto:"]
                    .iter()
                    .any(|s| u.starts_with(s));
                if !absolute && !tolerated.contains(&u) {
                    let link = e["link"].as_str().unwrap_or("?").to_string();
                    offenders
                        .entry((link, u.to_string()))
                        .or_default()
                        .push(rel);
                }
            }
        }
    }
    let fragments = offenders.keys().filter(|(_, u)| u.starts_with('#')).count();
    assert!(
        offenders.is_empty(),
        "{} URLs in entry content are not absolute ({fragments} of them `#fragment` only, \
         {} relative paths; {seen} URLs looked at in all feed files). The first ones:\n{}",
        offenders.len(),
        offenders.len() - fragments,
        // Some of each kind.
        offenders
            .iter()
            .filter(|((_, u), _)| !u.starts_with('#'))
            .take(8)
            .chain(
                offenders
                    .iter()
                    .filter(|((_, u), _)| u.starts_with('#'))
                    .take(7)
            )
            .map(|((link, u), files)| format!("{u:?} in {link} ({})", files.join(", ")))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The entry with permalink `url` in feed file `rel`, as feed-rs read it.
fn entry<'a>(built: &'a Built, rel: &str, url: &str) -> &'a Entry {
    let feed = built
        .feeds
        .get(rel)
        .unwrap_or_else(|| panic!("no feed file {rel}"));
    feed.entries
        .iter()
        .find(|e| entry_link(e) == url)
        .unwrap_or_else(|| panic!("{rel} has no entry {url}"))
}

/// The entry with permalink `url` in feed file `rel`, as feedparser read it.
fn report_entry<'a>(built: &'a Built, rel: &str, url: &str) -> Option<&'a Value> {
    let reports = built.reports.as_ref()?;
    let entry = reports[rel]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["link"] == url)
        .unwrap_or_else(|| panic!("{rel} has no entry {url} (feedparser)"));
    Some(entry)
}

fn content_of(e: &Entry) -> &str {
    e.content
        .as_ref()
        .and_then(|c| c.body.as_deref())
        .unwrap_or_else(|| panic!("entry {} has no content", e.id))
}

fn file_time(path: &Path) -> DateTime<Utc> {
    DateTime::<Utc>::from(std::fs::metadata(path).unwrap().modified().unwrap())
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// ---------------------------------------------------------------------------
// What the sources say

/// The front matter between the opening `fence` line and the next one;
/// `None` when the text does not open with `fence`.
fn front_matter<'a>(text: &'a str, fence: &str) -> Option<&'a str> {
    let rest = text.strip_prefix(fence)?.strip_prefix('\n')?;
    let end = rest.find(&format!("\n{fence}\n"))?;
    Some(&rest[..end + 1])
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The first `YYYY/MM/DD` run of segments in a path.
fn date_in_path(path: &str) -> Option<NaiveDate> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    segs.windows(3).find_map(|w| {
        (w[0].len() == 4 && w[1].len() == 2 && w[2].len() == 2)
            .then(|| NaiveDate::parse_from_str(&w.join("-"), "%Y-%m-%d").ok())
            .flatten()
    })
}

fn midnight_utc(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap())
}

/// The Rust blog: every `.md` but Zola's `_index.md` files is a post whose
/// URL and date come from `path`. Returns the expected posts and the files
/// without a title.
fn rust_blog_expected(dir: &Path) -> (ExpectedSite, Vec<String>) {
    let now = Utc::now();
    let mut site = ExpectedSite::new();
    let mut untitled = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy();
        if !entry.file_type().is_file() || !name.ends_with(".md") || name == "_index.md" {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let front = front_matter(&text, "+++").unwrap_or_else(|| panic!("{rel}: no front matter"));
        let table: toml::Table = front.parse().unwrap_or_else(|e| panic!("{rel}: {e}"));
        let Some(title) = table.get("title").and_then(|t| t.as_str()) else {
            untitled.push(rel);
            continue;
        };
        let path = table["path"]
            .as_str()
            .unwrap_or_else(|| panic!("{rel}: no path"));
        let date = date_in_path(path).unwrap_or_else(|| panic!("{rel}: no date in {path}"));
        if midnight_utc(date) > now {
            continue;
        }
        let url = format!("{BASE}{}/", path.trim_matches('/'));
        let prev = site.insert(
            url.clone(),
            Expected {
                title: collapse(title),
                published: Some(midnight_utc(date)),
                tags: BTreeSet::new(),
            },
        );
        assert!(prev.is_none(), "test data: two posts at {url}");
    }
    (site, untitled)
}

/// Jekyll's posts: the date from `date:` (with its offset) or else the
/// file name, the permalink `/YYYY/MM/DD/slug/` in the date's own offset,
/// tags from `category` and `categories`. Returns the expected posts and the
/// files whose `date:` does not parse.
fn jekyll_expected(dir: &Path) -> (ExpectedSite, Vec<String>) {
    let mut site = ExpectedSite::new();
    let mut bad_dates = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(dir.join("_posts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for path in names {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let front = front_matter(&text, "---").unwrap_or_else(|| panic!("{file}: no front matter"));
        let fm: serde_yaml::Value =
            serde_yaml::from_str(front).unwrap_or_else(|e| panic!("{file}: {e}"));
        let title = fm["title"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: no title"));
        let stem = file.rsplit_once('.').unwrap().0;
        let name_date = NaiveDate::parse_from_str(&stem[..10], "%Y-%m-%d").unwrap();
        let published: DateTime<FixedOffset> = match fm.get("date") {
            Some(d) => {
                let raw = d
                    .as_str()
                    .unwrap_or_else(|| panic!("{file}: date is not text"));
                match DateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S %z") {
                    Ok(d) => d,
                    Err(_) => {
                        bad_dates.push(file);
                        continue;
                    }
                }
            }
            None => midnight_utc(name_date).fixed_offset(),
        };
        let mut tags = BTreeSet::new();
        if let Some(c) = fm.get("category").and_then(|c| c.as_str()) {
            tags.insert(c.to_lowercase());
        }
        if let Some(list) = fm.get("categories").and_then(|c| c.as_sequence()) {
            tags.extend(list.iter().map(|c| c.as_str().unwrap().to_lowercase()));
        }
        let url = format!("{BASE}{}/{}/", published.format("%Y/%m/%d"), &stem[11..]);
        let prev = site.insert(
            url.clone(),
            Expected {
                title: collapse(title),
                published: Some(published.with_timezone(&Utc)),
                tags,
            },
        );
        assert!(prev.is_none(), "test data: two posts at {url}");
    }
    (site, bad_dates)
}

fn tags(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|t| t.to_string()).collect()
}

const CAFE_TITLE: &str = "Café Lumière opens a reading corner";

/// The sample site, as its files were written (`content/`).
fn sample_expected() -> ExpectedSite {
    let mut site = ExpectedSite::new();
    let mut add = |path: &str, title: &str, published: Option<&str>, t: &[&str]| {
        site.insert(
            format!("{BASE}{path}"),
            Expected {
                title: title.into(),
                published: published.map(utc),
                tags: tags(t),
            },
        );
    };
    add(
        "2024/01/15/welcome-to-the-ledger/",
        "Welcome to the new Millbrook Ledger",
        Some("2024-01-15T07:00:00Z"),
        &["announcements", "newsroom"],
    );
    add(
        "2024/02/10/reader-letters/",
        "Letters from readers, and how to send yours",
        Some("2024-02-10T00:00:00Z"),
        &["readers", "announcements"],
    );
    add(
        "2024/02/20/how-we-lay-out-a-page/",
        "How we lay out a page",
        Some("2024-02-20T18:45:00Z"),
        &["printing", "newsroom"],
    );
    add(
        "2024/03/05/printing-press-repairs/",
        "The press is back, and so is the smell of ink",
        Some("2024-03-05T08:30:00Z"),
        &["newsroom", "printing"],
    );
    add(
        "2024/03/20/the-spring-budget/",
        "Where the money goes: our spring budget",
        Some("2024-03-20T17:00:00Z"),
        &["finances", "announcements"],
    );
    add(
        "guides/distribution-routes/",
        "Distribution routes and who walks them",
        Some("2024-04-02T06:15:00Z"),
        &["distribution", "readers"],
    );
    add(
        "guides/volunteer-handbook/",
        "A short handbook for new volunteers",
        Some("2024-04-10T18:00:00Z"),
        &["newsroom", "volunteers"],
    );
    // Plain text carries no date: herald takes the file's time (checked
    // in sample_plain_text_article_keeps_its_accents_in_every_format).
    let cafe = cafe_url();
    add(&cafe[BASE.len()..], CAFE_TITLE, None, &[]);
    site
}

fn cafe_url() -> String {
    let d = file_time(&sample_dir().join("cafe-corner.txt"));
    format!("{BASE}{}/cafe-corner/", d.format("%Y/%m/%d"))
}

// ---------------------------------------------------------------------------
// The Rust blog

#[test]
fn rust_blog_builds_into_valid_feeds_holding_every_titled_post() {
    let Some(built) = rust_blog() else { return };
    let dir = shared_corpus("rust-blog/content").unwrap();
    let (expected, untitled) = rust_blog_expected(&dir);
    // 754 .md files: 3 `_index.md` sections, 1 untitled page, 750 posts.
    assert_eq!(untitled, vec!["releases/latest.md".to_string()]);
    assert_eq!(expected.len(), 750);
    // inside-rust/_index.md says `generate_feeds = true`: that section
    // has feeds of its own, holding its posts.
    assert_feeds_hold_with_sections(built, &expected, &["inside-rust"]);
    assert_eq!((built.drafts, built.scheduled), (0, 0));
    // The blog has no tags, so no tag feeds either.
    assert!(built.feeds.keys().all(|k| !k.starts_with("tags/")));
}

#[test]
fn rust_blog_template_page_is_skipped_with_its_reason_not_rejected() {
    let Some(built) = rust_blog() else { return };
    // releases/latest.md is `template = "latest.html"` with no title or
    // date: a page Zola renders with a template, not an article.
    assert!(built.rejected.is_empty(), "{:?}", built.rejected);
    assert_eq!(built.skipped.len(), 1, "{:?}", built.skipped);
    let (path, reason) = &built.skipped[0];
    assert!(path.ends_with("releases/latest.md"), "{}", path.display());
    assert!(reason.contains("template page"), "{reason}");
}

#[test]
fn rust_blog_posts_dated_only_by_path_take_that_date_and_url() {
    let Some(built) = rust_blog() else { return };
    let cases = [
        (
            "https://example.org/2015/12/10/Rust-1.5/",
            "Announcing Rust 1.5",
            "2015-12-10T00:00:00Z",
        ),
        (
            "https://example.org/inside-rust/2020/10/07/1.47.0-prerelease-2/",
            "1.47.0 second pre-release testing",
            "2020-10-07T00:00:00Z",
        ),
        (
            "https://example.org/2014/12/12/1.0-Timeline/",
            "Rust 1.0: Scheduling the trains",
            "2014-12-12T00:00:00Z",
        ),
    ];
    for (url, title, date) in cases {
        for f in FORMATS {
            let e = entry(built, f, url);
            assert_eq!(e.title.as_ref().unwrap().content, title, "{f}");
            assert_eq!(e.published, Some(utc(date)), "{f}: {url}");
            assert_eq!(e.id, url, "{f}: the permalink is the id");
            if let Some(r) = report_entry(built, f, url) {
                assert_eq!(r["published"], date, "{f}: {url} (feedparser)");
                assert_eq!(r["id"], url, "{f}: {url} (feedparser)");
            }
        }
    }
    // A bundle (`slug/index.md`) is dated and placed by its path the same way.
    let e = entry(
        built,
        "atom.xml",
        "https://example.org/2016/09/29/Rust-1.12/",
    );
    assert_eq!(e.published, Some(utc("2016-09-29T00:00:00Z")));
}

#[test]
fn rust_blog_authors_lists_reach_every_format() {
    let Some(built) = rust_blog() else { return };
    // `authors = ["Rust Security Response WG", "crates.io team"]`
    let url = "https://example.org/2025/09/12/crates-io-phishing-campaign/";
    for f in FORMATS {
        let names: Vec<&str> = entry(built, f, url)
            .authors
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["Rust Security Response WG", "crates.io team"],
            "{f}"
        );
        if let Some(r) = report_entry(built, f, url) {
            let mut got: Vec<&str> = r["authors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            got.dedup(); // RSS names each author twice: dc:creator and the item's own list
            assert!(got.contains(&"crates.io team"), "{f} (feedparser): {got:?}");
        }
    }
}

#[test]
fn rust_blog_entry_content_links_are_all_absolute() {
    let Some(built) = rust_blog() else { return };
    // Written with a misspelt scheme in the posts themselves
    // (project-goals-2026-04.md, Increasing-Rusts-Reach-2018.md): absolute
    // URLs, just not http ones.
    let typos = [
        "ttps://github.com/rust-lang/rust/pull/150625",
        "mail-to:reach@rust-lang.org",
    ];
    assert_content_urls_absolute(built, &typos);
}

#[test]
fn herald_check_verbose_lists_the_rust_blog_template_page_as_skipped() {
    let Some(dir) = shared_corpus("rust-blog/content") else {
        return;
    };
    let site = TestSite::over(&dir);
    let out = site.cli(&["build"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        !err.contains("releases/latest.md"),
        "listed only with --verbose: {err}"
    );
    assert!(
        err.contains("published 750 articles, rejected 0 files, 0 drafts, 0 scheduled, 1 skipped"),
        "{err}"
    );
    let out = site.cli(&["check", "--verbose"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("skipped:"))
        .unwrap_or_else(|| panic!("no skipped line:\n{err}"));
    assert!(
        line.ends_with("releases/latest.md: template page (`template` set and no date)"),
        "{line}"
    );
}

// ---------------------------------------------------------------------------
// Jekyll's news posts

#[test]
fn jekyll_posts_build_into_valid_feeds_with_their_dates() {
    let Some(built) = jekyll() else { return };
    let dir = shared_corpus("jekyll-posts").unwrap();
    let (expected, bad_dates) = jekyll_expected(&dir);
    // One post's date is not a standard form; Jekyll (Ruby's Time.parse)
    // reads it anyway, and so does herald: the expected date is Ruby's.
    assert_eq!(
        bad_dates,
        vec!["2023-01-29-jekyll-3-9-3-released.markdown".to_string()]
    );
    let mut expected = expected;
    expected.insert(
        format!("{BASE}2023/01/29/jekyll-3-9-3-released/"),
        Expected {
            title: "Jekyll 3.9.3 Released".into(),
            published: Some(utc("2023-01-30T02:30:22Z")),
            tags: tags(&["release"]),
        },
    );
    assert_eq!(expected.len(), 102);
    assert_feeds_hold(built, &expected);
}

#[test]
fn jekyll_post_dates_keep_their_utc_offset() {
    let Some(built) = jekyll() else { return };
    let cases = [
        // `date: "2013-05-06 02:12:52 +0200"`
        (
            "https://example.org/2013/05/06/jekyll-1-0-0-released/",
            "2013-05-06T00:12:52Z",
        ),
        // `date: "2013-09-06 22:02:41 -0400"`: the next day in UTC, while the
        // permalink keeps the day the author wrote.
        (
            "https://example.org/2013/09/06/jekyll-1-2-0-released/",
            "2013-09-07T02:02:41Z",
        ),
    ];
    for (url, date) in cases {
        for f in FORMATS {
            assert_eq!(
                entry(built, f, url).published,
                Some(utc(date)),
                "{f}: {url}"
            );
            if let Some(r) = report_entry(built, f, url) {
                assert_eq!(r["published"], date, "{f}: {url} (feedparser)");
            }
        }
    }
}

#[test]
fn jekyll_post_without_a_date_key_is_dated_by_its_file_name() {
    let Some(built) = jekyll() else { return };
    // 2014-05-06-jekyll-turns-2-0-0.markdown has no `date:`.
    let url = "https://example.org/2014/05/06/jekyll-turns-2-0-0/";
    for f in FORMATS {
        let e = entry(built, f, url);
        assert_eq!(
            e.title.as_ref().unwrap().content,
            "Jekyll turns 2.0.0",
            "{f}"
        );
        assert_eq!(e.published, Some(utc("2014-05-06T00:00:00Z")), "{f}");
        if let Some(r) = report_entry(built, f, url) {
            assert_eq!(r["published"], "2014-05-06T00:00:00Z", "{f} (feedparser)");
        }
    }
}

#[test]
fn jekyll_categories_become_tag_feeds_holding_exactly_their_posts() {
    let Some(built) = jekyll() else { return };
    // assert_feeds_hold compares every tag feed with the front matter; here
    // the sizes, counted by hand from `category:` and `categories: [...]`.
    let sizes: BTreeMap<&str, usize> = built
        .feeds
        .iter()
        .filter(|(rel, _)| rel.ends_with("/atom.xml"))
        .map(|(rel, feed)| (tag_of(rel).unwrap(), feed.entries.len()))
        .collect();
    let want = BTreeMap::from([
        ("community", 9),
        ("meetup", 1),
        ("partners", 1),
        ("release", 89),
        ("team", 3),
    ]);
    assert_eq!(sizes, want);
    // `categories: [team, community]` puts a post in both feeds, and in
    // nobody else's.
    let url = "https://example.org/2021/09/14/goodbye-dear-frank/";
    for (rel, feed) in &built.feeds {
        let holds = feed.entries.iter().any(|e| entry_link(e) == url);
        let should = matches!(tag_of(rel), None | Some("team") | Some("community"));
        assert_eq!(holds, should, "{rel}");
    }
    let e = entry(built, "tags/team/atom.xml", url);
    let terms: BTreeSet<&str> = e.categories.iter().map(|c| c.term.as_str()).collect();
    assert_eq!(terms, BTreeSet::from(["team", "community"]));
}

#[test]
fn jekyll_post_with_a_lenient_date_is_published_as_jekyll_reads_it_with_a_warning() {
    let Some(built) = jekyll() else { return };
    assert!(built.rejected.is_empty(), "{:?}", built.rejected);
    // `date: 2023-01-29 18:30:22 2023 -0800`: Jekyll publishes it at
    // 18:30:22 -08:00, ignoring the repeated year.
    let url = "https://example.org/2023/01/29/jekyll-3-9-3-released/";
    for f in FORMATS {
        assert_eq!(
            entry(built, f, url).published,
            Some(utc("2023-01-30T02:30:22Z")),
            "{f}"
        );
    }
    let warning: Vec<&String> = built
        .warnings
        .iter()
        .filter(|w| w.contains("2023-01-29-jekyll-3-9-3-released.markdown") && w.contains("date"))
        .collect();
    assert_eq!(warning.len(), 1, "{:?}", built.warnings);
    assert!(
        warning[0].contains("`2023-01-29 18:30:22 2023 -0800` is not a standard form"),
        "{}",
        warning[0]
    );
}

#[test]
fn jekyll_entry_content_links_are_all_absolute() {
    let Some(built) = jekyll() else { return };
    assert_content_urls_absolute(built, &[]);
}

#[test]
fn herald_build_publishes_all_102_jekyll_posts_and_warns_by_file_name() {
    let Some(dir) = shared_corpus("jekyll-posts") else {
        return;
    };
    let out = TestSite::over(&dir).cli(&["build"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("warning:") && l.contains("2023-01-29 18:30:22 2023 -0800"))
        .unwrap_or_else(|| panic!("no warning about the date:\n{err}"));
    assert!(
        line.contains("2023-01-29-jekyll-3-9-3-released.markdown"),
        "{line}"
    );
    assert!(
        err.contains("published 102 articles, rejected 0 files"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// The seed article

const SEED_TITLE: &str = "Why is the US sending asylum seekers back to Mexico?";
const SEED_SUMMARY_START: &str =
    "Doctors Without Borders/Médecins Sans Frontières (MSF) teams have treated thousands of people";

#[test]
fn seed_article_title_and_accents_survive_in_all_three_formats() {
    let Some(built) = seed() else { return };
    let dir = shared_corpus("seed").unwrap();
    let file = dir.join("why-is-the-us-sending-asylum-seekers-back-to-mexico.txt");
    let date = file_time(&file);
    let url = format!(
        "{BASE}{}/why-is-the-us-sending-asylum-seekers-back-to-mexico/",
        date.format("%Y/%m/%d")
    );
    let expected = ExpectedSite::from([(
        url.clone(),
        Expected {
            title: SEED_TITLE.into(),
            published: Some(date),
            tags: BTreeSet::new(),
        },
    )]);
    assert_feeds_hold(built, &expected);
    for f in FORMATS {
        let e = entry(built, f, &url);
        let content = content_of(e);
        assert!(
            content.contains("Médecins Sans Frontières"),
            "{f}: {content}"
        );
        assert!(
            content
                .contains("<p class=\"credit\"><small>Mexico 2021 © Yesika Ocampo/MSF</small></p>"),
            "{f}: the credit is marked up as a credit: {content}"
        );
        assert!(
            content.contains("“substantial and unjustifiable human costs"),
            "{f}"
        );
        let summary = e.summary.as_ref().map(|s| s.content.as_str()).unwrap();
        assert!(
            summary.starts_with(SEED_SUMMARY_START),
            "{f}: the summary is the first real paragraph: {summary}"
        );
        assert!(!summary.contains("Yesika Ocampo"), "{f}: {summary}");
        if let Some(r) = report_entry(built, f, &url) {
            assert!(
                r["summary_length"].as_u64().unwrap() > 100,
                "{f} (feedparser)"
            );
        }
    }
    assert_content_urls_absolute(built, &[]);
}

// ---------------------------------------------------------------------------
// The sample site in content/

#[test]
fn sample_content_builds_into_valid_feeds_with_every_published_article() {
    let built = sample();
    assert!(built.rejected.is_empty(), "{:?}", built.rejected);
    assert_feeds_hold(built, &sample_expected());
    // At least two tags hold two articles or more.
    let shared = built
        .feeds
        .iter()
        .filter(|(rel, feed)| {
            rel.starts_with("tags/") && rel.ends_with("rss.xml") && feed.entries.len() >= 2
        })
        .count();
    assert!(shared >= 2, "only {shared} tags are shared by two articles");
}

#[test]
fn sample_content_leaves_out_the_draft_and_the_future_article() {
    let built = sample();
    assert_eq!((built.drafts, built.scheduled), (1, 1));
    for (rel, feed) in &built.feeds {
        for e in &feed.entries {
            let title = e.title.as_ref().map(|t| t.content.as_str()).unwrap_or("");
            assert!(
                !title.contains("winter appeal"),
                "{rel}: the draft is published"
            );
            assert!(
                !title.contains("time capsule"),
                "{rel}: the 2099 article is published"
            );
            assert!(
                e.published.unwrap() <= Utc::now(),
                "{rel}: {title} is from the future"
            );
        }
    }
    // Their tags are shared with published articles, and their tag feeds
    // still hold only the published ones.
    assert_eq!(built.feeds["tags/finances/atom.xml"].entries.len(), 1);
    assert_eq!(built.feeds["tags/announcements/atom.xml"].entries.len(), 3);
}

#[test]
fn sample_bundle_image_is_an_enclosure_with_the_png_byte_length() {
    let built = sample();
    let png = sample_dir().join("how-we-lay-out-a-page/diagram.png");
    let bytes = std::fs::read(&png).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "diagram.png is a PNG"
    );
    let size = bytes.len() as u64;
    let page = "https://example.org/2024/02/20/how-we-lay-out-a-page/";
    let image = format!("{page}diagram.png");

    let rss = entry(built, "rss.xml", page);
    let media: Vec<_> = rss.media.iter().flat_map(|m| &m.content).collect();
    assert_eq!(media.len(), 1, "RSS enclosures: {media:?}");
    assert_eq!(
        media[0].url.as_ref().map(|u| u.as_str()),
        Some(image.as_str())
    );
    assert_eq!(media[0].size, Some(size), "RSS enclosure length");
    assert_eq!(
        media[0]
            .content_type
            .as_ref()
            .map(|m| m.to_string())
            .as_deref(),
        Some("image/png")
    );

    let atom = entry(built, "atom.xml", page);
    let enclosure = atom
        .links
        .iter()
        .find(|l| l.rel.as_deref() == Some("enclosure"))
        .expect("Atom link rel=enclosure");
    assert_eq!(enclosure.href, image);
    assert_eq!(enclosure.length, Some(size), "Atom enclosure length");
    assert_eq!(enclosure.media_type.as_deref(), Some("image/png"));

    let json = entry(built, "feed.json", page);
    let attachment = json
        .links
        .iter()
        .find(|l| l.href == image)
        .expect("JSON Feed attachment");
    assert_eq!(attachment.length, Some(size), "JSON Feed size_in_bytes");
    assert_eq!(attachment.media_type.as_deref(), Some("image/png"));

    // The Markdown image beside the article points at the same file.
    for f in FORMATS {
        assert!(
            content_of(entry(built, f, page)).contains(&format!("src=\"{image}\"")),
            "{f}"
        );
        if let Some(r) = report_entry(built, f, page) {
            assert_eq!(r["urls"], serde_json::json!([image]), "{f} (feedparser)");
        }
    }
}

#[test]
fn sample_summary_is_the_text_before_the_more_marker() {
    let built = sample();
    let url = "https://example.org/2024/03/20/the-spring-budget/";
    let want = "Running a weekly paper costs less than most people guess and more than we would like. \
                This spring we spent just under nine hundred pounds. Paper and ink took the largest \
                share; the rest went on the website and a new set of rollers for the press.";
    for f in FORMATS {
        let e = entry(built, f, url);
        assert_eq!(
            e.summary.as_ref().map(|s| s.content.as_str()),
            Some(want),
            "{f}"
        );
        // The whole article is still the content.
        assert!(content_of(e).contains("cake sale that sold out"), "{f}");
        if let Some(r) = report_entry(built, f, url) {
            assert_eq!(
                r["summary_length"],
                want.chars().count(),
                "{f} (feedparser)"
            );
        }
    }
}

#[test]
fn sample_relative_links_and_images_become_absolute() {
    let built = sample();
    let url = "https://example.org/guides/volunteer-handbook/";
    // Markdown links, raw HTML links and images, and a mailto link.
    let want = [
        "https://example.org/guides/distribution-routes/",
        "https://example.org/2024/03/05/printing-press-repairs/",
        "https://example.org/2024/02/20/how-we-lay-out-a-page/",
        "https://example.org/2024/02/20/how-we-lay-out-a-page/diagram.png",
        "mailto:editors@example.org",
    ];
    for f in FORMATS {
        let content = content_of(entry(built, f, url));
        for u in want {
            assert!(
                content.contains(&format!("=\"{u}\"")),
                "{f}: {u} missing from\n{content}"
            );
        }
        assert!(
            !content.contains("\"../"),
            "{f}: a relative link is left:\n{content}"
        );
        if let Some(r) = report_entry(built, f, url) {
            assert_eq!(r["urls"], serde_json::json!(want), "{f} (feedparser)");
        }
    }
    // RSS names the author by email where the front matter gives one.
    let rss = String::from_utf8_lossy(&built.raw["rss.xml"]);
    assert!(
        rss.contains("<author>ines@example.org (Ines Calloway)</author>"),
        "{rss}"
    );
}

#[test]
fn sample_table_strikethrough_and_footnote_render_with_absolute_footnote_links() {
    let built = sample();
    let url = "https://example.org/guides/distribution-routes/";
    for f in FORMATS {
        let content = content_of(entry(built, f, url));
        assert!(content.contains("<table>"), "{f}: {content}");
        assert!(content.contains("<td>Dev and Anna Patel</td>"), "{f}");
        assert!(
            content.contains("<del>starts at the level crossing</del>"),
            "{f}"
        );
        assert!(
            content.contains("Weather permitting."),
            "{f}: the footnote text"
        );
        // The footnote reference jumps to the footnote on the article's own
        // page, so it must carry the page's address like every other link.
        assert!(
            content.contains("href=\"https://example.org/guides/distribution-routes/#bike\""),
            "{f}: footnote reference is not an absolute link:\n{content}"
        );
    }
}

#[test]
fn sample_plain_text_article_keeps_its_accents_in_every_format() {
    let built = sample();
    let url = cafe_url();
    let date = file_time(&sample_dir().join("cafe-corner.txt"));
    for f in FORMATS {
        let e = entry(built, f, &url);
        assert_eq!(e.title.as_ref().unwrap().content, CAFE_TITLE, "{f}");
        assert_eq!(
            e.published.unwrap().timestamp(),
            date.timestamp(),
            "{f}: dated by the file"
        );
        let content = content_of(e);
        assert!(content.contains("Amélie Durand"), "{f}: {content}");
        assert!(content.contains("crème brûlée"), "{f}");
        assert!(
            content.contains("Ledger&#39;s") || content.contains("Ledger's"),
            "{f}"
        );
        // The photo credit is marked up as one, and the summary is the
        // story's first paragraph, not the credit.
        assert!(
            content.contains(
                "<p class=\"credit\"><small>Photograph © Zoë Marchetti for the Ledger</small></p>"
            ),
            "{f}: {content}"
        );
        let summary = e.summary.as_ref().map(|s| s.content.as_str()).unwrap();
        assert!(
            summary.starts_with("The Café Lumière on Station Road has cleared its back room"),
            "{f}: {summary}"
        );
        assert!(!summary.contains('©'), "{f}: {summary}");
    }
}

#[test]
fn sample_entry_content_links_are_all_absolute() {
    assert_content_urls_absolute(sample(), &[]);
}

#[test]
fn herald_build_exits_0_for_the_sample_content() {
    let site = TestSite::over(&sample_dir());
    let out = site.cli(&["build"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("rejected:"), "{err}");
    assert!(
        err.contains("published 8 articles, rejected 0 files, 1 draft, 1 scheduled"),
        "{err}"
    );
    assert_eq!(
        feed_files(&site.feeds).len(),
        3 * 8,
        "site-wide feeds and 7 tags"
    );
}

#[cfg(unix)]
#[test]
fn built_feed_files_are_readable_by_other_users() {
    use std::os::unix::fs::PermissionsExt;
    let site = TestSite::over(&sample_dir());
    site.build();
    // A web server or a backup job running as another user reads the feeds.
    for f in feed_files(&site.feeds) {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode & 0o044,
            0o044,
            "{}: mode {mode:o}, group and others cannot read it",
            f.display()
        );
    }
}
