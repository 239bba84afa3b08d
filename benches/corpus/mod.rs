//! Deterministic synthetic articles for the benchmarks: N Markdown files of
//! about 3.3 KB (TOML front matter, 1-3 of 40 tags, headings, lists, code,
//! links and an image), the same bytes for the same N on every machine.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

const SEED: u64 = 0x4845_5241_4c44_2d31; // "HERALD-1"
const SUBFOLDERS: usize = 10;
const BODY_TARGET: usize = 3_000;

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

/// Writes `n` articles under `content/posts/NN/`; returns the bytes written.
/// Articles are generated in parallel, each from its own index-derived
/// seed, so the output does not depend on the thread count.
pub fn generate_corpus(content: &Path, n: usize) -> io::Result<u64> {
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
pub fn write_article(out: &mut String, i: usize, step_minutes: i64) {
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
