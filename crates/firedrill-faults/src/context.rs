//! What a fault module needs from whoever runs it: the step, the nodes, the
//! target, and the heal journal. The engine implements [`FaultContext`];
//! the watchdog, which has no engine, heals with a [`HealWith`].

use crate::journal::HealAction;
use crate::nodes::{NodeLink, ProcSource};
use crate::FaultError;
use async_trait::async_trait;
use firedrill_spec::{FaultAction, LinkScope};
use firedrill_targets::{Target, TargetOpener};
use std::sync::Arc;
use std::time::Duration;

/// One fault step as a fault module sees it: the node already resolved
/// from its role at the moment the step runs.
#[derive(Debug, Clone)]
pub struct FaultStep<'a> {
    pub action: FaultAction,
    pub node: &'a str,
    /// Network faults: which of the node's links.
    pub link: LinkScope,
    /// Network faults: the toxic's attributes (`latency`, `jitter`, `rate`).
    pub attrs: &'a serde_json::Value,
    /// Process faults: only the node's server process, not its manager.
    pub process: Option<&'a str>,
    /// A timed step heals after this long.
    pub for_: Option<Duration>,
    pub trial: u32,
    /// Index in the spec's schedule.
    pub index: usize,
}

impl FaultStep<'_> {
    /// The journal id of the step's heal: unique per trial and step.
    pub fn heal_id(&self) -> String {
        format!("t{}-s{}", self.trial, self.index)
    }

    /// The journal id of the heal of the `i`th process a step signals: the
    /// step's own id for the first, so single-process nodes keep the ids
    /// they always had.
    pub fn sub_heal_id(&self, i: usize) -> String {
        let id = self.heal_id();
        if i == 0 {
            id
        } else {
            format!("{id}.{i}")
        }
    }

    /// Makes toxic names unique per step, so two faults on one link never
    /// collide and each heal removes only its own toxics.
    pub fn tag(&self) -> String {
        format!("t{}s{}", self.trial, self.index)
    }
}

/// What a fault knows about one node.
#[derive(Debug, Clone, Copy)]
pub struct NodeFacts<'a> {
    pub name: &'a str,
    /// firedrill's control path to the node (no password).
    pub conninfo: &'a str,
    pub proc: &'a ProcSource,
    /// The node's links that run through fault proxies.
    pub links: &'a [NodeLink],
    /// `links = "netns"` labs: the host side of the node's veth pair.
    pub veth: Option<&'a str>,
    /// The node's data directory when firedrill made it (a lab node; never
    /// the user's own endpoints): what a wipe may remove.
    pub lab_data_dir: Option<&'a std::path::Path>,
}

/// The engine's side of a fault: its nodes, its target and its heal
/// journal.
#[async_trait]
pub trait FaultContext: Send + Sync {
    /// Every node of the store, in the order the spec or lab gave them.
    fn nodes(&self) -> Vec<NodeFacts<'_>>;

    fn node(&self, name: &str) -> Option<NodeFacts<'_>> {
        self.nodes().into_iter().find(|n| n.name == name)
    }

    /// The trial's target: store-specific faults (a replication cut) are
    /// carried out through it.
    fn target(&self) -> &dyn Target;

    /// The kind of store, journaled with heals that reopen the target.
    fn store_kind(&self) -> &str;

    /// Journals a heal before its fault is injected, and starts the
    /// watchdog that carries it out after `ttl` (None: the trial's limit)
    /// if firedrill dies first.
    fn owe(&self, id: &str, ttl: Option<Duration>, action: HealAction) -> Result<(), FaultError>;

    /// Records a data disaster's bad transaction on the trial's timeline
    /// (the audit classifies the ledger against it).
    fn record_damage(&self, _damage: firedrill_ledger::Damage) {}

    /// The lab's backups (its `[lab.backup]` tool), when it takes them: a
    /// `backup` step takes one through it.
    fn lab_backups(&self) -> Option<&dyn firedrill_targets::Restorer> {
        None
    }

    /// Records a backup a step took on the trial's timeline.
    fn record_backup(&self, _backup: firedrill_targets::BackupReport) {}

    /// Records what the step did, in the store's terms (an xid, the WAL
    /// segment it took away), on its fault record in the run.
    fn record_detail(&self, _detail: String) {}

    /// The run's directory, told to user commands (`FIREDRILL_RUN_DIR`).
    fn run_dir(&self) -> Option<&std::path::Path> {
        None
    }

    /// Records a user command's run on the trial's timeline.
    fn record_command(&self, _ran: &crate::exec::Ran) {}

    /// Values to blank in a user command's output (the target's password).
    fn secrets(&self) -> Vec<String> {
        Vec::new()
    }

    /// Heals now every owed heal `which` picks (a resume heals the pause
    /// it ends), recording each on its fault's timeline.
    async fn heal_owed(&self, which: &HealFilter<'_>);
}

/// Picks owed heals by their journaled action.
pub type HealFilter<'a> = dyn Fn(&HealAction) -> bool + Send + Sync + 'a;

/// Opens the target a journaled heal names by its kind.
pub type OpenerFn = dyn Fn(&str) -> Option<Arc<dyn TargetOpener>> + Send + Sync;

/// Receives each user command a heal ran (a `command` step's heal).
pub type OnCommand<'a> = dyn Fn(&crate::exec::Ran) + Send + Sync + 'a;

/// What a heal needs besides its journaled entry.
pub struct HealWith<'a> {
    /// Opens the store a replication heal restores, by kind.
    pub opener: &'a OpenerFn,
    /// From the environment or a file, never from a spec or the journal.
    pub password: Option<&'a str>,
    /// Where a heal's command runs are recorded (the engine's timeline,
    /// the watchdog's log); None: nowhere.
    pub on_command: Option<&'a OnCommand<'a>>,
}
