//! A scratch server a recovery started (a restore into a new node) is no
//! fault, but it must not outlive the drill either: its teardown is
//! journaled like a heal, so the watchdog stops it if firedrill dies.

use crate::{blocking, FaultError, HealAction};
use nix::sys::signal::Signal;
use std::time::Duration;

/// SIGKILL of the recorded tree (checked against its start time: a reused
/// pid is left alone). Idempotent: a server already gone is stopped.
pub(crate) async fn stop(action: &HealAction) -> Result<(), FaultError> {
    let HealAction::StopServer { node, proc } = action.clone() else {
        return Err(crate::wrong_heal("scratch"));
    };
    blocking(move || {
        if !proc.is_alive() {
            return Ok(());
        }
        proc.signal_tree(Signal::SIGKILL)?;
        if proc.wait_exit(Duration::from_secs(10)) {
            Ok(())
        } else {
            Err(FaultError::Task(format!(
                "scratch node {node} (pid {}) survived SIGKILL",
                proc.pid
            )))
        }
    })
    .await
}
