//! Waiting for a lab's JVMs to start, and why one did not.

use firedrill_lab::{log_tail, LabError, LabState};
use std::time::{Duration, Instant};

/// A JVM start takes 2.5–3 CPU-s per broker; with 5 brokers on 2 loaded
/// cores that is 20–40 s.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
const READY_LINE: &str = "Kafka Server started";

/// Waits until every node has logged "Kafka Server started".
///
/// Why wait: a broker logs it only after it registered with the quorum and
/// was unfenced, so when every node has said it, the controllers have a
/// leader and every broker can lead partitions: the target can create its
/// topic with the full replication factor at once. Why in parallel: a JVM
/// start is 2.5–3 CPU-seconds of class loading and JIT; one after another
/// that is 15 s for five nodes on an idle 2-core machine, while together
/// they finish in the time the cores need for the sum, and a combined node
/// cannot even finish starting until a majority of voters is up.
pub(crate) fn wait_started(state: &LabState, progress: &mut dyn FnMut(&str)) -> Result<(), LabError> {
    let end = Instant::now() + READY_TIMEOUT;
    let mut pending: Vec<usize> = (0..state.nodes.len()).collect();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for &i in &pending {
            let n = &state.nodes[i];
            let text = std::fs::read_to_string(&n.log_file).unwrap_or_default();
            if text.contains(READY_LINE) {
                progress(&format!("{} started", n.name));
                continue;
            }
            if !n.proc.is_some_and(|p| p.is_alive()) {
                return Err(LabError::Exited {
                    node: n.name.clone(),
                    log: n.log_file.clone(),
                    log_tail: first_errors(&text) + &log_tail(&n.log_file, 15),
                });
            }
            still.push(i);
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if Instant::now() > end {
            let n = &state.nodes[pending[0]];
            return Err(LabError::Timeout {
                node: n.name.clone(),
                what: format!("no \"{READY_LINE}\" in the log"),
                secs: READY_TIMEOUT.as_secs(),
                log: n.log_file.clone(),
                log_tail: log_tail(&n.log_file, 30),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// The first ERROR/FATAL lines of a broker log (with the line after each,
/// usually the exception), since a JVM that failed to start logs its whole
/// shutdown after the cause.
fn first_errors(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for (i, l) in lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains(" ERROR ") || l.contains(" FATAL "))
        .take(3)
    {
        out += l;
        out += "\n";
        if let Some(next) = lines.get(i + 1) {
            out += next;
            out += "\n";
        }
    }
    if !out.is_empty() {
        out += "...\n";
    }
    out
}

