//! The recovery: what brings service back after the disaster, whether
//! firedrill acts (promote, a command) or the store does (automatic).

use crate::plan::{Plan, RecoveryPlan};
use crate::trial::{lock, Shared, ROLE_TIMEOUT};
use firedrill_faults::exec::{self, Invocation, Ran};
use firedrill_ledger::events::DrillEvent;
use firedrill_ledger::CommandPurpose;
use firedrill_spec::CommandSpec;
use firedrill_targets::LiveRole;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The recovery's action name, the node it made primary, and its outcome.
type Recovered = (&'static str, Option<String>, Result<(), String>);

/// Runs the plan's recovery after its delay, once the disaster is in
/// effect, and records it on the timeline. `hit` is every node the
/// disaster step hit (a zone is several): none of them counts as the
/// recovered primary.
pub(crate) async fn recover(plan: &Plan, sh: &Arc<Shared>, hit: &[String]) {
    if plan.recovery == RecoveryPlan::None {
        return;
    }
    tokio::time::sleep(plan.recovery_delay).await;
    let t_start = sh.now();
    let (action, node, res): Recovered = match &plan.recovery {
        RecoveryPlan::None => return,
        RecoveryPlan::Promote(n) => {
            lock(&sh.timeline).detected = Some(t_start);
            (
                "promote",
                Some(n.clone()),
                sh.target.promote(n).await.map_err(|e| e.to_string()),
            )
        }
        RecoveryPlan::MostAdvanced => {
            lock(&sh.timeline).detected = Some(t_start);
            promote_most_advanced(sh, hit).await
        }
        RecoveryPlan::Failover(zone) => {
            lock(&sh.timeline).detected = Some(t_start);
            fail_over(sh, zone, hit).await
        }
        RecoveryPlan::Command(cmd) => {
            lock(&sh.timeline).detected = Some(t_start);
            let limit = Duration::from_micros(plan.slo.recovery_timeout_us);
            ("command", None, run_command(sh, cmd, hit, limit).await)
        }
        RecoveryPlan::Automatic => await_automatic(plan, sh, hit).await,
        RecoveryPlan::Restart => {
            lock(&sh.timeline).detected = Some(t_start);
            restart(sh, hit).await
        }
        RecoveryPlan::Restore(rp) => crate::restore::restore(plan, sh, rp, hit).await,
    };
    let t_done = sh.now();
    // A restore waits for discovery first: it starts when it acts.
    let t_start = match &plan.recovery {
        RecoveryPlan::Restore(_) => lock(&sh.timeline)
            .restore
            .as_ref()
            .map_or(t_start, |m| m.start),
        _ => t_start,
    };
    {
        let mut tl = lock(&sh.timeline);
        tl.recovery_start = Some(t_start);
        tl.recovery_done = Some(t_done);
        if res.is_ok() {
            tl.promoted = node.clone();
        }
    }
    if !matches!(
        plan.recovery,
        RecoveryPlan::Automatic | RecoveryPlan::Restore(_)
    ) {
        sh.emit(DrillEvent::Detected {
            trial: sh.trial,
            t_us: t_start,
            how: format!("{action} issued by firedrill"),
        });
    }
    sh.emit(DrillEvent::Recovery {
        trial: sh.trial,
        action: action.into(),
        node,
        t_start,
        t_done,
        error: res.err(),
    });
}

/// Starts every hit process again, in order; the first failure is the
/// recovery's error. No node is promoted: the store's roles are unchanged.
async fn restart(sh: &Shared, hit: &[String]) -> Recovered {
    for n in hit {
        if let Err(e) = sh.target.restart(n).await {
            return ("restart", None, Err(format!("{n}: {e}")));
        }
    }
    let what = if hit.is_empty() {
        "restart (nothing was hit)"
    } else {
        "restart"
    };
    (what, None, Ok(()))
}

/// Promotes the standby holding the most of the primary's history.
async fn promote_most_advanced(sh: &Shared, hit: &[String]) -> Recovered {
    let mut best: Option<(u64, String)> = None;
    for n in sh
        .target
        .node_names()
        .into_iter()
        .filter(|n| !hit.contains(n))
    {
        if sh.target.role(&n, ROLE_TIMEOUT).await != LiveRole::Standby {
            continue;
        }
        if let Some(lsn) = sh.target.position(&n).await {
            if best.as_ref().is_none_or(|(b, _)| lsn > *b) {
                best = Some((lsn, n.clone()));
            }
        }
    }
    match best {
        Some((_, n)) => (
            "promote",
            Some(n.clone()),
            sh.target.promote(&n).await.map_err(|e| e.to_string()),
        ),
        None => (
            "promote",
            None,
            Err("no reachable standby to promote".into()),
        ),
    }
}

/// Promotes the first node of `zone` the disaster did not hit: the
/// clients move to that region.
async fn fail_over(sh: &Shared, zone: &str, hit: &[String]) -> Recovered {
    let node = sh
        .nodes
        .iter()
        .find(|n| n.zone.as_deref() == Some(zone) && !hit.contains(&n.name))
        .map(|n| n.name.clone());
    match node {
        Some(n) => (
            "failover",
            Some(n.clone()),
            sh.target.promote(&n).await.map_err(|e| e.to_string()),
        ),
        None => (
            "failover",
            None,
            Err(format!("no node of region {zone} survived the disaster")),
        ),
    }
}

/// What the recovery's commands are told besides firedrill's own
/// environment: every node's control path (no password), the trial, the
/// run directory.
fn recovery_env(sh: &Shared, purpose: CommandPurpose) -> Vec<(String, String)> {
    let nodes: Vec<String> = sh
        .nodes
        .iter()
        .map(|n| format!("{}={}", n.name, n.conninfo))
        .collect();
    let mut env = vec![
        ("FIREDRILL_COMMAND".into(), purpose.as_str().into()),
        ("FIREDRILL_TRIAL".into(), sh.trial.to_string()),
        ("FIREDRILL_NODES".into(), nodes.join("\n")),
    ];
    if let Some(d) = sh.journal.dir().parent() {
        env.push(("FIREDRILL_RUN_DIR".into(), d.display().to_string()));
    }
    env
}

/// Runs one of the recovery's commands and records it on the timeline.
async fn run_recorded(
    sh: &Shared,
    purpose: CommandPurpose,
    command: CommandSpec,
    env: Vec<(String, String)>,
    timeout: Duration,
) -> Ran {
    let inv = Invocation {
        purpose,
        step: None,
        node: None,
        command,
        env,
        timeout,
        secrets: sh.password.iter().cloned().collect(),
    };
    let ran = exec::run(&inv).await;
    sh.record_command(&ran);
    ran
}

/// The user's recovery command (`sh -c`), told the failed node and every
/// node's conninfo in its environment (`FIREDRILL_FAILED_NODE` is the first
/// node hit, `FIREDRILL_FAILED_NODES` all of them, one per line). It has
/// recovery_timeout: past that, no recovery it brings counts.
async fn run_command(
    sh: &Shared,
    cmd: &str,
    hit: &[String],
    limit: Duration,
) -> Result<(), String> {
    let mut env = recovery_env(sh, CommandPurpose::Recovery);
    env.push((
        "FIREDRILL_FAILED_NODE".into(),
        hit.first().cloned().unwrap_or_default(),
    ));
    env.push(("FIREDRILL_FAILED_NODES".into(), hit.join("\n")));
    let command = CommandSpec::Shell(cmd.to_string());
    let ran = run_recorded(sh, CommandPurpose::Recovery, command, env, limit).await;
    if ran.ok() {
        Ok(())
    } else {
        Err(format!("recovery command: {}", ran.outcome()))
    }
}

/// The recovery's `verify_command`, once the trial is over and its faults
/// healed, before the audit: a failure fails the trial (the analysis reads
/// it from the timeline, so `firedrill report` agrees).
pub(crate) async fn verify(sh: &Shared, command: &CommandSpec, timeout: Duration) {
    let mut env = recovery_env(sh, CommandPurpose::Verify);
    let promoted = lock(&sh.timeline).promoted.clone();
    if let Some(p) = promoted {
        env.push(("FIREDRILL_PROMOTED".into(), p));
    }
    let ran = run_recorded(sh, CommandPurpose::Verify, command.clone(), env, timeout).await;
    if !ran.ok() {
        sh.warn(format!("verify_command failed: {}", ran.outcome()));
    }
}

/// Waits for the store's own failover: another node becomes primary
/// within recovery_timeout.
async fn await_automatic(plan: &Plan, sh: &Shared, hit: &[String]) -> Recovered {
    let end = Instant::now() + Duration::from_micros(plan.slo.recovery_timeout_us);
    let mut found = None;
    while Instant::now() < end && !sh.stop.load(Ordering::Relaxed) {
        let roles = sh.target.roles(ROLE_TIMEOUT).await;
        if let Some((n, _)) = roles
            .iter()
            .find(|(n, r)| *r == LiveRole::Primary && !hit.contains(n))
        {
            found = Some(n.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(n) = found else {
        return (
            "automatic",
            None,
            Err("no other node became primary within recovery_timeout".into()),
        );
    };
    let t = sh.now();
    // The store's own signal (failover watch) may have marked detection
    // earlier; seeing the new primary is detection only when it had none.
    // A primary the disaster did not hit (a zone loss that spared it) was
    // never failed over: only the store's own signal can mark detection.
    let kept = lock(&sh.first_primary).as_deref() == Some(n.as_str());
    let first = {
        let mut tl = lock(&sh.timeline);
        let first = tl.detected.is_none() && !kept;
        if first {
            tl.detected = Some(t);
        }
        first
    };
    if first {
        sh.emit(DrillEvent::Detected {
            trial: sh.trial,
            t_us: t,
            how: format!("{n} became primary"),
        });
    }
    ("automatic", Some(n), Ok(()))
}
