//! Temporary files a killed write left behind (`.herald-tmp-*`, as SIGKILL
//! during a build leaves them) are removed by the next `herald build` and
//! at daemon start, in the feeds folder and the data folder, through the
//! real binary. A fresh one, which may belong to a write in progress in
//! another process, is left alone.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::helpers::{start_herald, TestSite};

/// Leftovers as an interrupted write leaves them, last written
/// `age` ago.
fn leave(site: &TestSite, age: Duration) -> Vec<PathBuf> {
    let paths = vec![
        site.feeds.join(".herald-tmp-Ab3dE9"),
        site.feeds.join("tags/rust/.herald-tmp-Xy7Qp2"),
        site.data.join(".herald-tmp-first-seen"),
        site.data.join("outbox/.herald-tmp-Mm1Nn2"),
    ];
    let when = filetime::FileTime::from_system_time(std::time::SystemTime::now() - age);
    for p in &paths {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, vec![b'x'; 1 << 20]).unwrap();
        filetime::set_file_mtime(p, when).unwrap();
    }
    paths
}

fn site() -> TestSite {
    let site = TestSite::new();
    site.write(
        "a.md",
        "+++\ntitle = \"A\"\ndate = 2024-01-01\ntags = [\"rust\"]\n+++\nText.\n",
    );
    site
}

fn exists(paths: &[PathBuf]) -> Vec<&Path> {
    paths
        .iter()
        .filter(|p| p.exists())
        .map(|p| p.as_path())
        .collect()
}

#[test]
fn herald_build_removes_what_an_interrupted_build_left_behind() {
    let site = site();
    let stale = leave(&site, Duration::from_secs(3600));
    let out = site.cli(&["build"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(exists(&stale).is_empty(), "left: {:?}", exists(&stale));
    assert!(site.feeds.join("tags/rust/atom.xml").is_file());

    // Seconds old: possibly another process's write in progress.
    let fresh = leave(&site, Duration::from_secs(1));
    let out = site.cli(&["build"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(exists(&fresh).len(), fresh.len());
}

#[test]
fn the_daemon_removes_leftovers_when_it_starts() {
    let mut site = site();
    let stale = leave(&site, Duration::from_secs(3600));
    let _daemon = start_herald(&mut site);
    let start = Instant::now();
    while !exists(&stale).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still there: {:?}",
            exists(&stale)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
