//! The fault schedule: each step at its offset, its node resolved from its
//! role at that moment, injected by its fault module through
//! [`StepContext`], and timed. The engine knows no fault kind: the
//! registry in firedrill-faults picks the module.

use crate::heal::{heal_matching, owe};
use crate::plan::{NodeRef, Plan, RecoveryPlan, RestorerHandle, StepPlan};
use crate::trial::{lock, Shared, ROLE_TIMEOUT};
use crate::{recover, EngineError};
use async_trait::async_trait;
use firedrill_faults::{
    fault_for, FaultContext, FaultError, FaultStep, HealAction, HealFilter, NodeFacts,
};
use firedrill_ledger::events::DrillEvent;
use firedrill_ledger::FaultRecord;
use firedrill_spec::NodeRole;
use firedrill_targets::{LiveRole, Target};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Runs the fault steps at their offsets. Returns the recovery task, if
/// the disaster started one.
pub(crate) async fn run_schedule(
    plan: &Plan,
    sh: &Arc<Shared>,
    warmup_end: Instant,
) -> Result<Option<JoinHandle<()>>, EngineError> {
    let mut recovery = None;
    if plan.steps.is_empty() {
        if let RecoveryPlan::Restore(_) = &plan.recovery {
            // A restore test: no fault, the restore itself is the event;
            // the trial waits for it (it runs inside the schedule).
            tokio::time::sleep_until(warmup_end).await;
            sh.sampling.store(false, Ordering::SeqCst);
            sh.phase("restore test");
            recover::recover(plan, sh, &[]).await;
        }
        return Ok(None);
    }
    for step in &plan.steps {
        tokio::time::sleep_until(warmup_end + step.at).await;
        if step.disaster {
            sh.sampling.store(false, Ordering::SeqCst);
            sh.phase("fault");
        }
        let nodes = resolve(sh, step).await?;
        // Several nodes (a zone) are hit at the same instant, each with its
        // own fault record and heals.
        let backups = plan.restorer.as_ref();
        let results =
            futures_util::future::join_all(nodes.iter().map(|n| inject(sh, backups, step, n)))
                .await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        if step.disaster {
            sh.phase("recovering");
            let sh2 = sh.clone();
            let plan2 = plan.clone();
            let hit = nodes.clone();
            recovery = Some(sh.spawn(async move { recover::recover(&plan2, &sh2, &hit).await }));
        }
    }
    Ok(recovery)
}

/// The nodes a step hits, resolved at the moment it runs: a node, every
/// node of a zone, or whoever holds a role now.
async fn resolve(sh: &Shared, step: &StepPlan) -> Result<Vec<String>, EngineError> {
    match &step.node {
        NodeRef::Name(n) if sh.nodes.iter().any(|x| &x.name == n) => Ok(vec![n.clone()]),
        // A user command that names no node: it hits no node firedrill
        // knows, and its record says so with an empty name.
        NodeRef::Name(n) if n.is_empty() => Ok(vec![String::new()]),
        NodeRef::Name(role) => {
            let nodes = sh
                .target
                .resolve_role(role, step.partition)
                .await
                .map_err(|e| EngineError::Fault(e.to_string()))?;
            if nodes.is_empty() {
                return Err(EngineError::Fault(format!("no node is {role} right now")));
            }
            Ok(nodes)
        }
        NodeRef::Zone(z) => {
            let all = z == firedrill_spec::ALL_NODES;
            let nodes: Vec<String> = sh
                .nodes
                .iter()
                .filter(|n| all || n.zone.as_deref() == Some(z))
                .map(|n| n.name.clone())
                .collect();
            if nodes.is_empty() {
                return Err(EngineError::Fault(format!("zone {z} has no nodes")));
            }
            Ok(nodes)
        }
        NodeRef::Role(role) => resolve_role(sh, *role).await.map(|n| vec![n]),
    }
}

/// Resolves a generic role to a node name at the moment the step runs.
async fn resolve_role(sh: &Shared, role: NodeRole) -> Result<String, EngineError> {
    let roles = sh.target.roles(ROLE_TIMEOUT).await;
    let find = |want: LiveRole| {
        roles
            .iter()
            .find(|(_, r)| *r == want)
            .map(|(n, _)| n.clone())
    };
    match role {
        NodeRole::Primary => find(LiveRole::Primary)
            .ok_or_else(|| EngineError::Fault("no node is primary right now".into())),
        NodeRole::Standby => find(LiveRole::Standby)
            .ok_or_else(|| EngineError::Fault("no node is a standby right now".into())),
        NodeRole::SyncStandby => {
            let p = find(LiveRole::Primary)
                .ok_or_else(|| EngineError::Fault("no node is primary right now".into()))?;
            let s = sh
                .target
                .sync_standbys(&p)
                .await
                .map_err(|e| EngineError::Fault(e.to_string()))?;
            s.into_iter().next().ok_or_else(|| {
                EngineError::Fault("the primary has no synchronous standby right now".into())
            })
        }
    }
}

/// Runs one step: records its start, injects it through its fault module
/// (which journals its heals first), records when it was in effect, and
/// schedules the heal of a timed step.
async fn inject(
    sh: &Arc<Shared>,
    backups: Option<&RestorerHandle>,
    step: &StepPlan,
    node: &str,
) -> Result<(), EngineError> {
    if sh.fault_index.load(Ordering::SeqCst) == usize::MAX {
        let len = lock(&sh.ledger).len();
        sh.fault_index.store(len, Ordering::SeqCst);
    }
    let t_start = sh.now();
    let idx = {
        let mut tl = lock(&sh.timeline);
        tl.faults.push(FaultRecord {
            step: step.index,
            action: step.action.as_str().into(),
            node: node.into(),
            disaster: step.disaster,
            t_start,
            t_done: None,
            heal_start: None,
            heal_done: None,
            error: None,
        });
        tl.faults.len() - 1
    };
    let (fstep, ctx) = step_context(sh, step, node, idx, backups);
    let fault = fault_for(step.action);
    let res = match fault.validate(&fstep, &ctx) {
        Ok(()) => fault.inject(&fstep, &ctx).await,
        Err(e) => Err(e),
    };
    let t_done = sh.now();
    let error = res.err().map(|e| e.to_string());
    {
        let mut tl = lock(&sh.timeline);
        tl.faults[idx].t_done = error.is_none().then_some(t_done);
        tl.faults[idx].error = error.clone();
    }
    sh.emit(DrillEvent::FaultInjected {
        trial: sh.trial,
        step: step.index,
        action: step.action.as_str().into(),
        node: node.into(),
        t_start,
        t_done: error.is_none().then_some(t_done),
        error: error.clone(),
        detail: lock(&ctx.detail).take(),
    });
    if let Some(e) = error {
        return Err(EngineError::Fault(format!(
            "step {} ({} {node}): {e}",
            step.index + 1,
            step.action.as_str()
        )));
    }
    if let Some(d) = step.for_ {
        let sh2 = sh.clone();
        let (step2, node2) = (step.clone(), node.to_string());
        sh.spawn(async move {
            tokio::time::sleep(d).await;
            // The step's heal, or each of its per-process heals: all owed
            // against this step's fault record.
            // A step that owed no heal (its fault ends by itself) has
            // nothing to verify.
            if heal_matching(&sh2, |o| o.record == idx).await > 0 {
                verify_healed(&sh2, &step2, &node2, idx).await;
            }
        });
    }
    Ok(())
}

/// What a fault module sees of one step on one node.
fn step_context<'a>(
    sh: &'a Arc<Shared>,
    step: &'a StepPlan,
    node: &'a str,
    record: usize,
    backups: Option<&'a RestorerHandle>,
) -> (FaultStep<'a>, StepContext<'a>) {
    let fstep = FaultStep {
        action: step.action,
        node,
        link: step.link,
        attrs: &step.attrs,
        process: step.process.as_deref(),
        for_: step.for_,
        trial: sh.trial,
        index: step.index,
    };
    let ctx = StepContext {
        sh,
        record,
        detect_after: step.detect_after,
        backups,
        detail: std::sync::Mutex::new(None),
    };
    (fstep, ctx)
}

/// After a timed step's heal, asks its fault module whether the fault
/// still holds: a heal that did not take is recorded on the fault and
/// warned about (the watchdog will heal it again at its TTL), rather than
/// silently measured as recovery.
async fn verify_healed(sh: &Arc<Shared>, step: &StepPlan, node: &str, idx: usize) {
    // Only timed steps are verified; none of them takes a backup.
    let (fstep, ctx) = step_context(sh, step, node, idx, None);
    match fault_for(step.action).in_effect(&fstep, &ctx).await {
        Ok(false) => {}
        Ok(true) => {
            let m = format!(
                "step {} ({} {node}): still in effect after its heal",
                step.index + 1,
                step.action.as_str()
            );
            lock(&sh.timeline).faults[idx]
                .error
                .get_or_insert_with(|| m.clone());
            sh.warn(m);
        }
        Err(e) => tracing::debug!("step {}: in effect unknown after heal: {e}", step.index + 1),
    }
}

/// The engine's side of one step, for its fault module: the trial's nodes
/// and target, and the heal journal, with heals owed against the step's
/// fault record.
struct StepContext<'a> {
    sh: &'a Arc<Shared>,
    record: usize,
    /// A data disaster's time to discovery.
    detect_after: Option<std::time::Duration>,
    /// The lab's backups, for a `backup` step.
    backups: Option<&'a RestorerHandle>,
    /// What the step did, in the store's terms, for its fault record.
    detail: std::sync::Mutex<Option<String>>,
}

#[async_trait]
impl FaultContext for StepContext<'_> {
    fn record_damage(&self, mut damage: firedrill_ledger::Damage) {
        damage.t_commit = self.sh.now();
        let mut tl = lock(&self.sh.timeline);
        let t_fault = tl
            .faults
            .get(self.record)
            .map_or(damage.t_commit, |f| f.t_start);
        // A step that hits several nodes (a zone's wipe) is discovered
        // from its first injection.
        let found = t_fault + self.detect_after.unwrap_or_default().as_micros() as u64;
        tl.discovered = Some(tl.discovered.map_or(found, |d| d.min(found)));
        tl.damage = Some(damage);
    }

    fn lab_backups(&self) -> Option<&dyn firedrill_targets::Restorer> {
        self.backups.map(|b| b.0.as_ref())
    }

    fn record_backup(&self, b: firedrill_targets::BackupReport) {
        let t_done = self.sh.now();
        let mut tl = lock(&self.sh.timeline);
        let t_start = tl.faults.get(self.record).map_or(t_done, |f| f.t_start);
        tl.backups.push(firedrill_ledger::BackupMark {
            t_start,
            t_done,
            label: b.label,
            position: b.position,
            detail: b.detail,
        });
    }

    fn record_detail(&self, detail: String) {
        *lock(&self.detail) = Some(detail);
    }

    fn nodes(&self) -> Vec<NodeFacts<'_>> {
        self.sh
            .nodes
            .iter()
            .map(|n| NodeFacts {
                name: &n.name,
                conninfo: &n.conninfo,
                proc: &n.proc,
                links: &n.links,
                veth: n.veth.as_deref(),
                lab_data_dir: n.lab_data_dir.as_deref(),
            })
            .collect()
    }

    fn target(&self) -> &dyn Target {
        self.sh.target.as_ref()
    }

    fn store_kind(&self) -> &str {
        self.sh.store.kind()
    }

    /// The heal journal lives in the run directory (`RUN_DIR/heal`).
    fn run_dir(&self) -> Option<&std::path::Path> {
        self.sh.journal.dir().parent()
    }

    fn record_command(&self, ran: &firedrill_faults::exec::Ran) {
        self.sh.record_command(ran);
    }

    fn secrets(&self) -> Vec<String> {
        self.sh.password.iter().cloned().collect()
    }

    fn owe(&self, id: &str, ttl: Option<Duration>, action: HealAction) -> Result<(), FaultError> {
        owe(self.sh, id, self.record, ttl, action)
    }

    async fn heal_owed(&self, which: &HealFilter<'_>) {
        heal_matching(self.sh, |o| which(&o.action)).await;
    }
}
