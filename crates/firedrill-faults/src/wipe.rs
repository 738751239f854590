//! `wipe`: data loss, as when a machine and its disk are gone. The node's
//! recorded process tree is SIGKILLed, then its data directory (one
//! firedrill made, in a lab) is removed.
//!
//! Nothing heals it here: once every node is wiped only a restore brings
//! the data back, and that restore is its heal. A lab left wiped by an
//! aborted drill is rebuilt by `lab reset` or by the next drill, and `lab
//! down` signals only the pids state.json records, so, as for `kill`,
//! nothing is journaled for the watchdog.

use crate::process::{self, ProcessAction};
use crate::{nodes, Fault, FaultContext, FaultError, FaultStep, HealAction, HealWith};
use async_trait::async_trait;
use std::path::PathBuf;
use std::time::Duration;

pub(crate) struct Wipe;

/// The directory a wipe of `node` removes: the lab's data directory of the
/// node, never a path the user gave.
fn dir_of(ctx: &dyn FaultContext, node: &str) -> Result<PathBuf, FaultError> {
    let n = ctx
        .node(node)
        .ok_or_else(|| FaultError::Invalid(format!("no node named {node}")))?;
    let d = n.lab_data_dir.ok_or_else(|| {
        FaultError::Invalid(format!(
            "{node} has no data directory firedrill made: a wipe needs a lab node"
        ))
    })?;
    // A lab's data directory is always below the lab directory.
    if !d.is_absolute() || d.components().count() < 3 {
        return Err(FaultError::Invalid(format!(
            "refusing to wipe {}: not a lab data directory",
            d.display()
        )));
    }
    Ok(d.to_path_buf())
}

#[async_trait]
impl Fault for Wipe {
    fn validate(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        nodes::validate_procs(ctx, step.node)?;
        dir_of(ctx, step.node).map(|_| ())
    }

    async fn inject(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        let hs = nodes::procs_of(ctx, step.node, None)?;
        let dir = dir_of(ctx, step.node)?;
        crate::blocking(move || {
            // Dead first, so nothing writes into the directory as it goes.
            for h in hs.iter().filter(|h| h.is_alive()) {
                process::apply_process_fault(h, ProcessAction::Kill)?;
            }
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(FaultError::Io {
                    path: dir.display().to_string(),
                    source: e,
                }),
                _ => Ok(()),
            }
        })
        .await?;
        ctx.record_damage(firedrill_ledger::Damage {
            action: firedrill_ledger::WIPE.into(),
            ..firedrill_ledger::Damage::default()
        });
        Ok(())
    }

    async fn in_effect(
        &self,
        step: &FaultStep<'_>,
        ctx: &dyn FaultContext,
    ) -> Result<bool, FaultError> {
        let gone = !dir_of(ctx, step.node)?.exists();
        Ok(gone && process::in_effect(ctx, step, ProcessAction::Kill)?)
    }

    async fn heal(&self, _: &HealAction, _: &HealWith<'_>) -> Result<(), FaultError> {
        Err(crate::wrong_heal("wipe"))
    }

    /// Nothing is owed to the watchdog: lost data comes back only from a
    /// backup, which is the recovery's to restore.
    fn ttl(&self, _step: &FaultStep<'_>) -> Option<Duration> {
        None
    }
}
