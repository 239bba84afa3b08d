//! Why one content file was rejected: the file, the line where known, and
//! the reason, in a form an editor can jump to (`content/a.md:3: …`).

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ContentError {
    /// The file as the user names it: the content directory joined with the
    /// file's relative path.
    pub path: PathBuf,
    /// 1-based line in the file, where the reason has one.
    pub line: Option<usize>,
    pub reason: String,
}

impl ContentError {
    /// The reason is folded onto one line (parsers' messages can span
    /// several), so that each rejected file is exactly one line of output.
    pub fn new(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        let reason: String = reason.into();
        let reason = if reason.contains('\n') {
            reason
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ")
        } else {
            reason
        };
        ContentError {
            path: path.into(),
            line: None,
            reason,
        }
    }

    pub fn at_line(mut self, line: Option<usize>) -> Self {
        self.line = line;
        self
    }
}

impl fmt::Display for ContentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.path.display(), line, self.reason),
            None => write!(f, "{}: {}", self.path.display(), self.reason),
        }
    }
}
