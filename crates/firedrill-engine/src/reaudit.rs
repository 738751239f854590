//! Re-auditing a run whose firedrill died: open the store again with the
//! trial's recorded run id, pick the authoritative node as the audit does,
//! and read back what survived. A store that fails or stops answering at
//! any point of this is an error (inconclusive), never an empty audit.

use crate::audit::pick_audit_node;
use crate::plan::{NodeSpec, Plan};
use crate::EngineError;
use firedrill_ledger::Timeline;
use firedrill_targets::{AuditRead, LiveRole, TargetNode};
use std::time::Duration;

/// What the store still holds of one trial.
pub struct Reaudited {
    /// The node read back.
    pub node: String,
    /// How the node was chosen, when it was not the obvious one.
    pub note: Option<String>,
    pub read: AuditRead,
}

/// Reads back trial rows `run_id` from the store `nodes` make up, waiting
/// up to `wait` for a node to answer.
pub async fn reaudit(
    plan: &Plan,
    nodes: &[NodeSpec],
    run_id: &str,
    tl: &Timeline,
    wait: Duration,
) -> Result<Reaudited, EngineError> {
    let target_nodes: Vec<TargetNode> = nodes
        .iter()
        .map(|n| TargetNode {
            name: n.name.clone(),
            control: n.conninfo.clone(),
            client: n
                .client_conninfo
                .clone()
                .unwrap_or_else(|| n.conninfo.clone()),
        })
        .collect();
    let target = plan
        .store
        .open(&target_nodes, plan.password.as_deref(), run_id)
        .map_err(|e| EngineError::Audit(format!("cannot open the store: {e}")))?;
    let (node, note) = pick_audit_node(target.as_ref(), tl, wait).await?;
    let read = target.audit_read(&node).await.map_err(|e| {
        EngineError::Audit(format!(
            "the store died or became unreachable during the audit of {node}: {e}"
        ))
    })?;
    // A node that stops answering right after the read may have served it
    // from a dying server: the figures would prove nothing.
    let role = target.role(&node, Duration::from_secs(3)).await;
    if !matches!(role, LiveRole::Primary | LiveRole::Standby) {
        return Err(EngineError::Audit(format!(
            "{node} stopped answering during the audit ({role:?} after the read)"
        )));
    }
    Ok(Reaudited { node, note, read })
}
