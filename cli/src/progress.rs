//! A one-line progress display on stderr: files, bytes, rate, ETA.

use std::io::Write;
use std::time::{Duration, Instant};

/// Progress of a download.
pub struct Progress {
    start: Instant,
    last: Option<Instant>,
    files_total: u64,
    bytes_total: u64,
    /// Draw only on a terminal (or when forced for tests).
    enabled: bool,
}

fn human(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

impl Progress {
    /// Progress over `files_total` files of `bytes_total` bytes.
    pub fn new(files_total: u64, bytes_total: u64) -> Self {
        use std::io::IsTerminal;
        Progress {
            start: Instant::now(),
            last: None,
            files_total,
            bytes_total,
            enabled: std::io::stderr().is_terminal() || std::env::var_os("DAT_PROGRESS").is_some(),
        }
    }

    /// Redraws (at most 10 times a second unless `force`).
    pub fn update(&mut self, files: u64, bytes: u64, force: bool) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if !force
            && self
                .last
                .is_some_and(|l| now - l < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(now);
        let secs = (now - self.start).as_secs_f64().max(1e-3);
        let rate = bytes as f64 / secs;
        let eta = if rate > 0.0 && bytes < self.bytes_total {
            format!("{:.0}s", (self.bytes_total - bytes) as f64 / rate)
        } else {
            "-".into()
        };
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r{files}/{} files  {} / {}  {}/s  ETA {eta}   ",
            self.files_total,
            human(bytes as f64),
            human(self.bytes_total as f64),
            human(rate)
        );
        let _ = err.flush();
    }

    /// Ends the line.
    pub fn finish(&mut self, files: u64, bytes: u64) {
        self.update(files, bytes, true);
        if self.enabled {
            eprintln!();
        }
    }
}
