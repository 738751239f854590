//! The drill runner. It drives the workload, runs the fault schedule and
//! the recovery, audits the store, and emits [`DrillEvent`]s; outputs are
//! consumers of that stream. Faults heal on every path: success, error,
//! panic, Ctrl-C and timeout, and a detached watchdog heals them if
//! firedrill itself dies.

mod audit;
mod capability;
mod consumer;
mod heal;
mod journal;
mod outbox;
mod plan;
mod reaudit;
mod recover;
mod restore;
mod schedule;
mod trial;
mod workload;

pub use audit::TrialFiles;
pub use capability::{run_capability, CapabilityPlan, Domain};
/// One journaled heal, carried out by its fault's module: the watchdog
/// (`firedrill __heal`) calls it with the entry it read back.
pub use firedrill_faults::{heal_entry, HealWith};
pub use journal::JOURNAL_FILE;
pub use outbox::OutboxPlan;
pub use plan::*;
pub use reaudit::{reaudit, Reaudited};

use firedrill_ledger::events::DrillEvent;
use firedrill_ledger::Verdict;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store was not in a state to drill (exit 3).
    #[error("preflight failed: {0}")]
    Preflight(String),
    /// A fault could not be injected (exit 3).
    #[error("fault could not be injected: {0}")]
    Fault(String),
    /// The store died or could not be read during the audit: the trial
    /// proved nothing (exit 3), never a pass.
    #[error("the audit failed, the run is inconclusive: {0}")]
    Audit(String),
    /// Ctrl-C, SIGTERM or the safety timeout (exit 3).
    #[error("drill aborted: {0}")]
    Aborted(String),
    /// A bug (exit 4).
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    pub fn exit_code(&self) -> i32 {
        match self {
            EngineError::Internal(_) => 4,
            _ => 3,
        }
    }
}

/// What the engine needs from whoever owns the store: the nodes, and a way
/// to bring the store back to healthy between trials.
pub trait Environment: Send {
    /// Makes the store healthy for trial `trial` (1-based) and returns its
    /// nodes, the initial primary first. A lab is rebuilt when it is not
    /// healthy or after trial 1; explicit endpoints run their reset command.
    fn prepare(
        &mut self,
        trial: u32,
        log: &mut dyn FnMut(String),
    ) -> Result<Vec<NodeSpec>, EngineError>;

    /// The nodes as they are now, touching nothing (no reset): what a
    /// re-audit reads.
    fn nodes_now(&mut self) -> Vec<NodeSpec>;

    /// The target opener for the store as `prepare` left it, when it holds
    /// more of the store than the nodes (a Redis lab's sentinel-announced
    /// addresses): a lab rebuilt to healthy has new proxy ports, and an
    /// opener made before the rebuild would map none of them.
    fn opener(&self) -> Option<std::sync::Arc<dyn firedrill_targets::TargetOpener>> {
        None
    }
}

/// Runs every trial of the plan and returns the overall verdict. Events go
/// to `tx`; the caller's reporters consume them.
pub async fn run(
    plan: &Plan,
    env: &mut dyn Environment,
    tx: UnboundedSender<DrillEvent>,
) -> Result<Verdict, EngineError> {
    drill_started(&tx, &plan.drill, plan.trials, &plan.target);
    let interrupted = Arc::new(AtomicBool::new(false));
    let listener = tokio::spawn(listen_for_interrupts(interrupted.clone()));
    let res = run_trials(plan, env, &tx, &interrupted).await;
    listener.abort();
    let verdict = res?;
    let _ = tx.send(DrillEvent::DrillFinished { verdict });
    Ok(verdict)
}

/// Ctrl-C or SIGTERM between trials (during a lab reset, say) stops the
/// drill before the next trial; inside a trial the trial's own guard heals
/// first. A second one quits at once: the heal watchdogs still run.
pub(crate) async fn listen_for_interrupts(flag: Arc<AtomicBool>) {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("interrupted twice: quitting now; pending heals are left to the watchdogs");
            std::process::exit(130);
        }
        eprintln!("interrupted: healing faults and stopping (interrupt again to quit at once)");
    }
}

async fn run_trials(
    plan: &Plan,
    env: &mut dyn Environment,
    tx: &UnboundedSender<DrillEvent>,
    interrupted: &AtomicBool,
) -> Result<Verdict, EngineError> {
    let mut verdicts = Vec::new();
    for trial in 1..=plan.trials {
        if interrupted.load(Ordering::SeqCst) {
            return Err(EngineError::Aborted("interrupted".into()));
        }
        let mut logs = Vec::new();
        let nodes = env.prepare(trial, &mut |m| logs.push(m))?;
        for m in logs {
            let _ = tx.send(DrillEvent::Warning {
                trial: Some(trial),
                message: m,
            });
        }
        if interrupted.load(Ordering::SeqCst) {
            return Err(EngineError::Aborted("interrupted".into()));
        }
        let fresh;
        let plan = match env.opener() {
            Some(o) => {
                fresh = Plan {
                    store: o,
                    ..plan.clone()
                };
                &fresh
            }
            None => plan,
        };
        let v = trial::run_guarded(plan, trial, nodes, tx.clone()).await?;
        verdicts.push(v);
    }
    Ok(worst(&verdicts))
}

/// The worst of several verdicts: any fail fails, else any inconclusive.
pub(crate) fn worst(v: &[Verdict]) -> Verdict {
    if v.contains(&Verdict::Fail) {
        Verdict::Fail
    } else if v.contains(&Verdict::Inconclusive) {
        Verdict::Inconclusive
    } else {
        Verdict::Pass
    }
}

/// The drill's first event, with the wall-clock anchor.
pub(crate) fn drill_started(
    tx: &UnboundedSender<DrillEvent>,
    drill: &str,
    trials: u32,
    target: &str,
) {
    let wall = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let _ = tx.send(DrillEvent::DrillStarted {
        drill: drill.to_string(),
        trials,
        wall_clock: wall,
        target: target.to_string(),
    });
}
