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
            let killed = h.kill_tree()?;
            wait(
                || !killed.iter().any(ProcHandle::is_alive),
                Duration::from_secs(10),
                "the node is still alive 10 s after SIGKILL",
            )
        }
        ProcessAction::Stop => {
            // A paused node cannot shut down: wake it first.
            let _ = h.signal_tree(Signal::SIGCONT);
            h.signal(Signal::SIGINT)?;
            wait(
                || holds(h, action),
                Duration::from_secs(60),
                "the node did not finish its fast shutdown within 60 s",
            )
        }
        ProcessAction::Pause => {
            h.signal_tree(Signal::SIGSTOP)?;
            wait(
                || holds(h, action),
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
                || holds(h, action),
                Duration::from_secs(5),
                "the node is still stopped 5 s after SIGCONT",
            )
        }
    }
}

/// The action is in effect on `h`: what [`apply_process_fault`] waits for.
pub(crate) fn holds(h: &ProcHandle, action: ProcessAction) -> bool {
    match action {
        ProcessAction::Kill => !h.tree_alive(),
        ProcessAction::Stop => !h.is_alive(),
        ProcessAction::Pause => h.is_stopped(),
        ProcessAction::Resume => !h.is_alive() || !h.is_stopped(),
    }
}

/// Applies `action` to every process, in order, on the blocking pool.
pub(crate) async fn apply_all(
    hs: Vec<ProcHandle>,
    action: ProcessAction,
) -> Result<(), FaultError> {
    crate::blocking(move || {
        for h in &hs {
            apply_process_fault(h, action)?;
        }
        Ok(())
    })
    .await
}

/// Whether `action` holds on the step's processes now. A process that is
/// gone (its pid file names no live process of ours) counts as killed or
/// stopped.
pub(crate) fn in_effect(
    ctx: &dyn crate::FaultContext,
    step: &crate::FaultStep<'_>,
    action: ProcessAction,
) -> Result<bool, FaultError> {
    match crate::nodes::procs_of(ctx, step.node, step.process) {
        Ok(hs) => Ok(hs.iter().all(|h| holds(h, action))),
        Err(FaultError::Proc(firedrill_proc::ProcError::NotOurs { .. }))
            if matches!(action, ProcessAction::Kill | ProcessAction::Stop) =>
        {
            Ok(true)
        }
        Err(e) => Err(e),
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
