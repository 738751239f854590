//! Faults delivered as signals to a node's recorded process tree.

use crate::FaultError;
use firedrill_proc::ProcHandle;
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessAction {
    /// SIGKILL to the whole tree at once, as in a machine crash: no process
    /// of the node gets to send another byte (a walsender killed after its
    /// postmaster could still ship WAL).
    Kill,
    /// SIGINT to the postmaster: PostgreSQL's fast shutdown.
    Stop,
    /// SIGSTOP to the whole tree.
    Pause,
    /// SIGCONT to the whole tree.
    Resume,
}

/// Applies the action and returns once it is in effect: the process is
/// gone (kill, stop), stopped (pause) or running (resume).
pub fn apply_process_fault(h: &ProcHandle, action: ProcessAction) -> Result<(), FaultError> {
    match action {
        ProcessAction::Kill => {
            h.signal_tree(Signal::SIGKILL)?;
            wait(
                || !h.tree_alive(),
                Duration::from_secs(10),
                "the node is still alive 10 s after SIGKILL",
            )
        }
        ProcessAction::Stop => {
            // A paused node cannot shut down: wake it first.
            let _ = h.signal_tree(Signal::SIGCONT);
            h.signal(Signal::SIGINT)?;
            wait(
                || !h.is_alive(),
                Duration::from_secs(60),
                "the node did not finish its fast shutdown within 60 s",
            )
        }
        ProcessAction::Pause => {
            h.signal_tree(Signal::SIGSTOP)?;
            wait(
                || h.is_stopped(),
                Duration::from_secs(5),
                "the node is not stopped 5 s after SIGSTOP",
            )
        }
        ProcessAction::Resume => {
            if !h.is_alive() {
                // Nothing left to resume (it was killed meanwhile): the heal holds.
                return Ok(());
            }
            h.signal_tree(Signal::SIGCONT)?;
            wait(
                || !h.is_alive() || !h.is_stopped(),
                Duration::from_secs(5),
                "the node is still stopped 5 s after SIGCONT",
            )
        }
    }
}

fn wait(done: impl Fn() -> bool, limit: Duration, msg: &str) -> Result<(), FaultError> {
    let end = Instant::now() + limit;
    loop {
        if done() {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(FaultError::NotInEffect(msg.into()));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
