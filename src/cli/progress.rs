//! Progress of a long command on stderr: done/total, rate and time left.
//! On a terminal one line is rewritten in place every second; otherwise (a
//! log file, a pipe, a cron mail) a plain line is added every few seconds,
//! so a log shows the pace without flooding. A first line comes at once
//! and a last one at the end, so even a quick run says what it did.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often a line is written: on a terminal, and elsewhere.
const TERMINAL_EVERY: Duration = Duration::from_secs(1);
const PLAIN_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    /// What is being done, as a verb: `sending`.
    what: &'static str,
    total: u64,
    start: Instant,
    terminal: bool,
}

impl Progress {
    /// Starts counting, and writes the first line.
    pub fn start(what: &'static str, total: u64) -> Progress {
        let p = Progress {
            what,
            total,
            start: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
        };
        p.write(0, false);
        p
    }

    /// How long to wait between two [`Progress::update`] calls.
    pub fn every(&self) -> Duration {
        if self.terminal {
            TERMINAL_EVERY
        } else {
            PLAIN_EVERY
        }
    }

    pub fn update(&self, done: u64) {
        self.write(done, false);
    }

    /// The last line, ended on a terminal.
    pub fn finish(&self, done: u64) {
        self.write(done, true);
    }

    fn write(&self, done: u64, last: bool) {
        let line = self.line(done, self.start.elapsed(), last);
        let mut err = std::io::stderr().lock();
        // Progress is a courtesy: a closed stderr must not end the command.
        let _ = if self.terminal {
            write!(err, "\r\x1b[2K{line}{}", if last { "\n" } else { "" })
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }

    fn line(&self, done: u64, elapsed: Duration, last: bool) -> String {
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        let percent = (done * 100).checked_div(self.total).unwrap_or(100);
        let mut line = format!(
            "{}: {done}/{} ({percent}%), {rate:.1}/s",
            self.what, self.total
        );
        if last {
            line.push_str(&format!(", {:.1} s in all", secs));
        } else if done > 0 && done < self.total {
            let left = (self.total - done) as f64 / rate;
            line.push_str(&format!(", about {} left", human(left)));
        }
        line
    }
}

/// Seconds as `45 s`, `3 min` or `2 h 5 min`.
fn human(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..=99 => format!("{s} s"),
        100..=5999 => format!("{} min", s.div_ceil(60)),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_done_total_rate_and_time_left() {
        let p = Progress {
            what: "sending",
            total: 5000,
            start: Instant::now(),
            terminal: false,
        };
        assert_eq!(
            p.line(1000, Duration::from_secs(10), false),
            "sending: 1000/5000 (20%), 100.0/s, about 40 s left"
        );
        assert_eq!(
            p.line(5000, Duration::from_secs(50), true),
            "sending: 5000/5000 (100%), 100.0/s, 50.0 s in all"
        );
        assert_eq!(
            p.line(0, Duration::ZERO, false),
            "sending: 0/5000 (0%), 0.0/s"
        );
        assert_eq!(human(7300.0), "2 h 1 min");
        assert_eq!(human(150.0), "3 min");
    }
}
