//! The `restore` recovery of a data disaster: wait until the damage is
//! discovered, then have the lab restore the primary from its backups to
//! the target, and put the restore's phases on the trial's clock.
//!
//! Into a new node, the restored server is a scratch node the lab starts:
//! the target takes it in (the clients move to it after a fault; a restore
//! test leaves them on the healthy primary), and the trial owes its
//! teardown like a heal, after the audit and on every exit path.

use crate::heal::spawn_watchdog;
use crate::plan::{Plan, RestorePlan};
use crate::trial::{lock, Shared, ROLE_TIMEOUT};
use firedrill_faults::HealAction;
use firedrill_ledger::events::DrillEvent;
use firedrill_ledger::{Micros, RestoreMarks};
use firedrill_spec::{RestoreInto, RestoreTarget};
use firedrill_targets::{LiveRole, RestorePoint, RestoreRequest, ScratchGuard, ScratchHook};
use std::sync::Arc;

/// The recovery's action name, the node it made primary, and its outcome.
type Recovered = (&'static str, Option<String>, Result<(), String>);

pub(crate) async fn restore(
    plan: &Plan,
    sh: &Arc<Shared>,
    rp: &RestorePlan,
    hit: &[String],
) -> Recovered {
    let discovered = lock(&sh.timeline).discovered;
    if let Some(t) = discovered {
        tokio::time::sleep_until(sh.t0 + std::time::Duration::from_micros(t)).await;
        lock(&sh.timeline).detected = Some(t);
        sh.emit(DrillEvent::Detected {
            trial: sh.trial,
            t_us: t,
            how: "the damage was discovered (detect_after)".into(),
        });
    } else if !hit.is_empty() {
        // A lost node, not damage: the restore is issued once the failure
        // detector's delay has passed, as a promotion would be.
        let t = sh.now();
        lock(&sh.timeline).detected = Some(t);
        sh.emit(DrillEvent::Detected {
            trial: sh.trial,
            t_us: t,
            how: "restore issued by firedrill".into(),
        });
    }
    // The node the fault hit; a restore test restores the primary's backups.
    let node = match hit.first() {
        Some(n) => n.clone(),
        None => primary_now(sh).await.unwrap_or_default(),
    };
    let start = sh.now();
    let mut marks = RestoreMarks {
        target: rp.target_text.clone(),
        start,
        ..RestoreMarks::default()
    };
    let res = run(plan, sh, rp, &node).await;
    let mut new_node = None;
    match &res {
        Ok(r) => {
            let at = |i: Option<std::time::Instant>| {
                i.map(|i| {
                    tokio::time::Instant::from_std(i)
                        .saturating_duration_since(sh.t0)
                        .as_micros() as Micros
                })
            };
            marks.tool_target = r.tool_target.clone();
            marks.flushed = at(r.flushed);
            marks.fetched = at(r.fetched);
            marks.replayed = at(r.replayed);
            marks.promoted = at(r.promoted);
            marks.reached = r.reached;
            marks.detail = r.detail.clone();
            marks.position = r.position;
            new_node = r.new_node.clone();
        }
        Err(e) => marks.detail = e.clone(),
    }
    marks.node = new_node.as_ref().map(|n| n.name.clone());
    let reached = marks.reached;
    let detail = marks.detail.clone();
    lock(&sh.timeline).restore = Some(marks);
    // A restore that did not reach its target recovered nothing: no node
    // is promoted, and the audit reads what is left.
    let out = match res {
        Ok(r) if reached => match new_node {
            Some(n) => {
                // After a fault the application is repointed at the restored
                // server; a restore test's copy only stands beside it.
                let move_clients = !hit.is_empty();
                match sh.target.adopt(&n, move_clients).await {
                    Ok(()) => {
                        let now = sh.now();
                        let mut tl = lock(&sh.timeline);
                        tl.nodes.push(n.name.clone());
                        if let Some(m) = tl.restore.as_mut().filter(|_| move_clients) {
                            m.moved = Some(now);
                        }
                        drop(tl);
                        ("restore", Some(n.name), Ok(()))
                    }
                    Err(e) => ("restore", None, Err(e.to_string())),
                }
            }
            None => ("restore", Some(r.primary.unwrap_or(node)), Ok(())),
        },
        Ok(_) => (
            "restore",
            None,
            Err(format!("the restore did not reach its target: {detail}")),
        ),
        Err(e) => ("restore", None, Err(e)),
    };
    // The tool's own check of its repository, once the restore (and the
    // clients' move) is done, so it delays neither, and before any fault
    // on the backups is healed: what it says beside what the restore
    // proved.
    if let Some(r) = &plan.restorer {
        let check = r.0.check().await;
        if let Some(m) = lock(&sh.timeline).restore.as_mut() {
            m.check = check;
        }
    }
    out
}

/// The node that accepts writes right now, if exactly one does.
async fn primary_now(sh: &Shared) -> Option<String> {
    let roles = sh.target.roles(ROLE_TIMEOUT).await;
    let mut p = roles.into_iter().filter(|(_, r)| *r == LiveRole::Primary);
    match (p.next(), p.next()) {
        (Some((n, _)), None) => Some(n),
        _ => None,
    }
}

async fn run(
    plan: &Plan,
    sh: &Arc<Shared>,
    rp: &RestorePlan,
    node: &str,
) -> Result<firedrill_targets::RestoreReport, String> {
    let Some(r) = &plan.restorer else {
        return Err("no restorer: a restore needs a lab with [lab.backup]".into());
    };
    if node.is_empty() {
        return Err("no single primary to restore the backups of".into());
    }
    let point = match &rp.target {
        RestoreTarget::BeforeFault => {
            let xid = lock(&sh.timeline).damage.as_ref().map(|d| d.xid);
            RestorePoint::BeforeXid(xid.ok_or("the corruption step recorded no transaction")?)
        }
        RestoreTarget::Latest => RestorePoint::Latest,
        RestoreTarget::Time(t) => RestorePoint::Time(t.clone()),
    };
    let req = RestoreRequest {
        point,
        flush_archive: rp.flush_archive,
        into: match rp.into {
            RestoreInto::InPlace => firedrill_targets::RestoreInto::InPlace,
            RestoreInto::NewNode => firedrill_targets::RestoreInto::NewNode,
        },
        scratch: Some(ScratchHook(Arc::new(Guard(sh.clone())))),
    };
    r.0.restore(node, &req).await.map_err(|e| e.to_string())
}

/// Owes a scratch node's teardown the moment its server exists: journaled
/// with a watchdog (firedrill may die), and listed for the end of the trial.
struct Guard(Arc<Shared>);

impl ScratchGuard for Guard {
    fn started(&self, node: &str, proc: firedrill_proc::ProcHandle) {
        let sh = &self.0;
        let id = format!("t{}-scratch-{node}", sh.trial);
        let action = HealAction::StopServer {
            node: node.into(),
            proc,
        };
        match sh
            .journal
            .record(&id, sh.watchdog_ttl.as_secs().max(1), action)
        {
            Ok(_) => spawn_watchdog(sh.journal.dir(), &id),
            Err(e) => sh.warn(format!(
                "could not journal the teardown of scratch node {node}: {e}; the end of the trial and `lab down` still stop it"
            )),
        }
        lock(&sh.scratch).push((node.into(), id));
    }

    fn closed(&self) -> bool {
        self.0
            .scratch_closed
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Tears down every scratch node of the trial, then clears their journal
/// entries. First closed, so a restore still waiting for the lab starts
/// none; the lab's restorer waits for one still running, and tears down
/// whatever the lab recorded, whether or not its start was reported here.
pub(crate) async fn discard_scratch(plan: &Plan, sh: &Shared) {
    if !matches!(plan.recovery, crate::plan::RecoveryPlan::Restore(_)) {
        return;
    }
    sh.scratch_closed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let Some(r) = &plan.restorer else { return };
    match r.0.discard_all().await {
        Ok(gone) => {
            for (_, id) in lock(&sh.scratch).drain(..) {
                sh.journal.remove(&id);
            }
            for node in gone {
                sh.emit(DrillEvent::Phase {
                    trial: sh.trial,
                    t_us: sh.now(),
                    phase: format!("scratch node {node} torn down"),
                });
            }
        }
        Err(e) => sh.warn(format!(
            "could not tear down the scratch nodes: {e}; the watchdog stops them at their TTL, `lab down` removes them"
        )),
    }
}
