//! `delete_rows`: a data disaster. One transaction on the primary destroys
//! a share of the run's rows; it replicates to every standby, so nothing
//! heals it: firedrill journals no heal, and the recovery is a restore.

use crate::context::{FaultContext, FaultStep, HealWith};
use crate::journal::HealAction;
use crate::{Fault, FaultError};
use async_trait::async_trait;
use firedrill_targets::Corruption;
use std::time::Duration;

pub(crate) struct DeleteRows;

fn fraction(step: &FaultStep<'_>) -> f64 {
    step.attrs["fraction"].as_f64().unwrap_or(0.5)
}

#[async_trait]
impl Fault for DeleteRows {
    fn validate(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        let f = fraction(step);
        if !(f > 0.0 && f <= 1.0) {
            return Err(FaultError::Invalid(format!(
                "delete_rows fraction {f} is not in (0, 1]"
            )));
        }
        if ctx.node(step.node).is_none() {
            return Err(FaultError::Invalid(format!("no node named {}", step.node)));
        }
        Ok(())
    }

    async fn inject(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        let c = Corruption::DeleteRows {
            fraction: fraction(step),
        };
        let damage = ctx.target().corrupt(step.node, &c).await?;
        ctx.record_damage(damage);
        Ok(())
    }

    /// The transaction committed when `inject` returned; from then on the
    /// rows are gone on every replica.
    async fn in_effect(
        &self,
        _step: &FaultStep<'_>,
        _ctx: &dyn FaultContext,
    ) -> Result<bool, FaultError> {
        Ok(true)
    }

    async fn heal(&self, _action: &HealAction, _with: &HealWith<'_>) -> Result<(), FaultError> {
        Err(crate::wrong_heal("delete_rows"))
    }

    /// Nothing is owed to the watchdog: a committed transaction cannot be
    /// healed, only restored from a backup.
    fn ttl(&self, _step: &FaultStep<'_>) -> Option<Duration> {
        None
    }
}
