//! `partition`: on a netns lab a whole-node partition (`link = "all"`)
//! sets the node's veth down, a real kernel partition; otherwise, or for
//! some of its links, it is a blackhole toxic on the fault proxies.

use crate::netns::{veth_of, VethDown};
use crate::toxics::Toxics;
use crate::{Fault, FaultContext, FaultError, FaultStep, HealAction, HealWith};
use async_trait::async_trait;
use firedrill_spec::LinkScope;

pub(crate) struct Partition;

/// The means this step's partition uses.
fn means(step: &FaultStep<'_>, ctx: &dyn FaultContext) -> &'static dyn Fault {
    if step.link == LinkScope::All && veth_of(ctx, step.node).is_some() {
        &VethDown
    } else {
        &Toxics
    }
}

#[async_trait]
impl Fault for Partition {
    fn validate(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        means(step, ctx).validate(step, ctx)
    }

    async fn inject(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        means(step, ctx).inject(step, ctx).await
    }

    async fn in_effect(
        &self,
        step: &FaultStep<'_>,
        ctx: &dyn FaultContext,
    ) -> Result<bool, FaultError> {
        means(step, ctx).in_effect(step, ctx).await
    }

    /// Each means heals its own journaled entries.
    async fn heal(&self, action: &HealAction, with: &HealWith<'_>) -> Result<(), FaultError> {
        crate::heal_entry_action(action, with).await
    }
}
