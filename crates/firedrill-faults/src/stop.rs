//! `stop`: a fast shutdown (SIGINT to the server), after waking a paused
//! node so it can shut down.
//! Nothing to heal: the recovery (or the next trial's lab reset) brings the
//! node back.

use crate::process::{self, ProcessAction};
use crate::{nodes, Fault, FaultContext, FaultError, FaultStep, HealAction, HealWith};
use async_trait::async_trait;

pub(crate) struct Stop;

#[async_trait]
impl Fault for Stop {
    fn validate(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        nodes::validate_procs(ctx, step.node)
    }

    async fn inject(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        let hs = nodes::procs_of(ctx, step.node, step.process)?;
        process::apply_all(hs, ProcessAction::Stop).await
    }

    async fn in_effect(
        &self,
        step: &FaultStep<'_>,
        ctx: &dyn FaultContext,
    ) -> Result<bool, FaultError> {
        process::in_effect(ctx, step, ProcessAction::Stop)
    }

    async fn heal(&self, _: &HealAction, _: &HealWith<'_>) -> Result<(), FaultError> {
        Err(crate::wrong_heal("stop"))
    }
}
