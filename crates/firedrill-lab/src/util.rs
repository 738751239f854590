//! Small helpers every store's lab uses while it waits for its servers.

use crate::LabError;
use std::path::Path;
use std::time::{Duration, Instant};

/// Polls `check` until it returns Some, or times out with the node's log.
pub fn poll<T>(
    node: &str,
    what: &str,
    log: &Path,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, LabError> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if Instant::now() >= end {
            return Err(LabError::Timeout {
                node: node.into(),
                what: what.into(),
                secs: timeout.as_secs(),
                log: log.to_path_buf(),
                log_tail: log_tail(log, 20),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The last `n` lines of a log, for error messages.
pub fn log_tail(path: &Path, n: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(cannot read log: {e})"),
    }
}
