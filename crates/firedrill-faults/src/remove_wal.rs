//! `remove_wal`: a broken archive. One archived WAL segment written since
//! the backup (one a restore past it must replay) is moved out of the
//! backup repository, as a failing archive store or a careless cleanup
//! would lose it. The backup itself still "looks fine". The lab's backups
//! name the segment; moving it aside and back is plain file work, so the
//! watchdog can put it back without knowing the store.

use crate::context::{FaultContext, FaultStep, HealWith};
use crate::journal::HealAction;
use crate::{Fault, FaultError};
use async_trait::async_trait;
use std::path::Path;

pub(crate) struct RemoveWal;

#[async_trait]
impl Fault for RemoveWal {
    fn validate(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        if ctx.lab_backups().is_none() {
            return Err(FaultError::Invalid(
                "remove_wal needs a lab that takes backups ([lab.backup])".into(),
            ));
        }
        if ctx.node(step.node).is_none() {
            return Err(FaultError::Invalid(format!("no node named {}", step.node)));
        }
        Ok(())
    }

    async fn inject(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        let b = ctx.lab_backups().ok_or_else(|| {
            FaultError::Invalid("remove_wal needs a lab that takes backups".into())
        })?;
        let seg = b.needed_segment(step.node).await?;
        ctx.owe(
            &step.heal_id(),
            self.ttl(step),
            HealAction::PutBack {
                node: step.node.into(),
                path: seg.path.clone(),
                aside: seg.aside.clone(),
            },
        )?;
        let (from, to) = (seg.path.clone(), seg.aside.clone());
        crate::blocking(move || {
            std::fs::rename(&from, &to).map_err(|e| {
                FaultError::NotInEffect(format!(
                    "moving {} to {}: {e}",
                    from.display(),
                    to.display()
                ))
            })
        })
        .await?;
        ctx.record_detail(format!(
            "WAL segment {} taken out of the archive (kept aside in {})",
            seg.segment,
            seg.aside.display()
        ));
        Ok(())
    }

    /// As seen from outside: the backup tool's own check finds a hole in
    /// the archive's WAL ranges.
    async fn in_effect(
        &self,
        _step: &FaultStep<'_>,
        ctx: &dyn FaultContext,
    ) -> Result<bool, FaultError> {
        let b = ctx
            .lab_backups()
            .ok_or_else(|| FaultError::NotInEffect("no backups to look at: cannot tell".into()))?;
        match b.check().await {
            Some(c) => Ok(!c.wal_gaps.is_empty()),
            None => Err(FaultError::NotInEffect(
                "the lab's backup tool has no check of its archive: cannot tell".into(),
            )),
        }
    }

    /// Idempotent: a segment already back (the engine healed before the
    /// watchdog) is done.
    async fn heal(&self, action: &HealAction, _with: &HealWith<'_>) -> Result<(), FaultError> {
        let HealAction::PutBack { path, aside, .. } = action else {
            return Err(crate::wrong_heal("remove_wal"));
        };
        let (path, aside) = (path.clone(), aside.clone());
        crate::blocking(move || put_back(&path, &aside)).await
    }

    /// The trial's own limit: the segment is put back after the restore,
    /// or by the watchdog if firedrill dies first.
    fn ttl(&self, _step: &FaultStep<'_>) -> Option<std::time::Duration> {
        None
    }
}

fn put_back(path: &Path, aside: &Path) -> Result<(), FaultError> {
    if !aside.exists() && path.exists() {
        return Ok(());
    }
    std::fs::rename(aside, path).map_err(|e| {
        FaultError::NotInEffect(format!(
            "putting {} back at {}: {e}",
            aside.display(),
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_back_is_idempotent_and_refuses_a_lost_file() {
        let d = tempfile::tempdir().unwrap();
        let (path, aside) = (d.path().join("seg"), d.path().join("aside"));
        std::fs::write(&aside, b"wal").unwrap();
        put_back(&path, &aside).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"wal");
        assert!(!aside.exists());
        put_back(&path, &aside).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(put_back(&path, &aside).is_err());
    }
}
