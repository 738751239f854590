//! The kernel-level partition of a `links = "netns"` lab: the host side of
//! the node's veth pair set down, healed by setting it up again, with
//! iproute2. The change is in effect when `ip` returns.

use crate::{Fault, FaultContext, FaultError, FaultStep, HealAction, HealWith};
use async_trait::async_trait;
use std::process::{Command, Stdio};

pub(crate) struct VethDown;

/// The node's host-side veth, when it has one.
pub(crate) fn veth_of(ctx: &dyn FaultContext, node: &str) -> Option<String> {
    ctx.node(node).and_then(|n| n.veth.map(str::to_string))
}

#[async_trait]
impl Fault for VethDown {
    fn validate(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        match veth_of(ctx, step.node) {
            Some(_) => Ok(()),
            None => Err(FaultError::Invalid(format!(
                "{} has no veth: a kernel partition needs a lab with links = \"netns\"",
                step.node
            ))),
        }
    }

    async fn inject(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        self.validate(step, ctx)?;
        let dev = veth_of(ctx, step.node).unwrap_or_default();
        ctx.owe(
            &step.heal_id(),
            self.ttl(step),
            HealAction::LinkUp {
                node: step.node.into(),
                dev: dev.clone(),
            },
        )?;
        crate::blocking(move || set_link(&dev, false)).await
    }

    /// The device is administratively down (IFF_UP clear in sysfs).
    async fn in_effect(
        &self,
        step: &FaultStep<'_>,
        ctx: &dyn FaultContext,
    ) -> Result<bool, FaultError> {
        self.validate(step, ctx)?;
        let dev = veth_of(ctx, step.node).unwrap_or_default();
        let path = format!("/sys/class/net/{dev}/flags");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| FaultError::NotInEffect(format!("{path}: {e}")))?;
        let flags = u32::from_str_radix(text.trim().trim_start_matches("0x"), 16)
            .map_err(|e| FaultError::NotInEffect(format!("{path}: {e}")))?;
        Ok(flags & 1 == 0)
    }

    async fn heal(&self, action: &HealAction, _: &HealWith<'_>) -> Result<(), FaultError> {
        let HealAction::LinkUp { dev, .. } = action else {
            return Err(crate::wrong_heal("netns partition"));
        };
        let dev = dev.clone();
        crate::blocking(move || set_link(&dev, true)).await
    }
}

/// `ip link set dev <dev> up|down`.
fn set_link(dev: &str, up: bool) -> Result<(), FaultError> {
    let state = if up { "up" } else { "down" };
    let out = Command::new("ip")
        .args(["link", "set", "dev", dev, state])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| FaultError::NotInEffect(format!("ip link set dev {dev} {state}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(FaultError::NotInEffect(format!(
            "ip link set dev {dev} {state} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
