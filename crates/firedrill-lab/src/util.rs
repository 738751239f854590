//! Small helpers every store's lab uses while it waits for its servers.

use crate::{LabError, NodeState};
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

/// Waits for a server we started (a JVM worker: MirrorMaker 2, Kafka
/// Connect) until `ready`, polling every `every`. A server that exits
/// meanwhile fails at once with its log's tail instead of at the timeout.
pub fn wait_started(
    node: &NodeState,
    what: &str,
    timeout: Duration,
    every: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<(), LabError> {
    let end = Instant::now() + timeout;
    loop {
        if ready() {
            return Ok(());
        }
        let tail = || log_tail(&node.log_file, 30);
        if !node.proc.is_some_and(|p| p.is_alive()) {
            return Err(LabError::Exited {
                node: node.name.clone(),
                log: node.log_file.clone(),
                log_tail: tail(),
            });
        }
        if Instant::now() > end {
            return Err(LabError::Timeout {
                node: node.name.clone(),
                what: what.into(),
                secs: timeout.as_secs(),
                log: node.log_file.clone(),
                log_tail: tail(),
            });
        }
        std::thread::sleep(every);
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
