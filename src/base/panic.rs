//! Panics as text. herald catches panics where work can go on without the
//! part that failed (a request, a rebuild, one delivery); these helpers
//! turn what was caught into a log line, and send the panic report itself
//! to the log as well, with its source location, instead of bare stderr.

use std::any::Any;

/// What a panic said, when it said it with a string.
pub fn message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Reports every panic through `tracing` (at error level, with where it
/// happened), so that JSON logs keep it and it lands beside the line of
/// the code that caught it.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        tracing::error!(%location, "panic: {}", message(info.payload()));
    }));
}
