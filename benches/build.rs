//! Measures cold `herald build` wall time and peak memory on generated corpora
//! of N Markdown articles (default N = 1000, 10000, 100000; ~3 KB each).
//! Run with `cargo bench --bench build`, or `cargo bench --bench build -- 1000 10000`.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

mod corpus;
use corpus::generate_corpus;

const DEFAULT_SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const RUNS: usize = 3;
const TARGETS: &str = "target: 10k < 0.3 s and < 150 MiB; 100k < 3 s and < 1 GiB";

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
