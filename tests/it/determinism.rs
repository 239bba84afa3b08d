//! Same content, same bytes: builds are reproducible across output
//! directories, rebuilds touch nothing that did not change, undated articles
//! keep the date herald first gave them, and feed dates come from articles,
//! never from the clock.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use filetime::FileTime;

use crate::helpers::TestSite;

/// An instant long ago, for mtimes that a rebuild must not change.
const OLD: i64 = 1_000_000_000; // 2001-09-09

/// Every file under `dir`, by path relative to it with `/` separators.
fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn names(files: &BTreeMap<String, Vec<u8>>) -> BTreeSet<String> {
    files.keys().cloned().collect()
}

fn feed_files(dir: &str) -> Vec<String> {
    ["atom.xml", "feed.json", "rss.xml"]
        .iter()
        .map(|n| format!("{dir}{n}"))
        .collect()
}

/// Sets every file under `dir` to an old mtime, so that a rewrite shows.
fn age_all(dir: &Path) {
    for rel in files_under(dir).keys() {
        filetime::set_file_mtime(dir.join(rel), FileTime::from_unix_time(OLD, 0)).unwrap();
    }
}

fn mtime(p: &Path) -> FileTime {
    FileTime::from_last_modification_time(&std::fs::metadata(p).unwrap())
}

fn written(site: &TestSite) -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    let outcome = site.build();
    assert!(
        outcome.load.rejected.is_empty(),
        "{:?}",
        outcome.load.rejected
    );
    let w = outcome.write.expect("build writes");
    (
        w.written.into_iter().collect(),
        w.unchanged.into_iter().collect(),
        w.removed.into_iter().collect(),
    )
}

fn parse(path: &Path) -> feed_rs::model::Feed {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    feed_rs::parser::parse(&bytes[..])
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()))
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// `date_published` of the JSON Feed item titled `title`.
fn json_date(site: &TestSite, title: &str) -> String {
    let feed: serde_json::Value = serde_json::from_slice(&site.feed("feed.json")).unwrap();
    let item = feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["title"] == title)
        .unwrap_or_else(|| panic!("no item {title:?} in {feed}"));
    item["date_published"].as_str().unwrap().to_string()
}

fn write_dated_site(site: &TestSite) {
    site.write(
        "posts/2024-01-10-toml.md",
        "+++\ntitle = \"TOML post\"\ntags = [\"rust\", \"web\"]\n+++\nSome *Markdown* with a [link](/about/).\n",
    );
    site.write(
        "posts/yaml.md",
        "---\ntitle: YAML post\ndate: 2024-02-11 08:30:00 +0200\ntags: [rust]\nauthor: Jane\n---\n<p>raw <b>html</b></p>\n",
    );
    site.write(
        "notes/2024-03-12-note.txt",
        "A dated note\n\nIts date is in the file name.\n",
    );
    site.write(
        "posts/cooking.md",
        "+++\ntitle = \"Bread\"\ndate = 2024-03-01T12:00:00+01:00\nupdated = 2024-03-20T12:00:00Z\ncategories = [\"Cooking\"]\n+++\nFlour, water, salt.\n",
    );
}

#[test]
fn two_sites_with_the_same_dated_content_produce_byte_identical_feeds() {
    let (one, two) = (TestSite::new(), TestSite::new());
    write_dated_site(&one);
    write_dated_site(&two);
    written(&one);
    written(&two);
    let (a, b) = (files_under(&one.feeds), files_under(&two.feeds));
    assert!(a.len() >= 3 * 4, "site-wide and tag feeds: {:?}", names(&a));
    assert_eq!(names(&a), names(&b));
    for (rel, bytes) in &a {
        assert!(bytes == &b[rel], "{rel} differs between the two builds");
    }
}

#[test]
fn builds_sharing_a_data_dir_give_identical_feeds_even_for_undated_articles() {
    let mut site = TestSite::new();
    write_dated_site(&site);
    let undated = site.write(
        "notes/undated.txt",
        "An undated note\n\nNo date anywhere.\n",
    );
    written(&site);
    let first = site.feeds.clone();

    // A touch in between must not matter: the date is on record.
    filetime::set_file_mtime(&undated, FileTime::from_unix_time(OLD, 0)).unwrap();
    site.feeds = site.dir.path().join("feeds-again");
    let (w, unchanged, _) = written(&site);
    assert!(
        unchanged.is_empty() && !w.is_empty(),
        "a fresh directory gets every file"
    );

    let (a, b) = (files_under(&first), files_under(&site.feeds));
    assert_eq!(names(&a), names(&b));
    for (rel, bytes) in &a {
        assert!(bytes == &b[rel], "{rel} differs between the two builds");
    }
}

#[test]
fn a_second_build_writes_nothing_and_leaves_every_mtime_alone() {
    let site = TestSite::new();
    write_dated_site(&site);
    site.write(
        "notes/undated.txt",
        "An undated note\n\nNo date anywhere.\n",
    );
    let (w, _, _) = written(&site);
    let all = names(&files_under(&site.feeds));
    assert_eq!(w, all);
    age_all(&site.feeds);

    let (w, unchanged, removed) = written(&site);
    assert!(w.is_empty(), "rewrote {w:?}");
    assert!(removed.is_empty(), "removed {removed:?}");
    assert_eq!(unchanged, all);
    for rel in &all {
        assert_eq!(
            mtime(&site.feeds.join(rel)),
            FileTime::from_unix_time(OLD, 0),
            "{rel} was touched"
        );
    }

    // The binary says so too.
    let out = site.cli(&["build"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let want = format!("; wrote 0 files ({} unchanged, 0 removed) in ", all.len());
    assert!(
        err.lines()
            .any(|l| l.starts_with("published ") && l.contains(&want)),
        "{err}"
    );
}

#[test]
fn touching_content_files_without_changing_them_rewrites_nothing() {
    let site = TestSite::new();
    write_dated_site(&site);
    site.write(
        "notes/undated.txt",
        "An undated note\n\nNo date anywhere.\n",
    );
    written(&site);
    age_all(&site.feeds);

    let later = FileTime::from_unix_time(OLD + 500_000_000, 0);
    for rel in files_under(&site.content).keys() {
        filetime::set_file_mtime(site.content.join(rel), later).unwrap();
    }
    let (w, unchanged, _) = written(&site);
    assert!(w.is_empty(), "a touch rewrote {w:?}");
    for rel in &unchanged {
        assert_eq!(
            mtime(&site.feeds.join(rel)),
            FileTime::from_unix_time(OLD, 0),
            "{rel} was touched"
        );
    }
}

#[test]
fn an_undated_text_article_keeps_its_first_seen_date_across_touches_and_rebuilds() {
    let mut site = TestSite::new();
    let note = site.write("undated.txt", "Undated note\n\nNothing here says when.\n");
    let first_seen = 1_685_620_800; // 2023-06-01T12:00:00Z
    filetime::set_file_mtime(&note, FileTime::from_unix_time(first_seen, 0)).unwrap();
    written(&site);
    assert_eq!(json_date(&site, "Undated note"), "2023-06-01T12:00:00Z");
    // The date is kept in the store, where every replica finds it.
    let record = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = herald::store::open(&site.config()).await.unwrap();
        store.undated_dates().await.unwrap()
    });
    assert_eq!(
        record
            .iter()
            .map(|(rel, d)| (rel.as_str(), d.to_rfc3339()))
            .collect::<Vec<_>>(),
        [("undated.txt", "2023-06-01T12:00:00+00:00".to_string())]
    );
    assert!(!site.data.join("first-seen.json").exists());

    filetime::set_file_mtime(&note, FileTime::from_unix_time(1_735_689_600, 0)).unwrap(); // 2025-01-01
    let (w, _, _) = written(&site);
    assert!(w.is_empty(), "a touch rewrote {w:?}");
    assert_eq!(json_date(&site, "Undated note"), "2023-06-01T12:00:00Z");

    // Even an edit keeps the date, and so does a build into a new place.
    std::fs::write(&note, "Undated note\n\nNow with more words.\n").unwrap();
    site.feeds = site.dir.path().join("elsewhere");
    written(&site);
    assert_eq!(json_date(&site, "Undated note"), "2023-06-01T12:00:00Z");
}

#[test]
fn an_undated_article_keeps_its_date_after_a_build_that_rejected_it_for_a_moment() {
    // An editor that truncates before writing, or a half-synced file, makes
    // one build reject the article; when it is whole again it must not jump
    // to the top of the feed with a new date.
    let site = TestSite::new();
    site.write(
        "dated.md",
        "+++\ntitle = \"Dated\"\ndate = 2024-01-01\n+++\n",
    );
    let note = site.write("undated.txt", "Undated note\n\nBody.\n");
    filetime::set_file_mtime(&note, FileTime::from_unix_time(1_685_620_800, 0)).unwrap();
    written(&site);
    assert_eq!(json_date(&site, "Undated note"), "2023-06-01T12:00:00Z");

    std::fs::write(&note, "").unwrap();
    let outcome = site.build();
    assert_eq!(outcome.load.rejected.len(), 1);

    std::fs::write(&note, "Undated note\n\nBody.\n").unwrap();
    filetime::set_file_mtime(&note, FileTime::from_unix_time(1_735_689_600, 0)).unwrap();
    written(&site);
    assert_eq!(json_date(&site, "Undated note"), "2023-06-01T12:00:00Z");
}

fn write_tagged_site(site: &TestSite) -> PathBuf {
    let a = site.write(
        "a.md",
        "+++\ntitle = \"A\"\ndate = 2024-01-01\ntags = [\"rust\"]\n+++\nOriginal body.\n",
    );
    site.write(
        "b.md",
        "+++\ntitle = \"B\"\ndate = 2024-01-02\ntags = [\"cooking\"]\n+++\nBody.\n",
    );
    site.write(
        "c.md",
        "+++\ntitle = \"C\"\ndate = 2024-01-03\ntags = [\"rust\", \"web\"]\n+++\nBody.\n",
    );
    a
}

#[test]
fn editing_one_article_rewrites_exactly_the_feeds_that_contain_it() {
    let site = TestSite::new();
    let a = write_tagged_site(&site);
    written(&site);
    age_all(&site.feeds);

    std::fs::write(
        &a,
        "+++\ntitle = \"A\"\ndate = 2024-01-01\ntags = [\"rust\"]\n+++\nEdited body.\n",
    )
    .unwrap();
    let (w, unchanged, removed) = written(&site);
    let mut want: Vec<String> = feed_files("");
    want.extend(feed_files("tags/rust/"));
    assert_eq!(w, want.into_iter().collect::<BTreeSet<_>>());
    let mut untouched: Vec<String> = feed_files("tags/cooking/");
    untouched.extend(feed_files("tags/web/"));
    assert_eq!(
        unchanged,
        untouched.iter().cloned().collect::<BTreeSet<_>>()
    );
    assert!(removed.is_empty());
    for rel in &untouched {
        assert_eq!(
            mtime(&site.feeds.join(rel)),
            FileTime::from_unix_time(OLD, 0),
            "{rel} was touched"
        );
    }
    assert!(String::from_utf8(site.feed("tags/rust/atom.xml"))
        .unwrap()
        .contains("Edited body."));
}

#[test]
fn removing_the_last_article_with_a_tag_removes_that_tags_feeds() {
    let site = TestSite::new();
    write_tagged_site(&site);
    written(&site);
    assert!(site.feeds.join("tags/cooking/atom.xml").is_file());

    std::fs::remove_file(site.content.join("b.md")).unwrap();
    let (w, _, removed) = written(&site);
    assert_eq!(
        removed,
        feed_files("tags/cooking/")
            .into_iter()
            .collect::<BTreeSet<_>>()
    );
    assert_eq!(w, feed_files("").into_iter().collect::<BTreeSet<_>>());
    assert!(
        !site.feeds.join("tags/cooking").exists(),
        "the empty tag folder goes too"
    );
    let left = names(&files_under(&site.feeds));
    let mut want = feed_files("");
    want.extend(feed_files("tags/rust/"));
    want.extend(feed_files("tags/web/"));
    assert_eq!(left, want.into_iter().collect::<BTreeSet<_>>());
}

#[test]
fn files_herald_does_not_own_survive_stale_feed_cleanup() {
    let site = TestSite::new();
    write_tagged_site(&site);
    written(&site);
    std::fs::write(site.feeds.join("tags/cooking/notes.txt"), "mine").unwrap();
    std::fs::write(site.feeds.join("index.html"), "mine").unwrap();
    std::fs::remove_file(site.content.join("b.md")).unwrap();
    written(&site);
    assert!(!site.feeds.join("tags/cooking/atom.xml").exists());
    assert_eq!(
        std::fs::read(site.feeds.join("tags/cooking/notes.txt")).unwrap(),
        b"mine"
    );
    assert_eq!(
        std::fs::read(site.feeds.join("index.html")).unwrap(),
        b"mine"
    );
}

#[test]
fn no_temporary_files_are_left_behind_after_writes_rewrites_and_removals() {
    let site = TestSite::new();
    let a = write_tagged_site(&site);
    site.write("undated.txt", "Undated\n\nBody.\n");
    written(&site);
    std::fs::write(
        &a,
        "+++\ntitle = \"A2\"\ndate = 2024-01-01\ntags = [\"rust\"]\n+++\nNew.\n",
    )
    .unwrap();
    written(&site);
    std::fs::remove_file(site.content.join("b.md")).unwrap();
    written(&site);
    written(&site);
    for dir in [&site.feeds, &site.data] {
        let leftovers: Vec<String> = files_under(dir)
            .into_keys()
            .filter(|rel| rel.rsplit('/').next().unwrap().starts_with(".herald-tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{}: {leftovers:?}", dir.display());
    }
}

#[test]
fn an_empty_content_directory_gives_valid_empty_feeds_in_every_format() {
    let site = TestSite::new();
    let (w, _, _) = written(&site);
    assert_eq!(w, feed_files("").into_iter().collect::<BTreeSet<_>>());

    for name in ["rss.xml", "atom.xml", "feed.json"] {
        let feed = parse(&site.feeds.join(name));
        assert!(feed.entries.is_empty(), "{name}");
        assert_eq!(
            feed.title.as_ref().map(|t| t.content.as_str()),
            Some("Test Site"),
            "{name}"
        );
    }

    let atom_text = String::from_utf8(site.feed("atom.xml")).unwrap();
    for element in ["<id>", "<title>", "<updated>"] {
        assert!(
            atom_text.contains(element),
            "atom.xml lacks {element}: {atom_text}"
        );
    }
    let atom = parse(&site.feeds.join("atom.xml"));
    assert_eq!(atom.id, "https://example.org/atom.xml");
    // No article, no date: the epoch stands in, never the clock.
    assert_eq!(atom.updated, Some(DateTime::UNIX_EPOCH));

    let json: serde_json::Value = serde_json::from_slice(&site.feed("feed.json")).unwrap();
    assert_eq!(json["version"], "https://jsonfeed.org/version/1.1");
    assert_eq!(json["items"], serde_json::json!([]));

    let before = files_under(&site.feeds);
    written(&site);
    assert_eq!(files_under(&site.feeds), before);
}

#[test]
fn the_feed_updated_time_is_the_newest_articles_date_not_the_clock() {
    let site = TestSite::new();
    site.write(
        "old.md",
        "+++\ntitle = \"Old\"\ndate = 2023-12-01\ntags = [\"x\"]\n+++\n",
    );
    site.write(
        "mid.md",
        "+++\ntitle = \"Mid\"\ndate = 2024-01-01T06:00:00Z\ntags = [\"x\"]\n+++\n",
    );
    site.write(
        "new.md",
        "---\ntitle: New\ndate: 2024-03-05T10:00:00+02:00\ntags: [y]\n---\n",
    );
    written(&site);

    let newest = utc("2024-03-05T08:00:00Z");
    assert_eq!(parse(&site.feeds.join("atom.xml")).updated, Some(newest));
    assert_eq!(
        parse(&site.feeds.join("rss.xml")).updated,
        Some(newest),
        "RSS lastBuildDate"
    );
    assert_eq!(
        parse(&site.feeds.join("tags/x/atom.xml")).updated,
        Some(utc("2024-01-01T06:00:00Z"))
    );
    assert_eq!(
        parse(&site.feeds.join("tags/y/atom.xml")).updated,
        Some(newest)
    );
}

#[test]
fn an_articles_updated_date_moves_the_feed_updated_time() {
    let site = TestSite::new();
    site.write("a.md", "+++\ntitle = \"A\"\ndate = 2024-01-01\n+++\n");
    site.write(
        "b.md",
        "+++\ntitle = \"B\"\ndate = 2023-01-01\nupdated = 2024-06-01T00:00:00Z\n+++\n",
    );
    written(&site);
    assert_eq!(
        parse(&site.feeds.join("atom.xml")).updated,
        Some(utc("2024-06-01T00:00:00Z"))
    );
}
