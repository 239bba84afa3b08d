//! Measures cold `herald build` wall time and peak memory on generated corpora
//! of N Markdown articles (default N = 1000, 10000, 100000; ~3 KB each).
//! Run with `cargo bench --bench build`, or `cargo bench --bench build -- 1000 10000`.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const DEFAULT_SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const RUNS: usize = 3;
const SEED: u64 = 0x4845_5241_4c44_2d31; // "HERALD-1"
const SUBFOLDERS: usize = 10;
const BODY_TARGET: usize = 3_000;
const TARGETS: &str = "target: 10k < 0.3 s and < 150 MiB; 100k < 3 s and < 1 GiB";

/// Article dates run from 2015-01-01T00:00:00Z up to (not including) 2025.
const BASE_YEAR: i64 = 2015;
const END_YEAR: i64 = 2025;

const WORDS: &[&str] = &[
    "the", "of", "and", "a", "to", "in", "is", "that", "for", "it", "as", "with", "was", "on",
    "be", "by", "this", "are", "from", "or", "an", "but", "not", "which", "we", "can", "all",
    "one", "has", "more", "when", "will", "there", "their", "some", "what", "about", "into",
    "than", "them", "only", "other", "new", "time", "these", "two", "may", "first", "then", "any",
    "like", "our", "over", "such", "make", "most", "after", "also", "made", "many", "before",
    "must", "through", "back", "years", "where", "much", "your", "way", "well", "down", "should",
    "because", "each", "just", "those", "people", "how", "too", "little", "state", "good", "very",
    "world", "still", "own", "see", "men", "work", "long", "get", "here", "between", "both",
    "life", "being", "under", "never", "day", "same", "another", "know", "while", "last", "might",
    "great", "old", "year", "off", "come", "since", "against", "go", "came", "right", "used",
    "take", "three", "system", "server", "feed", "parser", "release", "kernel", "memory", "thread",
    "build", "compiler", "network", "cache", "latency", "request", "response", "schema", "index",
    "query", "storage", "deploy", "cluster", "module", "function", "pointer", "buffer", "stream",
    "socket", "protocol", "version", "library", "package", "config", "template", "render",
    "article", "garden", "river", "mountain", "coffee", "morning", "winter", "summer", "autumn",
    "spring", "journey", "window", "letter", "market", "kitchen", "bicycle", "harbour", "lantern",
    "meadow", "orchard", "pebble", "quarry", "saddle", "thistle", "valley", "willow", "yonder",
    "zephyr", "amber", "bramble", "cobalt", "dapple", "ember", "fennel", "glacier", "hollow",
    "iris", "juniper", "kestrel", "linden",
];

const TAGS: &[&str] = &[
    "rust",
    "go",
    "python",
    "javascript",
    "linux",
    "bsd",
    "networking",
    "databases",
    "web",
    "css",
    "security",
    "cryptography",
    "devops",
    "kubernetes",
    "testing",
    "performance",
    "compilers",
    "embedded",
    "hardware",
    "music",
    "travel",
    "cooking",
    "photography",
    "books",
    "film",
    "gardening",
    "cycling",
    "running",
    "climbing",
    "weekly-notes",
    "open-source",
    "release-notes",
    "tutorial",
    "opinion",
    "meta",
    "career",
    "design",
    "accessibility",
    "history",
    "mathematics",
];

const AUTHORS: &[&str] = &[
    "Ada Lovelace",
    "Grace Hopper",
    "Alan Turing",
    "Barbara Liskov",
    "Ken Thompson",
    "Frances Allen",
    "Donald Knuth",
    "Margaret Hamilton",
];

const CODE_LANGS: &[&str] = &["rust", "python", "sh", "toml", "js", "text"];

/// splitmix64: tiny, fast, and good enough for synthetic text.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n` (modulo bias is irrelevant here).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform-ish in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `1 / n`.
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

fn main() -> ExitCode {
    let sizes = match parse_sizes() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("usage: cargo bench --bench build [-- N...]");
            return ExitCode::FAILURE;
        }
    };
    let Some(bin) = herald_bin() else {
        eprintln!(
            "error: herald binary unknown: not built by cargo (CARGO_BIN_EXE_herald) \
             and HERALD_BIN is not set"
        );
        return ExitCode::FAILURE;
    };
    let nproc = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    eprintln!("herald binary: {}", bin.display());
    eprintln!("nproc: {nproc}");

    let mut rows = Vec::new();
    for &n in &sizes {
        match bench_size(&bin, n) {
            Ok(row) => rows.push(row),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }

    println!();
    println!("nproc: {nproc}, {RUNS} cold runs per size");
    print_table(&rows);
    println!("{TARGETS}");
    ExitCode::SUCCESS
}

/// Numbers from the command line; cargo's own flags (`--bench`) are skipped.
fn parse_sizes() -> Result<Vec<usize>, String> {
    let mut sizes = Vec::new();
    for arg in std::env::args().skip(1) {
        if arg.starts_with('-') {
            continue;
        }
        match arg.replace('_', "").parse::<usize>() {
            Ok(n) if n > 0 => sizes.push(n),
            _ => return Err(format!("not a positive article count: {arg:?}")),
        }
    }
    if sizes.is_empty() {
        sizes.extend(DEFAULT_SIZES);
    }
    Ok(sizes)
}

/// The binary cargo built for this bench, else `$HERALD_BIN` (for building
/// this file standalone with rustc).
fn herald_bin() -> Option<PathBuf> {
    option_env!("CARGO_BIN_EXE_herald")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HERALD_BIN").map(PathBuf::from))
}

struct Row {
    articles: usize,
    corpus_bytes: u64,
    median: Duration,
    min: Duration,
    peak_mib: Option<f64>,
    feeds_bytes: u64,
}

/// Paths of one benchmark site, all under a fresh temp directory.
struct Site {
    root: PathBuf,
    content: PathBuf,
    data: PathBuf,
    feeds: PathBuf,
    config: PathBuf,
}

impl Site {
    fn new(n: usize) -> Site {
        let root = std::env::temp_dir().join(format!("herald-bench-{}-{n}", std::process::id()));
        Site {
            content: root.join("content"),
            data: root.join("data"),
            feeds: root.join("feeds"),
            config: root.join("herald.toml"),
            root,
        }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.root) {
            if e.kind() != io::ErrorKind::NotFound {
                eprintln!("warning: cannot remove {}: {e}", self.root.display());
            }
        }
    }
}

fn bench_size(bin: &Path, n: usize) -> Result<Row, String> {
    let site = Site::new(n);
    remove_if_exists(&site.root).map_err(|e| format!("{}: {e}", site.root.display()))?;

    eprintln!("[{n}] generating corpus in {}", site.root.display());
    let started = Instant::now();
    let corpus_bytes =
        generate_corpus(&site.content, n).map_err(|e| format!("generating corpus: {e}"))?;
    write_config(&site).map_err(|e| format!("writing config: {e}"))?;
    eprintln!(
        "[{n}] generated {:.1} MB in {:.2} s",
        corpus_bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    let mut times = Vec::with_capacity(RUNS);
    let mut peak_mib: Option<f64> = None;
    let mut feeds_bytes = 0;
    for run in 1..=RUNS {
        for dir in [&site.feeds, &site.data] {
            remove_if_exists(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let out = run_build(bin, &site)?;
        feeds_bytes = dir_bytes(&site.feeds).map_err(|e| format!("measuring feeds: {e}"))?;
        eprintln!(
            "[{n}] run {run}/{RUNS}: {:.3} s, peak memory {}, feeds {} bytes",
            out.elapsed.as_secs_f64(),
            fmt_mib(out.peak_mib),
            feeds_bytes
        );
        times.push(out.elapsed);
        if let Some(p) = out.peak_mib {
            peak_mib = Some(peak_mib.map_or(p, |q: f64| q.max(p)));
        }
    }
    times.sort();

    Ok(Row {
        articles: n,
        corpus_bytes,
        median: times[times.len() / 2],
        min: times[0],
        peak_mib,
        feeds_bytes,
    })
}

struct BuildOutput {
    elapsed: Duration,
    peak_mib: Option<f64>,
}

/// One cold `herald build`, timed around the whole child process.
fn run_build(bin: &Path, site: &Site) -> Result<BuildOutput, String> {
    let mut cmd = Command::new(bin);
    cmd.arg("build")
        .arg("--config")
        .arg(&site.config)
        .current_dir(&site.root)
        .stdin(Stdio::null());
    // herald reads HERALD_* variables as config overrides (and HERALD_BIN
    // would be an unknown key); keep the run independent of the caller's
    // environment.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HERALD_") {
            cmd.env_remove(key);
        }
    }

    let started = Instant::now();
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let elapsed = started.elapsed();

    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !stdout.trim().is_empty() {
            eprintln!("--- herald stdout ---\n{}", stdout.trim_end());
        }
        eprintln!("--- herald stderr ---\n{}", stderr.trim_end());
        return Err(format!("herald build failed: {}", output.status));
    }
    Ok(BuildOutput {
        elapsed,
        peak_mib: parse_peak_mib(&stderr),
    })
}

/// The number in the last `peak memory N MiB` of herald's stderr.
fn parse_peak_mib(stderr: &str) -> Option<f64> {
    const MARKER: &str = "peak memory ";
    stderr.rmatch_indices(MARKER).find_map(|(at, _)| {
        let rest = &stderr[at + MARKER.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if !rest[end..].starts_with(" MiB") {
            return None;
        }
        rest[..end].parse().ok()
    })
}

fn fmt_mib(mib: Option<f64>) -> String {
    match mib {
        Some(m) => format!("{m} MiB"),
        None => "n/a".to_string(),
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "{:>9}  {:>10}  {:>10}  {:>8}  {:>9}  {:>13}",
        "articles", "corpus MB", "median s", "min s", "peak MiB", "feeds bytes"
    );
    for r in rows {
        let peak = r
            .peak_mib
            .map_or_else(|| "n/a".to_string(), |m| m.to_string());
        println!(
            "{:>9}  {:>10.1}  {:>10.3}  {:>8.3}  {:>9}  {:>13}",
            r.articles,
            r.corpus_bytes as f64 / 1e6,
            r.median.as_secs_f64(),
            r.min.as_secs_f64(),
            peak,
            r.feeds_bytes
        );
    }
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Total size of the regular files under `dir` (0 if it does not exist).
fn dir_bytes(dir: &Path) -> io::Result<u64> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut total = 0;
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            total += dir_bytes(&entry.path())?;
        } else if kind.is_file() {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

fn write_config(site: &Site) -> io::Result<()> {
    let text = format!(
        r#"data_dir = {data}

[site]
title = "Bench"
description = "Benchmark site"
base_url = "https://bench.example/"
author = {{ name = "Bench Author" }}

[content]
dir = {content}

[feeds]
dir = {feeds}
limit = 0          # site-wide feeds hold every article
tag_limit = 50     # tag feeds at the default limit
content = "full"
formats = ["rss", "atom", "json"]
tag_feeds = true
"#,
        data = toml_string(&site.data),
        content = toml_string(&site.content),
        feeds = toml_string(&site.feeds),
    );
    fs::write(&site.config, text)
}

/// A path as a TOML basic string.
fn toml_string(path: &Path) -> String {
    let mut s = String::from("\"");
    for c in path.to_string_lossy().chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(s, "\\u{:04X}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// Writes `n` articles under `content/posts/NN/`; returns the bytes written.
/// Articles are generated in parallel, each from its own index-derived
/// seed, so the output does not depend on the thread count.
fn generate_corpus(content: &Path, n: usize) -> io::Result<u64> {
    let folders: Vec<PathBuf> = (0..SUBFOLDERS)
        .map(|f| content.join("posts").join(format!("{f:02}")))
        .collect();
    for dir in &folders {
        fs::create_dir_all(dir)?;
    }
    let step = date_step_minutes(n);
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(n);

    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let folders = &folders;
                scope.spawn(move || -> io::Result<u64> {
                    let mut buf = String::with_capacity(8 * 1024);
                    let mut total = 0;
                    for i in (t..n).step_by(threads) {
                        buf.clear();
                        write_article(&mut buf, i, step);
                        let path = folders[i % SUBFOLDERS].join(format!("post-{i:06}.md"));
                        let mut file =
                            io::BufWriter::with_capacity(16 * 1024, fs::File::create(path)?);
                        file.write_all(buf.as_bytes())?;
                        file.flush()?;
                        total += buf.len() as u64;
                    }
                    Ok(total)
                })
            })
            .collect();
        workers.into_iter().try_fold(0, |sum, w| {
            Ok(sum + w.join().expect("generator thread panicked")?)
        })
    })
}

/// Minutes between consecutive articles so that `n` articles spread over
/// 2015-2024 with distinct dates.
fn date_step_minutes(n: usize) -> i64 {
    let span = (days_from_epoch(END_YEAR) - days_from_epoch(BASE_YEAR)) * 24 * 60;
    let step = (span / n as i64).max(1);
    if step * n as i64 > span {
        eprintln!("warning: {n} articles do not fit before {END_YEAR} at one per minute");
    }
    step
}

/// One article: TOML front matter, then ~3 KB of Markdown.
fn write_article(out: &mut String, i: usize, step_minutes: i64) {
    let mut rng = Rng::new(SEED ^ (i as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93));
    // Warm up so that neighbouring seeds diverge.
    rng.next_u64();

    // Front matter.
    out.push_str("+++\ntitle = \"");
    let title_words = rng.range(3, 7);
    for w in 0..title_words {
        if w > 0 {
            out.push(' ');
        }
        push_word(out, rng.pick(WORDS), w == 0);
    }
    out.push_str("\"\ndate = ");
    push_rfc3339(
        out,
        days_from_epoch(BASE_YEAR) * 24 * 60 + i as i64 * step_minutes,
    );
    out.push_str("\ntags = [");
    let mut tags: [&str; 3] = [""; 3];
    let tag_count = rng.range(1, 3);
    let mut chosen = 0;
    while chosen < tag_count {
        let t = rng.pick(TAGS);
        if !tags[..chosen].contains(&t) {
            tags[chosen] = t;
            chosen += 1;
        }
    }
    for (k, t) in tags[..tag_count].iter().enumerate() {
        if k > 0 {
            out.push_str(", ");
        }
        out.push('"');
        out.push_str(t);
        out.push('"');
    }
    out.push_str("]\nauthors = [\"");
    out.push_str(rng.pick(AUTHORS));
    out.push('"');
    if rng.one_in(8) {
        out.push_str(", \"");
        out.push_str(rng.pick(AUTHORS));
        out.push('"');
    }
    out.push_str("]\n+++\n\n");

    // Body.
    let body_start = out.len();
    let target = BODY_TARGET - 400 + rng.below(800);
    push_paragraph(out, &mut rng);

    push_heading(out, &mut rng);
    push_paragraph(out, &mut rng);
    if rng.one_in(3) {
        push_list(out, &mut rng);
    }
    push_paragraph(out, &mut rng);
    push_code_block(out, &mut rng);

    push_heading(out, &mut rng);
    push_paragraph(out, &mut rng);
    out.push_str("![");
    push_words(out, &mut rng, 3);
    let _ = writeln!(out, "](img-{}.png)\n", rng.below(10));
    while out.len() - body_start < target {
        push_paragraph(out, &mut rng);
    }
}

fn push_word(out: &mut String, word: &str, capitalize: bool) {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) if capitalize => {
            out.push(first.to_ascii_uppercase());
            out.push_str(chars.as_str());
        }
        _ => out.push_str(word),
    }
}

fn push_words(out: &mut String, rng: &mut Rng, count: usize) {
    for w in 0..count {
        if w > 0 {
            out.push(' ');
        }
        out.push_str(rng.pick(WORDS));
    }
}

fn push_heading(out: &mut String, rng: &mut Rng) {
    out.push_str("## ");
    push_word(out, rng.pick(WORDS), true);
    out.push(' ');
    let count = rng.range(1, 4);
    push_words(out, rng, count);
    out.push_str("\n\n");
}

/// 3-6 sentences, some with an inline code span, a link or emphasis.
fn push_paragraph(out: &mut String, rng: &mut Rng) {
    let sentences = rng.range(3, 6);
    for s in 0..sentences {
        if s > 0 {
            out.push(' ');
        }
        let words = rng.range(8, 16);
        for w in 0..words {
            if w > 0 {
                out.push(' ');
            }
            match rng.below(40) {
                0 => {
                    out.push('`');
                    out.push_str(rng.pick(WORDS));
                    out.push_str("()`");
                }
                1 => {
                    out.push('[');
                    push_words(out, rng, 2);
                    out.push_str("](/");
                    out.push_str(rng.pick(TAGS));
                    out.push('/');
                    out.push_str(rng.pick(WORDS));
                    out.push_str("/)");
                }
                2 => {
                    out.push('*');
                    out.push_str(rng.pick(WORDS));
                    out.push('*');
                }
                _ => push_word(out, rng.pick(WORDS), w == 0),
            }
        }
        out.push('.');
    }
    out.push_str("\n\n");
}

fn push_list(out: &mut String, rng: &mut Rng) {
    for _ in 0..rng.range(3, 5) {
        out.push_str("- ");
        let count = rng.range(2, 6);
        push_words(out, rng, count);
        out.push('\n');
    }
    out.push('\n');
}

fn push_code_block(out: &mut String, rng: &mut Rng) {
    out.push_str("```");
    out.push_str(rng.pick(CODE_LANGS));
    out.push('\n');
    for _ in 0..rng.range(3, 8) {
        let indent = rng.below(3) * 4;
        let _ = writeln!(
            out,
            "{:indent$}{}_{} = {}({}, {}); // {}",
            "",
            rng.pick(WORDS),
            rng.below(100),
            rng.pick(WORDS),
            rng.pick(WORDS),
            rng.below(1000),
            rng.pick(WORDS),
        );
    }
    out.push_str("```\n\n");
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days from 1970-01-01 to January 1st of `year` (year >= 1970).
fn days_from_epoch(year: i64) -> i64 {
    (1970..year)
        .map(|y| if is_leap(y) { 366 } else { 365 })
        .sum()
}

/// Appends `YYYY-MM-DDTHH:MM:00Z` for `minutes` after 1970-01-01T00:00Z.
fn push_rfc3339(out: &mut String, minutes: i64) {
    let mut days = minutes / (24 * 60);
    let minute_of_day = minutes % (24 * 60);
    let mut year = 1970;
    loop {
        let len = if is_leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let month_lengths = [
        31,
        if is_leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let mut month = 0;
    while days >= month_lengths[month] {
        days -= month_lengths[month];
        month += 1;
    }
    let _ = write!(
        out,
        "{year:04}-{:02}-{:02}T{:02}:{:02}:00Z",
        month + 1,
        days + 1,
        minute_of_day / 60,
        minute_of_day % 60
    );
}
