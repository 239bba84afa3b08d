//! Damaged content and damaged config, run through the real binary: every
//! bad file is rejected by name (and line, where one is known) with a reason
//! that says what is wrong, while the good files beside it still publish.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use crate::helpers::TestSite;

/// Where a rejection should point inside the file.
#[derive(Debug, Clone, Copy)]
enum At {
    /// `rejected: <file>:<n>: …`
    Line(usize),
    /// `rejected: <file>: …` (the reason has no line).
    NoLine,
    /// Either form is acceptable.
    Any,
}

/// One damaged file: what it is called, what it holds, where the rejection
/// should point and a word the reason must contain.
struct Damage {
    kind: &'static str,
    rel: &'static str,
    bytes: Vec<u8>,
    at: At,
    keyword: &'static str,
}

fn damage(
    kind: &'static str,
    rel: &'static str,
    bytes: impl Into<Vec<u8>>,
    at: At,
    keyword: &'static str,
) -> Damage {
    Damage {
        kind,
        rel,
        bytes: bytes.into(),
        at,
        keyword,
    }
}

/// Files that must publish, with the titles they publish under.
const GOOD: &[(&str, &str, &str)] = &[
    (
        "posts/toml-good.md",
        "+++\ntitle = \"Good TOML\"\ndate = 2024-02-01T09:00:00Z\ntags = [\"rust\", \"feeds\"]\n+++\nA body in *Markdown*.\n",
        "Good TOML",
    ),
    (
        "posts/yaml-good.md",
        "---\ntitle: Good YAML\ndate: 2024-02-02 10:00:00 +0100\ntags: [rust, yaml]\n---\nAnother body.\n",
        "Good YAML",
    ),
    (
        "notes/plain-good.txt",
        "\n\nGood plain text\n\nFirst paragraph of a plain note.\n",
        "Good plain text",
    ),
    (
        "posts/heading-good.md",
        "# Good heading title\n\nNo front matter at all, the heading is the title.\n",
        "Good heading title",
    ),
    (
        "posts/dup-first.md",
        "+++\ntitle = \"Owner of the shared URL\"\ndate = 2024-01-01\npath = \"shared/\"\n+++\nFirst to claim it.\n",
        "Owner of the shared URL",
    ),
    (
        "posts/id-first.md",
        "+++\ntitle = \"Owner of the shared id\"\ndate = 2024-01-02\nid = \"urn:herald:shared\"\n+++\nFirst to claim it.\n",
        "Owner of the shared id",
    ),
];

/// Distinct tag slugs among the good files (each gets three feed files).
const GOOD_TAGS: &[&str] = &["feeds", "rust", "yaml"];

fn corpus() -> Vec<Damage> {
    let oversized = format!(
        "+++\ntitle = \"Far too long\"\ndate = 2024-01-03\n+++\n{}\n",
        "all work and no play ".repeat(150)
    );
    vec![
        damage(
            "invalid UTF-8",
            "bad/latin1.md",
            b"+++\ntitle = \"Latin-1\"\n+++\ncaf\xe9 au lait\n".to_vec(),
            At::Line(4),
            "UTF-8",
        ),
        damage(
            "binary file with NUL bytes named .md",
            "bad/binary.md",
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01".to_vec(),
            At::Any,
            "NUL",
        ),
        damage(
            "TOML front matter never closed",
            "bad/toml-open.md",
            "+++\ntitle = \"Open\"\ndate = 2024-01-01\n\nBody without a closing line.\n",
            At::Line(1),
            "never closed",
        ),
        damage(
            "YAML front matter never closed",
            "bad/yaml-open.md",
            "---\ntitle: Open\n\nBody without a closing line.\n",
            At::Line(1),
            "never closed",
        ),
        damage(
            "TOML syntax error",
            "bad/toml-syntax.md",
            "+++\ntitle = \"Fine\"\ndate = 2024-01-01\nsummary = = \"two equals\"\n+++\nBody.\n",
            At::Line(4),
            "invalid TOML",
        ),
        damage(
            "YAML syntax error",
            "bad/yaml-syntax.md",
            "---\ntitle: Fine\ndate: 2024-01-01\n  indented: wrongly\n---\nBody.\n",
            At::Line(4),
            "invalid YAML",
        ),
        damage(
            "unknown date format",
            "bad/date-format.md",
            "+++\ntitle = \"When?\"\ndate = \"last tuesday\"\n+++\nBody.\n",
            At::Line(3),
            "unknown date format",
        ),
        damage(
            "impossible date",
            "bad/date-impossible.md",
            "---\ntitle: Leap\ndate: 2021-02-30\n---\nBody.\n",
            At::Line(3),
            "no such day",
        ),
        damage(
            "unknown date format in `updated`",
            "bad/updated-format.md",
            "---\ntitle: Updated when?\ndate: 2024-01-01\nupdated: someday soon\n---\nBody.\n",
            At::Line(4),
            "unknown date format",
        ),
        damage(
            "missing title",
            "bad/no-title.md",
            "+++\ndate = 2024-01-01\n+++\nA body with no heading and no title.\n",
            At::NoLine,
            "no title",
        ),
        damage("empty .txt", "bad/empty.txt", "", At::NoLine, "empty"),
        damage(
            "white-space-only .txt",
            "bad/blank.txt",
            "\n   \n\t\n",
            At::NoLine,
            "empty",
        ),
        damage(
            "duplicate URL (newer article, alphabetically first)",
            "bad/a-dup-second.md",
            "+++\ntitle = \"Second claim\"\ndate = 2024-03-01\npath = \"/shared\"\n+++\nToo late.\n",
            At::Any,
            "duplicate",
        ),
        damage(
            "duplicate id",
            "bad/a-id-second.md",
            "+++\ntitle = \"Second id\"\ndate = 2024-03-02\nid = \"urn:herald:shared\"\n+++\nToo late.\n",
            At::Any,
            "duplicate id",
        ),
        damage(
            "file over content.max_file_size",
            "bad/oversized.md",
            oversized,
            At::NoLine,
            "max_file_size",
        ),
        damage(
            "wrong type: tags = 42",
            "bad/tags-number.md",
            "+++\ntitle = \"Tags\"\ndate = 2024-01-01\ntags = 42\n+++\nBody.\n",
            At::Line(4),
            "invalid TOML",
        ),
        damage(
            "wrong type: title = [1]",
            "bad/title-array.md",
            "+++\ndate = 2024-01-01\ntitle = [1]\n+++\nBody.\n",
            At::Line(3),
            "expected a string",
        ),
        damage(
            "draft = \"yes\"",
            "bad/draft-string.md",
            "+++\ntitle = \"Draft?\"\n\ndraft = \"yes\"\n+++\nBody.\n",
            At::Line(4),
            "boolean",
        ),
        damage(
            "slug with /",
            "bad/slug-slash.md",
            "+++\ntitle = \"Slash\"\ndate = 2024-01-01\nslug = \"a/b\"\n+++\nBody.\n",
            At::Line(4),
            "slug",
        ),
        damage(
            "path escaping with ..",
            "bad/path-escape.md",
            "+++\ntitle = \"Escape\"\npath = \"../../etc/passwd\"\n+++\nBody.\n",
            At::Line(3),
            "..",
        ),
        damage(
            "url with a javascript: scheme",
            "bad/url-javascript.md",
            "---\ntitle: Script\nurl: \"javascript:alert(1)\"\n---\nBody.\n",
            At::Line(3),
            "http(s)",
        ),
        damage(
            "invalid language tag",
            "bad/language.md",
            "+++\ntitle = \"Lang\"\ndate = 2024-01-01\nlanguage = \"english please\"\n+++\nBody.\n",
            At::Line(4),
            "language tag",
        ),
        damage(
            "image with unknown media type",
            "bad/image-type.md",
            "---\ntitle: Cover\ndate: 2024-01-01\nimage: cover.xyz\n---\nBody.\n",
            At::Line(4),
            "unknown media type",
        ),
        damage(
            "YAML front matter that is a list",
            "bad/yaml-list.md",
            "---\n- title\n- date\n---\nBody.\n",
            At::Line(2),
            "invalid YAML",
        ),
        damage(
            "empty id",
            "bad/id-empty.md",
            "+++\ntitle = \"No id\"\ndate = 2024-01-01\nid = \"  \"\n+++\nBody.\n",
            At::Line(4),
            "id",
        ),
    ]
}

/// Runs the real binary with `config_text` as its config file and `env` on
/// top of a clean environment (no inherited `HERALD_…` variables).
fn run_with_config(
    site: &TestSite,
    config_text: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let config = site.dir.path().join("custom-herald.toml");
    std::fs::write(&config, config_text).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.args(args).arg("--config").arg(&config);
    for (k, _) in std::env::vars() {
        if k.starts_with("HERALD_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("herald runs")
}

fn with_max_file_size(site: &TestSite, bytes: u64) -> String {
    let text = site.config_text();
    assert!(
        text.contains("[content]\n"),
        "base config has a [content] section"
    );
    text.replacen(
        "[content]\n",
        &format!("[content]\nmax_file_size = {bytes}\n"),
        1,
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `rejected:` line naming `rel`, if there is exactly one.
fn rejection_for<'a>(err: &'a str, content: &Path, rel: &str) -> &'a str {
    let shown = content.join(rel).display().to_string();
    let prefix = format!("rejected: {shown}:");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one rejection for {rel}, got {lines:?}\n--- stderr:\n{err}"
    );
    lines[0]
}

fn atom_titles(path: &Path) -> BTreeSet<String> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let feed = feed_rs::parser::parse(&bytes[..]).expect("atom.xml parses");
    feed.entries
        .iter()
        .map(|e| e.title.as_ref().expect("entry has a title").content.clone())
        .collect()
}

fn summary_line(err: &str) -> &str {
    err.lines()
        .rev()
        .find(|l| l.starts_with("published "))
        .unwrap_or_else(|| panic!("no summary line in:\n{err}"))
}

/// Writes the good files, the damaged ones, and the things that must be
/// skipped silently (hidden files, `_index.md`) or counted as drafts.
fn damaged_site() -> (TestSite, Vec<Damage>) {
    let site = TestSite::new();
    for (rel, text, _) in GOOD {
        site.write(rel, text);
    }
    let bad = corpus();
    for d in &bad {
        site.write(d.rel, &d.bytes);
    }
    site.write(
        "_drafts/wip.md",
        "+++\ntitle = \"Work in progress\"\ndate = 2024-01-05\n+++\nNot yet.\n",
    );
    site.write(
        ".hidden.md",
        "+++\ntitle = \"Hidden file\"\n+++\nbroken = [\n",
    );
    site.write(".git/x.md", "+++\ntitle = \"Inside .git\"\n+++\n");
    site.write(
        "posts/_index.md",
        "+++\ntitle = \"Section index\"\nsort_by = \"date\"\n+++\n",
    );
    (site, bad)
}

#[test]
fn the_damaged_corpus_has_at_least_eighteen_distinct_kinds_of_damage() {
    let bad = corpus();
    let kinds: BTreeSet<&str> = bad.iter().map(|d| d.kind).collect();
    let files: BTreeSet<&str> = bad.iter().map(|d| d.rel).collect();
    assert!(kinds.len() >= 18, "{kinds:?}");
    assert_eq!(
        files.len(),
        bad.len(),
        "every kind of damage has its own file"
    );
}

#[test]
fn every_damaged_file_is_rejected_by_name_line_and_reason_while_good_files_publish() {
    let (site, bad) = damaged_site();
    #[cfg(unix)]
    {
        let outside = site.dir.path().join("outside/escaped.md");
        std::fs::create_dir_all(outside.parent().unwrap()).unwrap();
        std::fs::write(
            &outside,
            "+++\ntitle = \"Escaped via symlink\"\ndate = 2024-01-06\n+++\n",
        )
        .unwrap();
        std::os::unix::fs::symlink(&outside, site.content.join("posts/link.md")).unwrap();
    }

    let out = run_with_config(&site, &with_max_file_size(&site, 2000), &["build"], &[]);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "any rejection means exit 1\n{err}"
    );

    for d in &bad {
        let line = rejection_for(&err, &site.content, d.rel);
        let shown = site.content.join(d.rel).display().to_string();
        let after = &line["rejected: ".len() + shown.len()..];
        match d.at {
            At::Line(n) => assert!(
                after.starts_with(&format!(":{n}: ")),
                "{}: expected line {n}: {line}",
                d.kind
            ),
            At::NoLine => assert!(
                after.starts_with(": "),
                "{}: expected no line number: {line}",
                d.kind
            ),
            At::Any => {}
        }
        assert!(
            line.contains(d.keyword),
            "{}: reason should mention {:?}: {line}",
            d.kind,
            d.keyword
        );
    }

    // The later claimant of a URL or id is rejected, naming the first file,
    // even though its name sorts first: age decides, not the file name.
    let first_url = site
        .content
        .join("posts/dup-first.md")
        .display()
        .to_string();
    let dup = rejection_for(&err, &site.content, "bad/a-dup-second.md");
    assert!(dup.contains(&first_url), "{dup}");
    let first_id = site.content.join("posts/id-first.md").display().to_string();
    let dup_id = rejection_for(&err, &site.content, "bad/a-id-second.md");
    assert!(dup_id.contains(&first_id), "{dup_id}");

    let rejected = err.lines().filter(|l| l.starts_with("rejected: ")).count();
    assert_eq!(
        rejected,
        bad.len(),
        "one rejection per damaged file and no more\n{err}"
    );
    for skipped in [
        ".hidden.md",
        ".git/x.md",
        "posts/_index.md",
        "_drafts/wip.md",
    ] {
        assert!(
            !err.contains(skipped),
            "{skipped} must be neither rejected nor warned about\n{err}"
        );
    }

    #[cfg(unix)]
    {
        let link = site.content.join("posts/link.md").display().to_string();
        assert!(
            err.lines()
                .any(|l| l.starts_with("warning: ") && l.contains(&link) && l.contains("outside")),
            "a symlink leading outside is skipped with a warning\n{err}"
        );
    }

    let expected: BTreeSet<String> = GOOD.iter().map(|(_, _, t)| t.to_string()).collect();
    assert_eq!(atom_titles(&site.feeds.join("atom.xml")), expected);

    let written = 3 * (1 + GOOD_TAGS.len());
    let summary = summary_line(&err);
    let want = format!(
        "published {} articles, rejected {} files, 1 draft, 0 scheduled; wrote {written} files (0 unchanged, 0 removed) in ",
        GOOD.len(),
        bad.len()
    );
    assert!(
        summary.starts_with(&want),
        "summary\n  got:  {summary}\n  want: {want}…"
    );
    for tag in GOOD_TAGS {
        for name in ["rss.xml", "atom.xml", "feed.json"] {
            assert!(
                site.feeds.join(format!("tags/{tag}/{name}")).is_file(),
                "tags/{tag}/{name}"
            );
        }
    }
}

#[test]
fn every_rejection_is_reported_on_a_single_line() {
    // Editors and CI annotate from `file:line: reason`; a reason that runs
    // onto a second line is cut off there.
    let site = TestSite::new();
    site.write(
        "good.md",
        "+++\ntitle = \"Good\"\ndate = 2024-01-01\n+++\nBody.\n",
    );
    site.write(
        "toml-syntax.md",
        "+++\ntitle = \"Fine\"\nsummary = = \"two\"\n+++\nBody.\n",
    );
    site.write(
        "toml-date.md",
        "+++\ntitle = \"Native\"\ndate = 2021-02-30\n+++\nBody.\n",
    );
    site.write("yaml-syntax.md", "---\ntitle: [unclosed\n---\nBody.\n");
    let out = site.cli(&["build"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("rejected: ")).count(),
        3,
        "{err}"
    );
    let stray: Vec<&str> = err
        .lines()
        .filter(|l| {
            !(l.starts_with("rejected: ")
                || l.starts_with("warning: ")
                || l.starts_with("published ")
                || l.starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect();
    assert!(
        stray.is_empty(),
        "lines that belong to no report: {stray:?}\n--- stderr:\n{err}"
    );
}

#[test]
fn a_native_toml_date_that_does_not_exist_is_rejected_at_its_line() {
    let site = TestSite::new();
    site.write(
        "good.md",
        "+++\ntitle = \"Good\"\ndate = 2024-01-01\n+++\nBody.\n",
    );
    site.write(
        "leap.md",
        "+++\ntitle = \"Native\"\n\ndate = 2021-02-30\n+++\nBody.\n",
    );
    let out = site.cli(&["build"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = rejection_for(&err, &site.content, "leap.md");
    let shown = site.content.join("leap.md").display().to_string();
    assert!(
        line.starts_with(&format!("rejected: {shown}:4: ")),
        "{line}"
    );
    assert!(line.contains("date"), "{line}");
}

#[cfg(unix)]
#[test]
fn a_symlinked_folder_leading_outside_is_skipped_with_a_warning_and_nothing_inside_publishes() {
    let site = TestSite::new();
    site.write(
        "inside.md",
        "+++\ntitle = \"Inside\"\ndate = 2024-01-01\n+++\nBody.\n",
    );
    let outside = site.dir.path().join("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(
        outside.join("secret.md"),
        "+++\ntitle = \"Secret outside\"\ndate = 2024-01-02\n+++\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(&outside, site.content.join("linked")).unwrap();

    let out = site.cli(&["build"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let link = site.content.join("linked").display().to_string();
    assert!(
        err.lines()
            .any(|l| l.starts_with("warning: ") && l.contains(&link)),
        "{err}"
    );
    let titles = atom_titles(&site.feeds.join("atom.xml"));
    assert_eq!(titles, BTreeSet::from(["Inside".to_string()]), "{err}");
}

#[cfg(unix)]
#[test]
fn a_symlink_inside_the_content_directory_is_followed() {
    let site = TestSite::new();
    site.write(
        "real/inside.md",
        "+++\ntitle = \"Inside\"\ndate = 2024-01-01\n+++\nBody.\n",
    );
    std::os::unix::fs::symlink(site.content.join("real"), site.content.join("alias")).unwrap();
    let out = site.cli(&["build"]);
    let err = stderr(&out);
    assert!(!err.contains("warning: "), "{err}");
    assert!(atom_titles(&site.feeds.join("atom.xml")).contains("Inside"));
}

#[test]
fn markdown_under_drafts_is_counted_as_a_draft_and_not_published() {
    let site = TestSite::new();
    site.write(
        "live.md",
        "+++\ntitle = \"Live\"\ndate = 2024-01-01\n+++\nBody.\n",
    );
    site.write(
        "_drafts/one.md",
        "+++\ntitle = \"Draft one\"\ndate = 2024-01-02\n+++\nBody.\n",
    );
    site.write(
        "posts/_drafts/two.md",
        "---\ntitle: Draft two\n---\nBody.\n",
    );
    site.write(
        "explicit.md",
        "+++\ntitle = \"Draft three\"\ndraft = true\n+++\nBody.\n",
    );
    let out = site.cli(&["build"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        summary_line(&err)
            .starts_with("published 1 article, rejected 0 files, 3 drafts, 0 scheduled;"),
        "{err}"
    );
    assert_eq!(
        atom_titles(&site.feeds.join("atom.xml")),
        BTreeSet::from(["Live".to_string()])
    );
}

#[test]
fn hidden_files_hidden_folders_and_section_indexes_are_ignored_silently() {
    let site = TestSite::new();
    site.write(
        "live.md",
        "+++\ntitle = \"Live\"\ndate = 2024-01-01\n+++\nBody.\n",
    );
    site.write(".hidden.md", "\u{0}binary and hidden");
    site.write(".git/x.md", "+++\nnever closed\n");
    site.write(".drafts/deep/y.txt", "");
    site.write("_index.md", "+++\ntitle = \"Home\"\n+++\n");
    site.write("section/_index.md", "+++\ntitle = \"Section\"\n+++\n");
    let out = site.cli(&["build"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        !err.contains("rejected: ") && !err.contains("warning: "),
        "{err}"
    );
    assert!(
        summary_line(&err).starts_with("published 1 article, rejected 0 files, 0 drafts,"),
        "{err}"
    );
}

#[test]
fn an_unknown_config_key_exits_2_and_names_the_key() {
    let mut site = TestSite::new();
    site.write("a.md", "+++\ntitle = \"A\"\ndate = 2024-01-01\n+++\n");
    site.feeds_section = "limmit = 3".into();
    let out = site.cli(&["build"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("error: ") && err.contains("limmit"), "{err}");
    assert!(!site.feeds.exists(), "a fatal error writes nothing");
}

#[test]
fn a_bad_base_url_exits_2_and_names_site_base_url() {
    let site = TestSite::new();
    site.write("a.md", "+++\ntitle = \"A\"\ndate = 2024-01-01\n+++\n");
    let text = site.config_text().replacen(
        "base_url = \"https://example.org/\"",
        "base_url = \"example.org\"",
        1,
    );
    assert!(text.contains("\"example.org\""));
    let out = run_with_config(&site, &text, &["build"], &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("error: ") && err.contains("site.base_url"),
        "{err}"
    );
}

#[test]
fn a_misspelt_environment_override_exits_2_and_names_the_key() {
    let site = TestSite::new();
    site.write("a.md", "+++\ntitle = \"A\"\ndate = 2024-01-01\n+++\n");
    let out = run_with_config(
        &site,
        &site.config_text(),
        &["build"],
        &[("HERALD_FEEDS__LIMMIT", "3")],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("error: ") && err.contains("limmit"), "{err}");
}

#[test]
fn a_correct_environment_override_is_applied() {
    let site = TestSite::new();
    for day in 1..=4 {
        site.write(
            &format!("a{day}.md"),
            format!("+++\ntitle = \"A{day}\"\ndate = 2024-01-0{day}\n+++\n"),
        );
    }
    let out = run_with_config(
        &site,
        &site.config_text(),
        &["build"],
        &[("HERALD_FEEDS__LIMIT", "3")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let titles = atom_titles(&site.feeds.join("atom.xml"));
    assert_eq!(
        titles,
        ["A2", "A3", "A4"].iter().map(|s| s.to_string()).collect()
    );
}
