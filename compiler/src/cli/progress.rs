//! A progress line on stderr for long work: done / total, rate and time
//! left, redrawn in place on a terminal and written a few times in all when
//! stderr is a file or a pipe, so a log shows progress without flooding.

use std::io::{IsTerminal, Write};
use std::time::Instant;

pub struct Progress {
    what: &'static str,
    /// What one unit is, in the rate ("pairs", "sequences").
    unit: &'static str,
    started: Instant,
    terminal: bool,
    last_tenth: usize,
}

impl Progress {
    pub fn new(what: &'static str, unit: &'static str) -> Self {
        Self {
            what,
            unit,
            started: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
            last_tenth: 0,
        }
    }

    /// Shows `done` of `total`; `rate_scale` turns done units into the units
    /// the rate is given in (pairs per sequence, say).
    pub fn update(&mut self, done: usize, total: usize, rate_scale: f64) {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
        let rate = done as f64 * rate_scale / seconds;
        let left = if done > 0 {
            seconds * (total - done.min(total)) as f64 / done as f64
        } else {
            0.0
        };
        let width = 30;
        let filled = (width * done) / total.max(1);
        let line = format!(
            "xltc: {} [{}{}] {done}/{total}, {rate:.1} {}/s, {left:.0} s left",
            self.what,
            "#".repeat(filled),
            " ".repeat(width - filled),
            self.unit
        );
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r{line}");
            if done >= total {
                let _ = writeln!(err);
            }
        } else {
            let tenth = (10 * done) / total.max(1);
            if tenth > self.last_tenth || done >= total {
                self.last_tenth = tenth;
                let _ = writeln!(err, "{line}");
            }
        }
    }
}
