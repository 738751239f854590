//! Proxied network faults (`partition`, `latency`, `bandwidth`, `reset`):
//! toxics added on the fault proxies of the node's links. The heal is the
//! exact list of (proxy, toxic) pairs added, so it removes only its own.

use crate::proxy::{toxics_for, ProxyApi};
use crate::NodeLink;
use crate::{nodes, Fault, FaultContext, FaultError, FaultStep, HealAction, HealWith};
use async_trait::async_trait;
use std::net::SocketAddr;

pub(crate) struct Toxics;

/// The links the step hits, and the proxy API that serves them (one per
/// lab).
fn links(
    step: &FaultStep<'_>,
    ctx: &dyn FaultContext,
) -> Result<(Vec<NodeLink>, SocketAddr), FaultError> {
    let links = nodes::select_links(ctx, step.node, step.link);
    match links.first().map(|l| l.api) {
        Some(api) => Ok((links, api)),
        None => Err(FaultError::Invalid(format!(
            "{} has no proxied {:?} link: network faults need a lab with links = \"proxied\"",
            step.node, step.link
        ))),
    }
}

#[async_trait]
impl Fault for Toxics {
    fn validate(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        links(step, ctx).map(|_| ())
    }

    async fn inject(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        let (links, api) = links(step, ctx)?;
        let toxics = toxics_for(step.action.as_str(), step.attrs, &step.tag());
        let pairs: Vec<(String, String)> = links
            .iter()
            .flat_map(|l| {
                toxics.iter().map(move |t| {
                    let name = t["name"].as_str().unwrap_or_default().to_string();
                    (l.proxy.clone(), name)
                })
            })
            .collect();
        ctx.owe(
            &step.heal_id(),
            self.ttl(step),
            HealAction::RemoveToxics {
                node: step.node.into(),
                api,
                toxics: pairs,
            },
        )?;
        let proxies: Vec<String> = links.iter().map(|l| l.proxy.clone()).collect();
        crate::blocking(move || {
            let api = ProxyApi::new(api);
            for p in &proxies {
                for t in &toxics {
                    api.add_toxic(p, t)?;
                }
            }
            Ok(())
        })
        .await
    }

    /// Every toxic the step adds is on every proxy it hits.
    async fn in_effect(
        &self,
        step: &FaultStep<'_>,
        ctx: &dyn FaultContext,
    ) -> Result<bool, FaultError> {
        let (links, _) = links(step, ctx)?;
        let want: Vec<String> = toxics_for(step.action.as_str(), step.attrs, &step.tag())
            .iter()
            .filter_map(|t| t["name"].as_str().map(str::to_string))
            .collect();
        crate::blocking(move || {
            for l in &links {
                let have = ProxyApi::new(l.api).toxic_names(&l.proxy)?;
                if !want.iter().all(|w| have.contains(w)) {
                    return Ok(false);
                }
            }
            Ok(true)
        })
        .await
    }

    async fn heal(&self, action: &HealAction, _: &HealWith<'_>) -> Result<(), FaultError> {
        let HealAction::RemoveToxics { api, toxics, .. } = action else {
            return Err(crate::wrong_heal("network"));
        };
        let api = ProxyApi::new(*api);
        let toxics = toxics.clone();
        crate::blocking(move || {
            for (p, t) in &toxics {
                api.remove_toxic(p, t)?;
            }
            Ok(())
        })
        .await
    }
}
