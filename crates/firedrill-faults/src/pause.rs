//! `pause` / `resume`: SIGSTOP to the node's process tree, healed by
//! SIGCONT. A pause owes one heal per process it stops (a managed node's
//! manager and its postmaster), each resumed on its own; a `resume` step is
//! the heal of the pause it ends.

use crate::process::{self, ProcessAction};
use crate::{nodes, Fault, FaultContext, FaultError, FaultStep, HealAction, HealWith};
use async_trait::async_trait;

pub(crate) struct Pause;

#[async_trait]
impl Fault for Pause {
    fn validate(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        nodes::validate_procs(ctx, step.node)
    }

    async fn inject(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        let hs = nodes::procs_of(ctx, step.node, step.process)?;
        for (i, h) in hs.iter().enumerate() {
            ctx.owe(
                &step.sub_heal_id(i),
                self.ttl(step),
                HealAction::Continue {
                    node: step.node.into(),
                    proc: *h,
                },
            )?;
        }
        process::apply_all(hs, ProcessAction::Pause).await
    }

    async fn in_effect(
        &self,
        step: &FaultStep<'_>,
        ctx: &dyn FaultContext,
    ) -> Result<bool, FaultError> {
        process::in_effect(ctx, step, ProcessAction::Pause)
    }

    async fn heal(&self, action: &HealAction, _: &HealWith<'_>) -> Result<(), FaultError> {
        let HealAction::Continue { proc, .. } = action else {
            return Err(crate::wrong_heal("pause"));
        };
        let h = *proc;
        crate::blocking(move || process::apply_process_fault(&h, ProcessAction::Resume)).await
    }
}

pub(crate) struct Resume;

#[async_trait]
impl Fault for Resume {
    fn validate(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        nodes::validate_procs(ctx, step.node)
    }

    async fn inject(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        let hs = nodes::procs_of(ctx, step.node, step.process)?;
        let node = step.node;
        ctx.heal_owed(&|a| matches!(a, HealAction::Continue { node: n, .. } if n == node))
            .await;
        process::apply_all(hs, ProcessAction::Resume).await
    }

    async fn in_effect(
        &self,
        step: &FaultStep<'_>,
        ctx: &dyn FaultContext,
    ) -> Result<bool, FaultError> {
        process::in_effect(ctx, step, ProcessAction::Resume)
    }

    /// A resume owes nothing: it is itself a heal.
    async fn heal(&self, _: &HealAction, _: &HealWith<'_>) -> Result<(), FaultError> {
        Err(crate::wrong_heal("resume"))
    }
}
