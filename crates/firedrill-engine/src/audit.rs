//! The audit: which node holds the recovered data, what survived on it,
//! and the files a trial leaves for `firedrill report`.

use crate::plan::Plan;
use crate::trial::{disaster, lock, with_role, Shared};
use crate::EngineError;
use firedrill_ledger::events::DrillEvent;
use firedrill_ledger::{analyze, check, point_figures, AuditSet, Micros, Op, Timeline, Verdict};
use firedrill_targets::{LiveRole, Target};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What an audit found: the verdict, and what a capability trial needs to
/// judge its operations across domains.
pub(crate) struct Audited {
    pub(crate) verdict: Verdict,
    pub(crate) ops: Vec<Op>,
    pub(crate) audit: AuditSet,
    pub(crate) timeline: Timeline,
    /// The analysis's predicted RPO.
    pub(crate) predicted_s: Option<f64>,
}

/// Reads back what survived on the authoritative node, classifies the
/// ledger against it, checks the objectives, and saves the trial's files.
pub(crate) async fn audit(
    plan: &Plan,
    sh: &Shared,
    workload_end: Micros,
) -> Result<Audited, EngineError> {
    let mut tl = lock(&sh.timeline).clone();
    tl.workload_end = workload_end;
    tl.homes = std::mem::take(&mut *lock(&sh.homes));
    let (audit_node, note) = pick_audit_node(sh.target.as_ref(), &tl, AUDIT_WAIT).await?;
    if let Some(n) = note {
        sh.warn(n);
    }
    let read = sh
        .target
        .audit_read(&audit_node)
        .await
        .map_err(|e| EngineError::Audit(format!("reading {audit_node} failed: {e}")))?;
    sh.emit(DrillEvent::Audit {
        trial: sh.trial,
        node: audit_node.clone(),
        rows: read.ids.len() as u64,
    });
    if !read.garbled.is_empty() {
        sh.warn(format!(
            "{} of this run's rows on {audit_node} hold bytes the workload never wrote (garbled): counted as lost",
            read.garbled.len()
        ));
    }
    // Before the cleanup removes what the group reads.
    tl.consumer = crate::consumer::drain(sh, &read.ids).await;
    if plan.cleanup_rows {
        if let Err(e) = sh.target.cleanup(&audit_node).await {
            sh.warn(format!("could not remove this run's rows: {e}"));
        }
    }
    let audit = AuditSet::with_garbled(read.ids, read.garbled.len());
    // Everything the workload recorded is journaled before the ledger moves.
    crate::journal::flush(sh).await;
    let ops = std::mem::take(&mut *lock(&sh.ledger));
    let positions = std::mem::take(&mut *lock(&sh.positions));
    let mut analysis = analyze(&ops, &tl, &audit, &plan.slo);
    // A restore point in the store's own order judges every acknowledged
    // write the store placed: back if at or before it, gone if past it.
    let point = tl.restore.as_ref().and_then(|m| m.position);
    if let (Some(r), Some(p)) = (analysis.restore.as_mut(), point) {
        if !positions.is_empty() {
            r.point = Some(point_figures(&positions, &audit, p));
        }
    }
    let (mut chk, verdict) = check(&analysis, &plan.objectives);
    if analysis.t_fault_us.is_some() && analysis.rto.achieved_s.is_none() {
        if let Some(why) = sh.target.unrecovered_reason().await {
            explain_unrecovered(&mut chk.reasons, &why);
        }
    }
    let files = TrialFiles::save(&plan.run_dir, sh.trial, &ops, &audit, &tl)
        .and_then(|()| TrialFiles::save_positions(&plan.run_dir, sh.trial, &positions));
    if let Err(e) = files {
        sh.warn(format!("could not save the trial's ledger: {e}"));
    }
    sh.phase("done");
    let predicted_s = analysis.rpo.predicted_s;
    sh.emit(DrillEvent::TrialFinished {
        trial: sh.trial,
        analysis: Box::new(analysis),
        check: chk,
        verdict,
    });
    Ok(Audited {
        verdict,
        ops,
        audit,
        timeline: tl,
        predicted_s,
    })
}

/// Adds the store's own reason to the "never recovered" reason.
fn explain_unrecovered(reasons: &mut [String], why: &str) {
    for r in reasons.iter_mut() {
        if r.starts_with("the service never met its SLO again") {
            *r = format!("{r}: {why}");
        }
    }
}

/// Files a trial leaves in the run directory, so `firedrill report` can
/// re-analyse without the store.
pub struct TrialFiles;

impl TrialFiles {
    pub fn dir(run_dir: &Path, trial: u32) -> PathBuf {
        run_dir.join(format!("trial-{trial}"))
    }

    pub(crate) fn save(
        run_dir: &Path,
        trial: u32,
        ops: &[Op],
        audit: &AuditSet,
        tl: &Timeline,
    ) -> std::io::Result<()> {
        let d = Self::dir(run_dir, trial);
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join("ledger.bin"), firedrill_ledger::codec::encode(ops))?;
        std::fs::write(
            d.join("audit.bin"),
            firedrill_ledger::codec::encode_ids(audit.ids()),
        )?;
        let tl = serde_json::to_vec_pretty(tl).map_err(std::io::Error::other)?;
        std::fs::write(d.join("timeline.json"), tl)
    }

    /// `positions.bin`, when the store gave positions: where it put each
    /// acknowledged write (`codec::decode_positions`).
    fn save_positions(
        run_dir: &Path,
        trial: u32,
        positions: &[(u64, firedrill_ledger::Position)],
    ) -> std::io::Result<()> {
        if positions.is_empty() {
            return Ok(());
        }
        let bytes = firedrill_ledger::codec::encode_positions(positions);
        std::fs::write(Self::dir(run_dir, trial).join("positions.bin"), bytes)
    }
}
/// The recovered authoritative store: the node the recovery promoted, else
/// the one primary, else (nothing recovered) the most advanced standby,
/// whose data is what a later failover would keep.
///
/// Right after the heal a store may still be electing (a JetStream stream
/// leader has been seen to take 25 s): when no node can be audited yet,
/// this retries for up to `AUDIT_WAIT` before it gives up.
pub(crate) async fn pick_audit_node(
    target: &dyn Target,
    tl: &Timeline,
    wait: Duration,
) -> Result<(String, Option<String>), EngineError> {
    let start = tokio::time::Instant::now();
    loop {
        match pick_once(target, tl, wait).await {
            Ok((n, note)) => {
                let waited = start.elapsed();
                let note = if waited >= Duration::from_secs(1) {
                    let w = format!(
                        "no node could be audited until {:.1} s after the heal (the store was still electing)",
                        waited.as_secs_f64()
                    );
                    Some(note.map_or(w.clone(), |n| format!("{w}; {n}")))
                } else {
                    note
                };
                return Ok((n, note));
            }
            Err(_) if start.elapsed() < wait => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// How long the audit waits for a node it can read.
const AUDIT_WAIT: Duration = Duration::from_secs(30);

async fn pick_once(
    target: &dyn Target,
    tl: &Timeline,
    wait: Duration,
) -> Result<(String, Option<String>), EngineError> {
    let hit = disaster(tl).map(|f| f.node.clone());
    let roles = target.roles(Duration::from_secs(3)).await;
    let primaries = with_role(&roles, LiveRole::Primary);
    if let Some(p) = &tl.promoted {
        // The store may have failed over again after the recovery (Sentinel
        // can): the primary now is the authoritative store.
        return Ok(match primaries.as_slice() {
            [now] if *now != p => (
                (*now).clone(),
                Some(format!(
                    "{p} was promoted, but {now} is primary at the audit (a later failover): audited {now}"
                )),
            ),
            _ => (p.clone(), None),
        });
    }
    if primaries.len() == 1 {
        return Ok((primaries[0].clone(), None));
    }
    if primaries.len() > 1 {
        let pick = primaries
            .iter()
            .find(|n| Some(**n) != hit.as_ref())
            .unwrap_or(&primaries[0]);
        return Ok((
            (*pick).clone(),
            Some(format!(
                "{} nodes accept writes (split brain: {}); audited {pick}",
                primaries.len(),
                primaries
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        ));
    }
    let mut best: Option<(u64, String)> = None;
    for (n, r) in &roles {
        if *r == LiveRole::Standby {
            if let Some(l) = target.position(n).await {
                if best.as_ref().is_none_or(|(b, _)| l > *b) {
                    best = Some((l, n.clone()));
                }
            }
        }
    }
    match best {
        Some((_, n)) => Ok((
            n.clone(),
            Some(format!("no node accepts writes: audited standby {n} (read-only), the data a later failover would keep")),
        )),
        None => {
            let desc: Vec<String> = roles.iter().map(|(n, r)| format!("{n}: {r:?}")).collect();
            Err(EngineError::Audit(format!(
                "no node is reachable for the audit within {} s ({})",
                wait.as_secs(),
                desc.join(", ")
            )))
        }
    }
}
