//! Writing files so that a reader (or a crash) never sees half of one:
//! a temporary file in the same directory, flushed to disk, then renamed
//! over the target.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use anyhow::Context;

/// How hard to try to keep a write across a power loss. Either way the
/// write is atomic: a reader or a crashed process sees the old file or the
/// new one, never a mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Flush the data and the directory entry to disk before returning.
    /// For state that cannot be recomputed.
    Synced,
    /// Leave flushing to the kernel. For derived files (feeds) that the
    /// next build recreates from the content directory anyway; skipping the
    /// flush of ~100 MB of feeds is most of a large build's write time.
    Derived,
}

/// Writes `bytes` to `path` atomically unless the file already holds exactly
/// these bytes. Returns whether it wrote.
pub fn write_if_changed(path: &Path, bytes: &[u8], durability: Durability) -> anyhow::Result<bool> {
    write_if_changed_with(path, durability, |w| Ok(w.write_all(bytes)?))
}

/// Streams what `render` writes into a temporary file beside `path`, then
/// moves it into place unless `path` already holds the same bytes. Nothing
/// large is kept in memory, and a reader or a crash never sees half a file.
/// The file is readable by everyone (a web server, a backup job).
pub fn write_if_changed_with(
    path: &Path,
    durability: Durability,
    render: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<bool> {
    write_atomic(path, 0o644, durability, true, render)
}

/// Writes a file only its owner can read (it holds personal data or
/// tokens), atomically and synced to disk.
pub fn write_private(
    path: &Path,
    render: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    write_atomic(path, 0o600, Durability::Synced, false, render).map(|_| ())
}

/// Prefix of every temporary file herald writes beside its target.
pub const TMP_PREFIX: &str = ".herald-tmp-";

/// A temporary file untouched for this long has no writer any more: a
/// write streams into its file continuously and renames it within a
/// second or two of the last byte. Younger ones may belong to another
/// herald process writing right now (`herald build` beside the daemon).
pub const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Folder depth searched for leftovers (feeds sit at `tags/<tag>/`).
const STALE_SEARCH_DEPTH: usize = 8;

/// What [`remove_stale_temporaries`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub files: u64,
    pub bytes: u64,
}

/// Removes the temporary files a killed writer left behind (SIGKILL or a
/// power cut between creating one and renaming it) in `dir` and its
/// folders: `.herald-tmp-*` files older than [`STALE_AFTER`]. A folder
/// that does not exist has none; one that cannot be read is skipped.
pub fn remove_stale_temporaries(dir: &Path) -> Removed {
    let mut removed = Removed::default();
    let cutoff = std::time::SystemTime::now() - STALE_AFTER;
    sweep(dir, cutoff, STALE_SEARCH_DEPTH, &mut removed);
    removed
}

fn sweep(dir: &Path, cutoff: std::time::SystemTime, depth: usize, removed: &mut Removed) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        // Not followed: symbolic links, so the sweep stays inside `dir`.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() && depth > 0 {
            sweep(&entry.path(), cutoff, depth - 1, removed);
            continue;
        }
        let stale = kind.is_file()
            && entry.file_name().to_string_lossy().starts_with(TMP_PREFIX)
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff);
        if stale {
            let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
            if std::fs::remove_file(entry.path()).is_ok() {
                removed.files += 1;
                removed.bytes += bytes;
            }
        }
    }
}

fn write_atomic(
    path: &Path,
    #[cfg_attr(not(unix), allow(unused_variables))] mode: u32,
    durability: Durability,
    skip_if_same: bool,
    render: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<bool> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))?;
    // Temporary files are created private (0600).
    let mut tmp = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    #[cfg(unix)]
    if mode != 0o600 {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set permissions on {}", tmp.path().display()))?;
    }
    {
        let mut w = BufWriter::with_capacity(1 << 16, tmp.as_file_mut());
        render(&mut w)?;
        w.flush()
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if skip_if_same && same_contents(tmp.path(), path) {
        return Ok(false);
    }
    if durability == Durability::Synced {
        tmp.as_file()
            .sync_all()
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    tmp.persist(path)
        .with_context(|| format!("cannot move the new file into place at {}", path.display()))?;
    if durability == Durability::Synced {
        sync_dir(dir);
    }
    Ok(true)
}

fn same_contents(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return false;
    };
    if ma.len() != mb.len() || !mb.is_file() {
        return false;
    }
    let (Ok(fa), Ok(fb)) = (File::open(a), File::open(b)) else {
        return false;
    };
    let (mut ra, mut rb) = (
        BufReader::with_capacity(1 << 16, fa),
        BufReader::with_capacity(1 << 16, fb),
    );
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = match ra.read(&mut ba) {
            Ok(n) => n,
            Err(_) => return false,
        };
        if n == 0 {
            return true;
        }
        if rb.read_exact(&mut bb[..n]).is_err() || ba[..n] != bb[..n] {
            return false;
        }
    }
}

/// Makes a rename durable.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_only_when_bytes_differ() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/f.xml");
        assert!(write_if_changed(&p, b"one", Durability::Synced).unwrap());
        assert!(!write_if_changed(&p, b"one", Durability::Derived).unwrap());
        assert!(write_if_changed(&p, b"two", Durability::Derived).unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644, "published files are world-readable");
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("sub")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left behind");
    }

    #[test]
    fn stale_temporaries_are_removed_and_fresh_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("tags/rust");
        std::fs::create_dir_all(&deep).unwrap();
        let old = std::time::SystemTime::now() - STALE_AFTER * 2;
        for p in [
            dir.path().join(".herald-tmp-a1"),
            deep.join(".herald-tmp-b2"),
        ] {
            std::fs::write(&p, b"half a feed").unwrap();
            std::fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        std::fs::write(dir.path().join(".herald-tmp-fresh"), b"in flight").unwrap();
        std::fs::write(deep.join("atom.xml"), b"<feed/>").unwrap();
        let removed = remove_stale_temporaries(dir.path());
        assert_eq!(
            removed,
            Removed {
                files: 2,
                bytes: 22
            }
        );
        assert!(dir.path().join(".herald-tmp-fresh").exists());
        assert!(deep.join("atom.xml").exists());
        assert_eq!(
            remove_stale_temporaries(&dir.path().join("missing")),
            Removed::default()
        );
    }

    #[test]
    fn private_files_are_for_their_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("export.csv");
        write_private(&p, |w| Ok(w.write_all(b"email\n")?)).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"email\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
