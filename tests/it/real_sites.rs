//! Sites as real repositories hold them: the Rust blog built the way its
//! own Zola config builds it (compared with Zola's feeds), Jekyll's news
//! posts with Jekyll's default permalinks and Liquid, and a blog repository
//! written here with everything that is not an article beside the posts
//! (README, index templates, redirect stubs, data dumps, a copyright
//! file). Every RSS and Atom file written for them goes through the W3C
//! feed validator.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use feed_rs::model::Feed;

use crate::helpers::{
    feedparser, herald_command, repo_root, shared_corpus, validate_feeds, TestSite,
};

fn parse_feed(path: &Path) -> Feed {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    feed_rs::parser::parse(bytes.as_slice())
        .unwrap_or_else(|e| panic!("feed-rs cannot parse {}: {e}", path.display()))
}

fn link_of(e: &feed_rs::model::Entry) -> String {
    e.links
        .iter()
        .find(|l| matches!(l.rel.as_deref(), None | Some("alternate")))
        .map(|l| l.href.clone())
        .unwrap_or_default()
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every file under `dir`, by path relative to it.
fn files_under(dir: &Path) -> BTreeMap<String, PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, e.into_path())
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The Rust blog, as Zola builds it

/// A site folder shaped like the sample (`herald.toml`, `content/`,
/// `feeds/`, `data/`) with `config/examples/rust-blog.toml` as its config
/// and the corpus as its content, built by the real binary.
fn rust_blog_as_zola() -> Option<(tempfile::TempDir, PathBuf)> {
    let corpus = shared_corpus("rust-blog/content")?;
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&corpus, dir.path().join("content")).unwrap();
    let config = dir.path().join("herald.toml");
    std::fs::copy(repo_root().join("config/examples/rust-blog.toml"), &config).unwrap();
    let out = herald_command(&config, &["build"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let feeds = dir.path().join("feeds");
    Some((dir, feeds))
}

#[test]
fn rust_blog_feeds_match_zolas_ten_newest_entries_in_the_same_order() {
    let Some((_dir, feeds)) = rust_blog_as_zola() else {
        return;
    };
    let mut matched = 0;
    let mut differences = Vec::new();
    for (reference, file) in [
        ("main", "feed.xml"),
        ("inside-rust", "inside-rust/feed.xml"),
    ] {
        let path = repo_root().join(format!(
            "../shared/reference/rust-blog-zola-{reference}.json"
        ));
        let want: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let feed = parse_feed(&feeds.join(file));
        assert_eq!(
            feed.entries.len(),
            10,
            "{file}: Zola's feeds hold 10 entries"
        );
        for (i, (w, got)) in want.iter().zip(&feed.entries).enumerate() {
            let want_date: DateTime<Utc> = w["date"].as_str().unwrap().parse().unwrap();
            let same = got.title.as_ref().map(|t| t.content.as_str()) == w["title"].as_str()
                && got.published == Some(want_date)
                && link_of(got) == w["link"].as_str().unwrap()
                && got.id == w["id"].as_str().unwrap();
            if same {
                matched += 1;
            } else {
                differences.push(format!(
                    "{file} #{i}: want {} {} {}, got {:?} {:?} {}",
                    w["date"],
                    w["title"],
                    w["link"],
                    got.published,
                    got.title.as_ref().map(|t| &t.content),
                    link_of(got)
                ));
            }
        }
    }
    assert_eq!(
        matched,
        20,
        "entries matching Zola's:\n{}",
        differences.join("\n")
    );
}

#[test]
fn rust_blog_root_feed_holds_no_inside_rust_post_and_the_section_feed_only_those() {
    let Some((_dir, feeds)) = rust_blog_as_zola() else {
        return;
    };
    let files: BTreeSet<String> = files_under(&feeds).into_keys().collect();
    let want: BTreeSet<String> = [
        "feed.xml",
        "rss.xml",
        "feed.json",
        "inside-rust/feed.xml",
        "inside-rust/rss.xml",
        "inside-rust/feed.json",
    ]
    .map(String::from)
    .into();
    assert_eq!(files, want);
    for f in ["feed.xml", "rss.xml", "feed.json"] {
        let root = parse_feed(&feeds.join(f));
        assert!(
            root.entries
                .iter()
                .all(|e| !link_of(e).contains("/inside-rust/")),
            "{f}"
        );
        let section = parse_feed(&feeds.join("inside-rust").join(f));
        assert!(
            section
                .entries
                .iter()
                .all(|e| link_of(e).contains("/inside-rust/")),
            "{f}"
        );
        let self_link = section
            .links
            .iter()
            .find(|l| l.rel.as_deref() == Some("self"))
            .map(|l| l.href.clone());
        if f != "feed.json" {
            assert_eq!(
                self_link.as_deref(),
                Some(format!("https://blog.rust-lang.org/inside-rust/{f}").as_str())
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Jekyll's news posts, as Jekyll builds them

/// A config for `content` with `[content]` and `[feeds]` keys added.
fn site_with(content: &Path, content_keys: &str, feeds_keys: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("herald.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\n[site]\ntitle = \"T\"\nbase_url = \"https://example.org/\"\nauthor = {{ name = \"Site Author\" }}\n\
             [content]\ndir = {content:?}\n{content_keys}\n[feeds]\ndir = {feeds:?}\n{feeds_keys}\n",
            data = dir.path().join("data").display().to_string(),
            content = content.display().to_string(),
            feeds = dir.path().join("feeds").display().to_string(),
        ),
    )
    .unwrap();
    (dir, config)
}

const JEKYLL_CONTENT: &str = r#"article_url = "date"
variables = { repository = "https://github.com/jekyll/jekyll" }"#;

/// The URL Jekyll's default permalink (`date`) gives a post:
/// `/:categories/:year/:month/:day/:title:output_ext`.
fn jekyll_default_url(file: &str, fm: &serde_yaml::Value) -> String {
    let stem = file.rsplit_once('.').unwrap().0;
    let day = match fm.get("date").and_then(|d| d.as_str()) {
        // The day as written, in the date's own offset.
        Some(d) => d[..10].replace('-', "/"),
        None => stem[..10].replace('-', "/"),
    };
    let mut cats: Vec<String> = Vec::new();
    for key in ["categories", "category"] {
        match fm.get(key) {
            Some(serde_yaml::Value::Sequence(s)) => {
                cats.extend(s.iter().map(|c| c.as_str().unwrap().to_lowercase()))
            }
            Some(serde_yaml::Value::String(s)) => {
                cats.extend(s.split_whitespace().map(str::to_lowercase))
            }
            _ => {}
        }
    }
    let mut seen = BTreeSet::new();
    cats.retain(|c| seen.insert(c.clone()));
    let prefix: String = cats.iter().map(|c| format!("{c}/")).collect();
    format!("https://example.org/{prefix}{day}/{}.html", &stem[11..])
}

/// `{% … %}` and `{{ … }}` tags in `text`.
fn liquid_tags(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (open, close) in [("{%", "%}"), ("{{", "}}")] {
        let mut rest = text;
        while let Some(i) = rest.find(open) {
            let after = &rest[i..];
            let end = after
                .find(close)
                .map(|e| e + close.len())
                .unwrap_or(after.len().min(40));
            out.push(after[..end].to_string());
            rest = &after[open.len()..];
        }
    }
    out
}

fn unescape_html(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// What each post's `{% raw %}` blocks hold: the only Liquid a feed may
/// show, verbatim, as Jekyll does.
fn raw_blocks(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("{% raw %}") {
        let after = &rest[i + "{% raw %}".len()..];
        let end = after.find("{% endraw %}").unwrap_or(after.len());
        out.push_str(&after[..end]);
        out.push('\n');
        rest = &after[end..];
    }
    out
}

#[test]
fn jekyll_posts_all_publish_at_jekylls_default_permalinks_with_no_liquid_left() {
    let Some(corpus) = shared_corpus("jekyll-posts") else {
        return;
    };
    let (dir, config) = site_with(&corpus, JEKYLL_CONTENT, "limit = 0");
    let out = herald_command(&config, &["build"]).output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("published 102 articles, rejected 0 files"),
        "{err}"
    );

    let feed = parse_feed(&dir.path().join("feeds/atom.xml"));
    let by_link: BTreeMap<String, &feed_rs::model::Entry> =
        feed.entries.iter().map(|e| (link_of(e), e)).collect();
    let mut checked = 0;
    for path in std::fs::read_dir(corpus.join("_posts")).unwrap() {
        let path = path.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let front = text
            .split("\n---\n")
            .next()
            .unwrap()
            .trim_start_matches("---\n");
        let fm: serde_yaml::Value = serde_yaml::from_str(front).unwrap();
        let url = jekyll_default_url(&file, &fm);
        let entry = by_link
            .get(&url)
            .unwrap_or_else(|| panic!("{file}: no entry at {url}"));
        let content = unescape_html(
            entry
                .content
                .as_ref()
                .and_then(|c| c.body.as_deref())
                .unwrap_or(""),
        );
        let allowed = raw_blocks(&text);
        for tag in liquid_tags(&content) {
            assert!(
                allowed.contains(&tag),
                "{file}: Liquid `{tag}` reached the feed outside a {{% raw %}} block"
            );
        }
        assert!(
            !content.contains("{% raw %}\n") && !content.contains("{% endraw %}"),
            "{file}"
        );
        checked += 1;
    }
    assert_eq!(checked, 102);

    // `{{ site.repository }}` comes from content.variables, and
    // `{% link _posts/… %}` is the other post's permalink.
    let post = by_link["https://example.org/release/2017/03/21/jekyll-3-4-3-released.html"];
    let content = post.content.as_ref().unwrap().body.as_deref().unwrap();
    assert!(
        content
            .contains("href=\"https://example.org/release/2017/01/18/jekyll-3-4-0-released.html\""),
        "{content}"
    );
    let with_repo = feed
        .entries
        .iter()
        .filter(|e| {
            e.content
                .as_ref()
                .and_then(|c| c.body.as_deref())
                .is_some_and(|b| b.contains("https://github.com/jekyll/jekyll/"))
        })
        .count();
    assert!(with_repo >= 20, "{with_repo} entries link the repository");
}

// ---------------------------------------------------------------------------
// A blog repository with everything real ones hold

/// (relative path, text) of a blog repository's content folder.
const BLOG_FILES: &[(&str, &str)] = &[
    ("README.md", "# Our blog\n\nThis repository holds the posts. Run `make` to build.\n"),
    ("copyright.txt", "Copyright 2024 The Blog Authors. All rights reserved.\n\nUse of this source is governed by a licence.\n"),
    ("LICENSE", "MIT\n"),
    ("index.md", "---\ntitle: Home\ntemplate: true\n---\n{{range .Posts}}<a href=\"{{.URL}}\">{{.Title}}</a>{{end}}\n"),
    ("blog/index.md", "---\ntitle: All posts\ntemplate: true\n---\n\n{{range .Articles}}\n- {{.Title}}\n{{end}}\n"),
    ("blog/old-url.md", "---\nredirect: /blog/go-1-22/\n---\n"),
    ("blog/moved.md", "---\ntitle: Moved\nredirect_to: https://example.org/elsewhere/\n---\n"),
    ("blog/aliases.md", "+++\naliases = [\"/old/path/\"]\n+++\n"),
    ("blog/benchmarks.txt", "goos: linux\ngoarch: amd64\npkg: example.org/fast\ncpu: AMD EPYC\nBenchmarkParse-8   \t  100000\t     12034 ns/op\nPASS\n"),
    ("blog/todo.txt", "remember to write the release post\n"),
    ("blog/hidden.md", "+++\ntitle = \"Hidden\"\ndate = 2024-03-01\n[_build]\nlist = \"never\"\n+++\nNot in any list.\n"),
    ("blog/draft.md", "---\ntitle: Not yet\ndate: 2024-02-01\npublished: false\n---\nSoon.\n"),
    // Articles.
    ("blog/go-1-22.md", "---\ntitle: Go 1.22 is released\ndate: 2024-2-6\nby:\n  - Eli Bendersky\n  - Robert Griesemer\ntags: [go, 47, release]\ntemplate: true\n---\n\nToday the Go team is thrilled to release Go 1.22. {{ site.nothing }}\n\nSee the <a href=\"notes/\">notes</a> and <link rel=\"alternate\" href=\"/feed.atom\">.\n"),
    ("blog/go-1-22/benchmark-notes.md", "Raw notes kept beside the post.\n"),
    ("blog/2024-04-09-unpadded.md", "---\ntitle: An unpadded date\ndate: 2024-4-09 10:30:00 +0200\nauthors: Ann Writer\ntags: [news, true]\n---\n\nDates like `2024-4-09` are common in hand-written front matter.\n"),
    ("blog/2024-05-01-title-only.md", "---\ntitle: Just a title\n---\n"),
    ("blog/letter.txt", "A letter from the harbour\n\nPhoto: Jane Doe/Harbour Press\n\nThe boats came in late this year, and the harbour master wrote to us about it.\n\nHe says the season was long.\n"),
    ("blog/undated.md", "+++\ntitle = \"An undated note\"\n+++\n\nNotes carry no date; herald dates them when it first sees them.\n"),
    ("posts/_index.md", "+++\ntitle = \"Posts\"\ngenerate_feeds = true\n+++\n"),
    ("posts/trip/index.md", "+++\ntitle = \"A trip in pictures\"\ndate = 2024-06-01\ntags = [\"travel\", 2024]\n[taxonomies]\ncategories = [\"photos\"]\n+++\n\n<figure><img src=\"a.jpg\" srcset=\"a.jpg 1x, a@2x.jpg 2x\"><figcaption>The coast</figcaption></figure>\n\n<video src=\"clip.mp4\" poster=\"clip.jpg\"></video> <a href=\"/über/\">über</a>\n"),
    ("posts/trip/notes.md", "Notes for the trip post, not an article.\n"),
    ("posts/café-ouvert.md", "+++\ntitle = \"Le café est ouvert\"\ndate = 2024-06-02T09:00:00+02:00\nauthors = [{ name = \"Zoë\", email = \"zoe@example.org\" }]\n+++\n\n<form action=\"/search\"><button formaction=\"go\">Go</button></form> <blockquote cite=\"source.html\">Ouvert.</blockquote>\n"),
    ("drafts-old/ancient.md", "---\ntitle: Ancient\ndate: 2001-01-01\n---\nOld.\n"),
    (".heraldignore", "drafts-old/\n"),
];

/// Titles of the articles in BLOG_FILES.
const BLOG_ARTICLES: &[&str] = &[
    "Go 1.22 is released",
    "An unpadded date",
    "Just a title",
    "A letter from the harbour",
    "An undated note",
    "A trip in pictures",
    "Le café est ouvert",
];

/// (file, what `herald check --verbose` says about it).
const BLOG_SKIPS: &[(&str, &str)] = &[
    (
        "README.md",
        "excluded by content.exclude pattern `README.*`",
    ),
    (
        "copyright.txt",
        "excluded by content.exclude pattern `COPYRIGHT.*`",
    ),
    ("index.md", "excluded by content.exclude pattern `/index.*`"),
    (
        "blog/index.md",
        "template page (`template` set and no date)",
    ),
    (
        "blog/old-url.md",
        "redirect stub (`redirect: /blog/go-1-22/`)",
    ),
    (
        "blog/moved.md",
        "redirect stub (`redirect_to: https://example.org/elsewhere/`)",
    ),
    (
        "blog/aliases.md",
        "alias stub (`aliases` and no title or date)",
    ),
    ("blog/benchmarks.txt", "looks like data"),
    ("blog/todo.txt", "only one line of text"),
    ("blog/hidden.md", "never listed (`_build.list = never`)"),
    (
        "posts/trip/notes.md",
        "asset of the page bundle posts/trip/index.md",
    ),
    (
        "blog/go-1-22/benchmark-notes.md",
        "asset of the article beside its folder, blog/go-1-22.md",
    ),
    ("drafts-old/", "excluded by `drafts-old/` in .heraldignore"),
];

fn blog() -> TestSite {
    let mut site = TestSite::new();
    for (rel, text) in BLOG_FILES {
        site.write(rel, text);
    }
    site.feeds_section = "limit = 0\ntag_limit = 0".into();
    site.extra = "[[digest]]\nname = \"weekly\"\nschedule = \"0 0 8 * * Mon\"\n".into();
    site
}

#[test]
fn realistic_blog_publishes_every_article_and_nothing_else() {
    let site = blog();
    let outcome = site.build();
    assert!(
        outcome.load.rejected.is_empty(),
        "{:?}",
        outcome.load.rejected
    );
    assert_eq!(outcome.load.drafts, 1, "blog/draft.md");
    let feeds = files_under(&site.feeds);
    for (rel, path) in &feeds {
        if !rel.ends_with(".xml") && !rel.ends_with(".json") {
            continue;
        }
        let feed = parse_feed(path);
        let titles: BTreeSet<String> = feed
            .entries
            .iter()
            .map(|e| e.title.as_ref().unwrap().content.clone())
            .collect();
        let known: BTreeSet<String> = BLOG_ARTICLES.iter().map(|t| t.to_string()).collect();
        assert!(
            titles.is_subset(&known),
            "{rel}: {:?}",
            titles.difference(&known)
        );
        if !rel.contains('/') {
            assert_eq!(
                titles, known,
                "{rel}: the site-wide feed holds every article"
            );
        }
    }
    // posts/_index.md asks for feeds: the section's articles only.
    let section = parse_feed(&site.feeds.join("posts/atom.xml"));
    let titles: BTreeSet<&str> = section
        .entries
        .iter()
        .map(|e| e.title.as_ref().unwrap().content.as_str())
        .collect();
    assert_eq!(
        titles,
        BTreeSet::from(["A trip in pictures", "Le café est ouvert"])
    );
    if let Some(report) = feedparser(&feeds.values().cloned().collect::<Vec<_>>()) {
        for r in report.as_array().unwrap() {
            assert_eq!(r["bozo"], 0, "{}: {}", r["path"], r["bozo_exception"]);
        }
    }
}

#[test]
fn realistic_blog_fields_people_use_reach_the_feeds() {
    let site = blog();
    site.build();
    let feed = parse_feed(&site.feeds.join("atom.xml"));
    let entry = |title: &str| {
        feed.entries
            .iter()
            .find(|e| e.title.as_ref().unwrap().content == title)
            .unwrap_or_else(|| panic!("no entry {title}"))
    };
    // `by:` as a list; numbers and booleans as tags; `date: 2024-2-6`.
    let go = entry("Go 1.22 is released");
    let names: Vec<&str> = go.authors.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Eli Bendersky", "Robert Griesemer"]);
    let tags: BTreeSet<&str> = go.categories.iter().map(|c| c.term.as_str()).collect();
    assert_eq!(tags, BTreeSet::from(["go", "47", "release"]));
    assert_eq!(
        go.published.unwrap().to_rfc3339(),
        "2024-02-06T00:00:00+00:00"
    );
    assert_eq!(link_of(go), "https://example.org/2024/02/06/go-1-22/");
    let unpadded = entry("An unpadded date");
    assert_eq!(
        unpadded.published.unwrap().to_rfc3339(),
        "2024-04-09T08:30:00+00:00"
    );
    assert_eq!(unpadded.authors[0].name, "Ann Writer");
    // A title-only article: a summary (its title) and no empty content.
    let bare = entry("Just a title");
    assert_eq!(bare.summary.as_ref().unwrap().content, "Just a title");
    assert!(bare.content.is_none(), "{:?}", bare.content);
    let rss = String::from_utf8(site.feed("rss.xml")).unwrap();
    let item = rss
        .split("<item>")
        .find(|i| i.contains("Just a title"))
        .unwrap();
    let description = item
        .split("<description>")
        .nth(1)
        .and_then(|d| d.split("</description>").next())
        .unwrap_or_else(|| panic!("no description: {item}"));
    assert!(description.contains("Just a title"), "{item}");
    assert!(!item.contains("content:encoded"), "{item}");
    // The photo credit of the text article is a credit, not its summary.
    let letter = entry("A letter from the harbour");
    assert!(letter
        .summary
        .as_ref()
        .unwrap()
        .content
        .starts_with("The boats came in late"));
    // Every URL attribute is absolute and ASCII.
    let trip = entry("A trip in pictures")
        .content
        .as_ref()
        .unwrap()
        .body
        .clone()
        .unwrap();
    for want in [
        "src=\"https://example.org/2024/06/01/trip/a.jpg\"",
        "srcset=\"https://example.org/2024/06/01/trip/a.jpg 1x, https://example.org/2024/06/01/trip/a@2x.jpg 2x\"",
        "poster=\"https://example.org/2024/06/01/trip/clip.jpg\"",
        "href=\"https://example.org/%C3%BCber/\"",
    ] {
        assert!(trip.contains(want), "{want} in {trip}");
    }
    let cafe = entry("Le café est ouvert");
    assert_eq!(
        link_of(cafe),
        "https://example.org/2024/06/02/caf%C3%A9-ouvert/"
    );
    let body = cafe.content.as_ref().unwrap().body.clone().unwrap();
    for want in [
        "action=\"https://example.org/search\"",
        "formaction=\"https://example.org/2024/06/02/caf%C3%A9-ouvert/go\"",
        "cite=\"https://example.org/2024/06/02/caf%C3%A9-ouvert/source.html\"",
    ] {
        assert!(body.contains(want), "{want} in {body}");
    }
    // RSS: one author with an email is `<author>`; names are dc:creator;
    // never both in one item.
    for item in rss.split("<item>").skip(1) {
        assert!(
            !(item.contains("<author>") && item.contains("<dc:creator>")),
            "{item}"
        );
    }
    assert!(
        rss.contains("<author>zoe@example.org (Zoë)</author>"),
        "{rss}"
    );
}

#[test]
fn herald_check_verbose_lists_every_file_that_is_not_an_article_with_its_reason() {
    let site = blog();
    let out = site.cli(&["check", "--verbose"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let skipped: Vec<&str> = err.lines().filter(|l| l.starts_with("skipped: ")).collect();
    for (file, reason) in BLOG_SKIPS {
        let shown = site.content.join(file).display().to_string();
        let line = skipped
            .iter()
            .find(|l| l.starts_with(&format!("skipped: {shown}: ")))
            .unwrap_or_else(|| panic!("{file} is not listed as skipped:\n{err}"));
        assert!(line.contains(reason), "{file}: {line}");
    }
    assert_eq!(skipped.len(), BLOG_SKIPS.len(), "{}", skipped.join("\n"));
    // Jekyll's `published: false` is a draft, listed as one.
    let draft = format!(
        "draft: {}: not published until it is no longer a draft",
        site.content.join("blog/draft.md").display()
    );
    assert!(err.lines().any(|l| l == draft), "{draft}\n{err}");
    assert!(
        err.contains(&format!(
            "published {} articles, rejected 0 files, 1 draft, 0 scheduled, {} skipped",
            BLOG_ARTICLES.len(),
            BLOG_SKIPS.len()
        )),
        "{err}"
    );
    // Without --verbose, the count only.
    let out = site.cli(&["check"]);
    assert!(
        !stderr_of(&out).contains("skipped: "),
        "{}",
        stderr_of(&out)
    );
    // The leftover template tag is named once, with its file.
    let line = err
        .lines()
        .find(|l| l.starts_with("warning:") && l.contains("go-1-22.md"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains("{{ site.nothing }}"), "{line}");
}

#[test]
fn a_front_matter_type_error_names_the_file_the_field_the_item_and_the_line() {
    let site = TestSite::new();
    site.write(
        "x.md",
        "---\ntitle: Tags gone wrong\ndate: 2024-01-01\ntags:\n  - a\n  - b\n  - c\n  - {name: d}\n---\nBody\n",
    );
    site.write(
        "ok.md",
        "---\ntitle: Fine\ndate: 2024-01-02\ntags: [go, 47]\n---\nBody\n",
    );
    let out = site.cli(&["build"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let want = format!(
        "rejected: {}:8: tags[3]: expected a string or a number, found a table (invalid YAML front matter)",
        site.content.join("x.md").display()
    );
    assert!(err.lines().any(|l| l == want), "{want}\n{err}");
    assert!(
        err.contains("published 1 article, rejected 1 file"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// The seed article in a digest

#[test]
fn seed_digest_preview_teaser_is_the_first_real_paragraph() {
    let Some(seed) = shared_corpus("seed") else {
        return;
    };
    let mut site = TestSite::over(&seed);
    site.extra = "[[digest]]\nname = \"weekly\"\nschedule = \"0 0 8 * * Mon\"\n".into();
    let out_dir = site.dir.path().join("preview");
    let out = site.cli(&[
        "digest",
        "preview",
        "--schedule",
        "weekly",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let html = std::fs::read_to_string(out_dir.join("digest.html")).unwrap();
    let text = std::fs::read_to_string(out_dir.join("digest.txt")).unwrap();
    let start = "Doctors Without Borders/Médecins Sans Frontières (MSF) teams have treated";
    assert!(html.contains(start), "{html}");
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains(start), "{text}");
    for (name, body) in [("html", &html), ("txt", &flat)] {
        assert!(
            !body.contains("Yesika Ocampo"),
            "{name}: the credit is not the teaser"
        );
    }
}

// ---------------------------------------------------------------------------
// The W3C feed validator over everything written above

/// Warnings the content itself causes, allowed by name: a `style`
/// attribute the author wrote (DangerousStyleAttr), and two articles the
/// sources date to the same instant (DuplicateUpdated: Zola's feed has
/// the same).
const CONTENT_WARNINGS: &[&str] = &["DangerousStyleAttr", "DuplicateUpdated"];

/// Every RSS and Atom file under `feeds`, with the URL it is served at.
fn xml_feeds(feeds: &Path, base: &str) -> Vec<(PathBuf, String)> {
    files_under(feeds)
        .into_iter()
        .filter(|(rel, _)| rel.ends_with(".xml"))
        .map(|(rel, path)| {
            let url = url::Url::parse(base)
                .unwrap()
                .join(&rel)
                .unwrap()
                .to_string();
            (path, url)
        })
        .collect()
}

/// Whether the content explains an allowed warning in `file`.
fn caused_by_content(class: &str, file: &Path, sources: &str) -> bool {
    match class {
        "DangerousStyleAttr" => sources.contains("style="),
        "DuplicateUpdated" => {
            let feed = parse_feed(file);
            let mut seen = BTreeSet::new();
            feed.entries
                .iter()
                .filter(|e| e.updated.is_some() && e.published == e.updated)
                .any(|e| !seen.insert(e.updated))
        }
        _ => false,
    }
}

fn all_text(dir: &Path) -> String {
    files_under(dir)
        .values()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}

#[test]
fn every_rss_and_atom_file_validates_with_no_warning_of_heralds_making() {
    // (what was built, its feed files with their URLs, its sources' text)
    type Build = (String, Vec<(PathBuf, String)>, String);
    let mut builds: Vec<Build> = Vec::new();
    // Temporary sites live until the end of the test.
    let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();
    let blog = blog();
    blog.build();
    builds.push((
        "blog".into(),
        xml_feeds(&blog.feeds, "https://example.org/"),
        all_text(&blog.content),
    ));
    let sample = TestSite::over(&repo_root().join("content"));
    sample.build();
    builds.push((
        "sample".into(),
        xml_feeds(&sample.feeds, "https://example.org/"),
        all_text(&repo_root().join("content")),
    ));
    for name in ["rust-blog/content", "jekyll-posts", "seed"] {
        let Some(dir) = shared_corpus(name) else {
            continue;
        };
        let site = TestSite::over(&dir);
        site.build();
        builds.push((
            name.into(),
            xml_feeds(&site.feeds, "https://example.org/"),
            all_text(&dir),
        ));
        keep.push(Box::new(site));
    }
    if let Some(dir) = shared_corpus("jekyll-posts") {
        let (tmp, config) = site_with(&dir, JEKYLL_CONTENT, "");
        let out = herald_command(&config, &["build"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
        builds.push((
            "jekyll, Jekyll's permalinks".into(),
            xml_feeds(&tmp.path().join("feeds"), "https://example.org/"),
            all_text(&dir),
        ));
        keep.push(Box::new(tmp));
    }
    if let Some((tmp, feeds)) = rust_blog_as_zola() {
        let sources = all_text(&shared_corpus("rust-blog/content").unwrap());
        builds.push((
            "rust blog as Zola".into(),
            xml_feeds(&feeds, "https://blog.rust-lang.org/"),
            sources,
        ));
        keep.push(Box::new(tmp));
    }

    let mut files = 0;
    let mut problems = Vec::new();
    let mut allowed = BTreeMap::<String, usize>::new();
    for (name, list, sources) in &builds {
        let Some(events) = validate_feeds(list) else {
            return;
        };
        files += list.len();
        for e in events {
            let path = PathBuf::from(&e.file);
            if e.level == "warning"
                && CONTENT_WARNINGS.contains(&e.class.as_str())
                && caused_by_content(&e.class, &path, sources)
            {
                *allowed.entry(e.class.clone()).or_default() += 1;
                continue;
            }
            problems.push(format!(
                "{name}: {}:{}: {} {}: {}",
                e.file,
                e.line.unwrap_or(0),
                e.level,
                e.class,
                e.text
            ));
        }
    }
    eprintln!("validated {files} files; allowed content warnings: {allowed:?}");
    assert!(files >= 30, "only {files} feed files validated");
    assert!(
        problems.is_empty(),
        "{} findings:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn new_file_names_replace_the_old_files_and_leave_other_files_alone() {
    let mut site = TestSite::new();
    site.write(
        "a.md",
        "---\ntitle: A\ndate: 2024-01-01\ntags: [x]\n---\nBody\n",
    );
    site.build();
    assert!(site.feeds.join("tags/x/atom.xml").is_file());
    // Another generator's file in the same output directory.
    std::fs::create_dir_all(site.feeds.join("other")).unwrap();
    std::fs::write(site.feeds.join("other/index.xml"), "<not-ours/>").unwrap();
    site.feeds_section =
        "file_names = { atom = \"feed.xml\", rss = \"index.xml\", json = \"feed.json\" }".into();
    let outcome = site.build();
    let files: BTreeSet<String> = files_under(&site.feeds).into_keys().collect();
    let want: BTreeSet<String> = [
        "feed.xml",
        "index.xml",
        "feed.json",
        "tags/x/feed.xml",
        "tags/x/index.xml",
        "tags/x/feed.json",
        "other/index.xml",
    ]
    .map(String::from)
    .into();
    assert_eq!(files, want);
    let removed = outcome.write.unwrap().removed;
    assert_eq!(
        removed,
        ["atom.xml", "rss.xml", "tags/x/atom.xml", "tags/x/rss.xml"]
    );
}
