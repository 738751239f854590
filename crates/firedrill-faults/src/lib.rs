//! Faults and heals, one module per fault kind, every one of the same
//! shape ([`Fault`]): validate the step against the target, inject it
//! (journaling the heals it owes *before* acting, so a watchdog can heal
//! even if firedrill dies), tell whether it is in effect, heal it from the
//! journaled entry alone, and a TTL after which the watchdog heals.
//!
//! The engine schedules steps and never matches on fault kinds: it asks
//! [`fault_for`] for the module and talks to it through [`FaultContext`].

mod backup;
mod command;
mod context;
mod corruption;
mod cut_replication;
pub mod exec;
mod journal;
mod kill;
mod netns;
mod nodes;
mod partition;
mod pause;
mod process;
pub mod proxy;
mod remove_wal;
mod scratch;
mod stop;
mod toxics;
mod wipe;

pub use context::{FaultContext, FaultStep, HealFilter, HealWith, NodeFacts, OnCommand, OpenerFn};
pub use journal::{HealAction, HealEntry, HealJournal};
pub use nodes::{NodeLink, ProcSource};
pub use process::{apply_process_fault, ProcessAction};

use async_trait::async_trait;
use firedrill_spec::FaultAction;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error(transparent)]
    Proc(#[from] firedrill_proc::ProcError),
    #[error(transparent)]
    Target(#[from] firedrill_targets::TargetError),
    /// The step cannot run on this node or target.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotInEffect(String),
    #[error("heal journal {path}: {source}")]
    Journal {
        path: String,
        source: std::io::Error,
    },
    /// A heal names a kind of store this build cannot open.
    #[error("no target for a {0} store to heal with")]
    NoStore(String),
    /// A file operation of a fault (a wipe removing a data directory).
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A blocking helper task failed (panicked or was cancelled).
    #[error("{0}")]
    Task(String),
}

/// One fault kind. Implementations are stateless: everything a heal needs
/// is in its journaled [`HealAction`], so the watchdog process can carry
/// it out with nothing else.
#[async_trait]
pub trait Fault: Send + Sync {
    /// Checks that the step can be carried out on its node (a pid is known,
    /// a proxied link exists) before anything is touched.
    fn validate(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError>;

    /// Injects the fault and returns once it is in effect. Every heal it
    /// owes is journaled through [`FaultContext::owe`] before it acts.
    async fn inject(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError>;

    /// Whether the fault holds right now, as seen from outside (`inject`
    /// waits for the same condition). An error: it cannot tell.
    async fn in_effect(
        &self,
        step: &FaultStep<'_>,
        ctx: &dyn FaultContext,
    ) -> Result<bool, FaultError>;

    /// Carries out one journaled heal of this kind. Idempotent: the engine
    /// retries, and the watchdog may repeat a heal the engine made.
    async fn heal(&self, action: &HealAction, with: &HealWith<'_>) -> Result<(), FaultError>;

    /// How long the watchdog waits before healing on its own: a timed step
    /// a little past its end; None: the trial's own limit.
    fn ttl(&self, step: &FaultStep<'_>) -> Option<Duration> {
        step.for_.map(|f| f + Duration::from_secs(5))
    }
}

/// The registry: the module that carries out a fault action.
pub fn fault_for(action: FaultAction) -> &'static dyn Fault {
    match action {
        FaultAction::Kill => &kill::Kill,
        FaultAction::Stop => &stop::Stop,
        FaultAction::Pause => &pause::Pause,
        FaultAction::Resume => &pause::Resume,
        FaultAction::CutReplication => &cut_replication::CutReplication,
        FaultAction::Partition => &partition::Partition,
        FaultAction::Latency | FaultAction::Bandwidth | FaultAction::Reset => &toxics::Toxics,
        FaultAction::DeleteRows
        | FaultAction::UpdateRows
        | FaultAction::Truncate
        | FaultAction::DropTable
        | FaultAction::Sql => &corruption::Corrupt,
        FaultAction::Backup => &backup::Backup,
        FaultAction::Wipe => &wipe::Wipe,
        FaultAction::RemoveWal => &remove_wal::RemoveWal,
        FaultAction::Command => &command::Command,
    }
}

/// The module that heals a journaled entry; None for what no fault owes
/// (a scratch server).
fn healer_for(action: &HealAction) -> Option<&'static dyn Fault> {
    Some(match action {
        HealAction::Continue { .. } => &pause::Pause,
        HealAction::RestoreReplication { .. } => &cut_replication::CutReplication,
        HealAction::RemoveToxics { .. } => &toxics::Toxics,
        HealAction::LinkUp { .. } => &netns::VethDown,
        HealAction::PutBack { .. } => &remove_wal::RemoveWal,
        HealAction::RunCommand { .. } => &command::Command,
        HealAction::StopServer { .. } => return None,
    })
}

/// Carries out one journaled heal: an owed heal in the engine, or an entry
/// the watchdog read back. Idempotent.
pub async fn heal_entry(entry: &HealEntry, with: &HealWith<'_>) -> Result<(), FaultError> {
    heal_entry_action(&entry.action, with).await
}

async fn heal_entry_action(action: &HealAction, with: &HealWith<'_>) -> Result<(), FaultError> {
    match healer_for(action) {
        Some(f) => f.heal(action, with).await,
        None => scratch::stop(action).await,
    }
}

/// Runs blocking fault work (signals and their waits, proxy calls, `ip`) on
/// the blocking pool, so the drill's clocks and workload keep running.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FaultError> + Send + 'static,
) -> Result<T, FaultError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| FaultError::Task(e.to_string()))?
}

/// The error a module's heal gives for an entry of another kind (a bug in
/// [`healer_for`]).
/// Names no field: a saved conninfo may hold a password.
fn wrong_heal(module: &str) -> FaultError {
    FaultError::Task(format!("{module} was asked to heal another kind of fault"))
}
