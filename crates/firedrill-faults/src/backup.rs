//! `backup`: the lab's backup tool takes a backup now (an etcd snapshot),
//! while the workload goes on. It breaks nothing, so there is nothing to
//! heal; it sets the stage for the data disaster after it, whose restore
//! can bring back no more than the newest backup holds.

use crate::{Fault, FaultContext, FaultError, FaultStep, HealAction, HealWith};
use async_trait::async_trait;
use std::time::Duration;

pub(crate) struct Backup;

const NO_BACKUPS: &str = "a backup step needs a lab that takes backups ([lab.backup])";

#[async_trait]
impl Fault for Backup {
    fn validate(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        if ctx.lab_backups().is_none() {
            return Err(FaultError::Invalid(NO_BACKUPS.into()));
        }
        if ctx.node(step.node).is_none() {
            return Err(FaultError::Invalid(format!("no node named {}", step.node)));
        }
        Ok(())
    }

    async fn inject(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        let b = ctx
            .lab_backups()
            .ok_or_else(|| FaultError::Invalid(NO_BACKUPS.into()))?;
        let report = b.backup(step.node).await?;
        ctx.record_backup(report);
        Ok(())
    }

    /// The backup exists once `inject` returned; nothing undoes it.
    async fn in_effect(
        &self,
        _step: &FaultStep<'_>,
        _ctx: &dyn FaultContext,
    ) -> Result<bool, FaultError> {
        Ok(true)
    }

    async fn heal(&self, _: &HealAction, _: &HealWith<'_>) -> Result<(), FaultError> {
        Err(crate::wrong_heal("backup"))
    }

    fn ttl(&self, _step: &FaultStep<'_>) -> Option<Duration> {
        None
    }
}
