//! Measures the daemon's rebuilds on a generated corpus (default 10,000
//! articles): the first (cold) build, a rescan when nothing changed, and a
//! rebuild after one article changed. Runs the real engine in process.
//! `cargo bench --bench rescan`, or `cargo bench --bench rescan -- 1000`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::base::metrics::Metrics;
use herald::base::served::ServedFeeds;
use herald::config::Config;
use herald::daemon::engine::Engine;

mod corpus;

// The same allocator as the `herald` binary, so the figures are its figures.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROUNDS: usize = 21;
const TARGETS: &str = "target at 10k: no-change rescan < 20 ms, one changed file < 50 ms";

fn main() -> ExitCode {
    let n: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    match bench(n) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rescan bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bench(n: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let content = dir.path().join("content");
    let bytes = corpus::generate_corpus(&content, n)?;
    let text = format!(
        r#"data_dir = {data:?}
[site]
title = "Bench"
base_url = "https://bench.example/"
author = {{ name = "Bench Author" }}
[content]
dir = {content:?}
[feeds]
dir = {feeds:?}
"#,
        data = dir.path().join("data").display().to_string(),
        content = content.display().to_string(),
        feeds = dir.path().join("feeds").display().to_string(),
    );
    let config = Arc::new(Config::parse(&text)?);
    let mut engine = Engine::new(
        Arc::clone(&config),
        Arc::new(ServedFeeds::new()),
        Arc::new(Metrics::new()),
    )?;
    let now = chrono::Utc::now();

    let t = Instant::now();
    let first = engine.rebuild(now)?;
    let cold = t.elapsed();
    anyhow::ensure!(first.published == n, "published {} of {n}", first.published);

    let mut scans = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let s = herald::content::scan(&config)?;
        scans.push(t.elapsed());
        anyhow::ensure!(s.files.len() == n);
    }

    let mut unchanged = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let r = engine.rebuild(now)?;
        unchanged.push(t.elapsed());
        anyhow::ensure!(r.skipped, "a rescan with no change did work");
    }

    // Change one article's body each round (a different one each time, so
    // it may or may not be among the newest 50 of its feeds).
    let mut one_changed = Vec::new();
    let mut feeds_rewritten = Vec::new();
    for round in 0..ROUNDS {
        let i = (round * 7919) % n;
        let path = content
            .join("posts")
            .join(format!("{:02}", i % 10))
            .join(format!("post-{i:06}.md"));
        let mut text = std::fs::read_to_string(&path)?;
        text.push_str(&format!("\nAn added line, round {round}.\n"));
        std::fs::write(&path, text)?;
        let t = Instant::now();
        let r = engine.rebuild(now)?;
        one_changed.push(t.elapsed());
        anyhow::ensure!(
            r.stats.parsed == 1,
            "parsed {} files for one change",
            r.stats.parsed
        );
        feeds_rewritten.push(r.changed.len());
    }
    // The newest article is in the site-wide feeds and its tag feeds: the
    // worst case for one change.
    let newest = n - 1;
    let path = content
        .join("posts")
        .join(format!("{:02}", newest % 10))
        .join(format!("post-{newest:06}.md"));
    let mut text = std::fs::read_to_string(&path)?;
    text.push_str("\nThe newest article, edited.\n");
    std::fs::write(&path, text)?;
    let t = Instant::now();
    let r = engine.rebuild(now)?;
    let newest_changed = t.elapsed();

    println!(
        "articles: {n} ({:.1} MB of Markdown), {ROUNDS} rounds each, nproc {}",
        bytes as f64 / 1e6,
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );
    println!("cold first build:           {}", ms(cold));
    println!(
        "directory scan alone:       median {}  min {}",
        ms(median(&scans)),
        ms(min(&scans))
    );
    println!(
        "no-change rescan:           median {}  min {}  max {}",
        ms(median(&unchanged)),
        ms(min(&unchanged)),
        ms(max(&unchanged))
    );
    println!(
        "one changed file:           median {}  min {}  max {}  (feeds rewritten per change: {:?})",
        ms(median(&one_changed)),
        ms(min(&one_changed)),
        ms(max(&one_changed)),
        feeds_rewritten
    );
    println!(
        "newest article changed:     {} ({} feed files rewritten)",
        ms(newest_changed),
        r.changed.len()
    );
    println!("{TARGETS}");
    Ok(())
}

fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s[s.len() / 2]
}
fn min(v: &[Duration]) -> Duration {
    *v.iter().min().expect("rounds")
}
fn max(v: &[Duration]) -> Duration {
    *v.iter().max().expect("rounds")
}
fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
