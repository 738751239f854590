//! `cut_replication`: the standby stops receiving from its primary. The
//! target carries it out (it knows its store); the heal is journaled with
//! the store's kind and what the target saved, so the watchdog can reopen
//! the target by kind and put it back without naming any store here.

use crate::{Fault, FaultContext, FaultError, FaultStep, HealAction, HealWith};
use async_trait::async_trait;
use firedrill_targets::{LiveRole, TargetNode};
use std::time::Duration;

pub(crate) struct CutReplication;

#[async_trait]
impl Fault for CutReplication {
    /// Whether the target can cut at all shows at injection: it answers
    /// `Unsupported` when asked for the replication source.
    fn validate(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        match ctx.node(step.node) {
            Some(_) => Ok(()),
            None => Err(FaultError::Invalid(format!("no node named {}", step.node))),
        }
    }

    async fn inject(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        let saved = ctx.target().replication_source(step.node).await?;
        let conninfo = ctx
            .node(step.node)
            .map(|n| n.conninfo.to_string())
            .unwrap_or_default();
        ctx.owe(
            &step.heal_id(),
            self.ttl(step),
            HealAction::RestoreReplication {
                kind: ctx.store_kind().into(),
                node: step.node.into(),
                conninfo,
                saved,
            },
        )?;
        ctx.target().cut_replication(step.node).await?;
        Ok(())
    }

    /// A cut standby has no replication source left to read back. An
    /// unreachable node cannot tell.
    async fn in_effect(
        &self,
        step: &FaultStep<'_>,
        ctx: &dyn FaultContext,
    ) -> Result<bool, FaultError> {
        let t = ctx.target();
        if t.role(step.node, Duration::from_secs(1)).await == LiveRole::Unreachable {
            return Err(FaultError::NotInEffect(format!(
                "{} is unreachable: cannot tell whether its replication is cut",
                step.node
            )));
        }
        Ok(t.replication_source(step.node).await.is_err())
    }

    async fn heal(&self, action: &HealAction, with: &HealWith<'_>) -> Result<(), FaultError> {
        let HealAction::RestoreReplication {
            kind,
            node,
            conninfo,
            saved,
        } = action
        else {
            return Err(crate::wrong_heal("cut_replication"));
        };
        let opener = (with.opener)(kind).ok_or_else(|| FaultError::NoStore(kind.clone()))?;
        let n = TargetNode {
            name: node.clone(),
            control: conninfo.clone(),
            client: conninfo.clone(),
        };
        let t = opener.open(&[n], with.password, "")?;
        t.restore_replication(node, saved).await?;
        Ok(())
    }
}
