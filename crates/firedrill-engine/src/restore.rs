//! The `restore` recovery of a data disaster: wait until the damage is
//! discovered, then have the lab restore the primary from its backups to
//! the target, and put the restore's phases on the trial's clock.

use crate::plan::{Plan, RestorePlan};
use crate::trial::{lock, Shared};
use firedrill_ledger::events::DrillEvent;
use firedrill_ledger::{Micros, RestoreMarks};
use firedrill_spec::RestoreTarget;
use firedrill_targets::{RestorePoint, RestoreRequest};

/// The recovery's action name, the node it made primary, and its outcome.
type Recovered = (&'static str, Option<String>, Result<(), String>);

pub(crate) async fn restore(
    plan: &Plan,
    sh: &Shared,
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
    }
    let node = hit.first().cloned().unwrap_or_default();
    let start = sh.now();
    let mut marks = RestoreMarks {
        target: rp.target_text.clone(),
        start,
        ..RestoreMarks::default()
    };
    let res = run(plan, sh, rp, &node).await;
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
        }
        Err(e) => marks.detail = e.clone(),
    }
    let reached = marks.reached;
    let detail = marks.detail.clone();
    lock(&sh.timeline).restore = Some(marks);
    // A restore that did not reach its target recovered nothing: no node
    // is promoted, and the audit reads what is left.
    match res {
        Ok(r) if reached => ("restore", Some(r.primary.unwrap_or(node)), Ok(())),
        Ok(_) => (
            "restore",
            None,
            Err(format!("the restore did not reach its target: {detail}")),
        ),
        Err(e) => ("restore", None, Err(e)),
    }
}

async fn run(
    plan: &Plan,
    sh: &Shared,
    rp: &RestorePlan,
    node: &str,
) -> Result<firedrill_targets::RestoreReport, String> {
    let Some(r) = &plan.restorer else {
        return Err("no restorer: a restore needs a lab with [lab.backup]".into());
    };
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
    };
    r.0.restore(node, &req).await.map_err(|e| e.to_string())
}
