//! The plan: a validated spec turned into runtime values. Config types are
//! not runtime types: by the time a Plan exists, every check has passed.

/// Where a fault finds a node's processes and links: fault knowledge, kept
/// in firedrill-faults and named here for the engine's callers.
pub use firedrill_faults::{NodeLink, ProcSource};
use firedrill_ledger::{Objectives, Slo};
use firedrill_spec::{DrillSpec, FaultAction, LinkScope, NodeRole, WorkloadMode};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub name: String,
    /// libpq conninfo without password: firedrill's own control path
    /// (roles, promotion, audit, lag), never through a fault proxy.
    pub conninfo: String,
    /// What the workload's clients use, when it differs (through the
    /// node's clients proxy in a proxied lab).
    pub client_conninfo: Option<String>,
    pub proc: ProcSource,
    /// The node's network links that run through fault proxies.
    pub links: Vec<NodeLink>,
    /// `links = "netns"` labs: the host side of the node's veth pair. A
    /// partition (link all) sets it down.
    pub veth: Option<String>,
    /// The node's failure domain, for steps that hit a whole zone.
    pub zone: Option<String>,
    /// The node's data directory when firedrill made it (lab nodes only,
    /// never the user's endpoints): what a `wipe` removes.
    pub lab_data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeRef {
    /// A node, or a role the store resolves itself (Kafka's `leader`).
    Name(String),
    Role(NodeRole),
    /// Every node of a zone, at the same instant.
    Zone(String),
}

impl std::fmt::Display for NodeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeRef::Name(n) => f.write_str(n),
            NodeRef::Zone(z) => write!(f, "zone {z}"),
            NodeRef::Role(NodeRole::Primary) => f.write_str("primary"),
            NodeRef::Role(NodeRole::Standby) => f.write_str("standby"),
            NodeRef::Role(NodeRole::SyncStandby) => f.write_str("sync_standby"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct StepPlan {
    /// Index in the spec's schedule.
    pub index: usize,
    /// Offset from the end of warmup.
    pub at: Duration,
    pub action: FaultAction,
    pub node: NodeRef,
    pub for_: Option<Duration>,
    pub disaster: bool,
    /// Network faults: which links, and the toxic's attributes.
    pub link: LinkScope,
    pub attrs: serde_json::Value,
    /// Process faults: only the node's server process (`"postgres"`), not
    /// its manager. None: the whole node.
    pub process: Option<String>,
    /// With a role the store resolves per partition: which one.
    pub partition: Option<u32>,
    /// A data disaster: how long until someone notices.
    pub detect_after: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RecoveryPlan {
    None,
    Promote(String),
    /// Promote the first node of this zone the disaster did not hit.
    Failover(String),
    MostAdvanced,
    Command(String),
    Automatic,
    /// Start the hit processes again (a supervisor's restart).
    Restart,
    /// Restore from the lab's backups (a data disaster's recovery).
    Restore(RestorePlan),
}

/// A restore recovery: where to stop, and whether to flush the archive.
#[derive(Debug, Clone, PartialEq)]
pub struct RestorePlan {
    pub target: firedrill_spec::RestoreTarget,
    /// The target as the spec said it, for the report.
    pub target_text: String,
    pub flush_archive: bool,
    /// In place, or into a scratch node.
    pub into: firedrill_spec::RestoreInto,
}

/// The lab's restorer (a lab stops and starts servers; a target cannot).
#[derive(Clone)]
pub struct RestorerHandle(pub std::sync::Arc<dyn firedrill_targets::Restorer>);

impl std::fmt::Debug for RestorerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Restorer")
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Closed { clients: u32 },
    Rate { rate: f64, max_in_flight: u32 },
}

#[derive(Debug, Clone)]
pub struct WorkloadPlan {
    pub mode: Mode,
    pub op_timeout: Duration,
    pub warmup: Duration,
    pub duration: Duration,
    pub payload_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub drill: String,
    pub description: Option<String>,
    /// Human description of the target, e.g. `lab pg-async (n1, n2)`.
    pub target: String,
    pub password: Option<String>,
    /// The kind of store and its kind-specific settings.
    pub store: std::sync::Arc<dyn firedrill_targets::TargetOpener>,
    pub workload: WorkloadPlan,
    pub steps: Vec<StepPlan>,
    pub recovery: RecoveryPlan,
    pub recovery_delay: Duration,
    pub slo: Slo,
    pub objectives: Objectives,
    pub trials: u32,
    pub run_dir: PathBuf,
    /// The drill runs against explicit endpoints, not a lab: clean up its
    /// rows after the audit.
    pub cleanup_rows: bool,
    /// Set by whoever owns the lab, for a `restore` recovery.
    pub restorer: Option<RestorerHandle>,
    /// `[drill.recovery] verify_command` and its limit.
    pub verify: Option<(firedrill_spec::CommandSpec, Duration)>,
}

/// What a fault module reads of its step besides the node: a network
/// fault's toxic, a corruption's share, a command step's commands.
fn step_attrs(s: &firedrill_spec::FaultStep) -> serde_json::Value {
    let ms = |d: &Option<firedrill_spec::Spanned<firedrill_spec::Dur>>| {
        d.as_ref().map(|l| l.get_ref().0.as_millis() as u64)
    };
    let cmd = |c: &Option<firedrill_spec::Spanned<firedrill_spec::CommandSpec>>| {
        serde_json::to_value(c.as_ref().map(|c| c.get_ref())).unwrap_or_default()
    };
    serde_json::json!({
        "latency": ms(&s.latency).unwrap_or(0),
        "jitter": ms(&s.jitter).unwrap_or(0),
        "rate": s.rate_kbps.as_ref().map(|r| *r.get_ref()).unwrap_or(0),
        "fraction": s.fraction.as_ref().map(|f| *f.get_ref()).unwrap_or(0.5),
        "seqs": s.seqs.as_ref().map(|q| q.get_ref().clone()),
        "sql_file": s.sql_file.as_ref().map(|f| f.get_ref().clone()),
        "command": cmd(&s.command),
        "heal_command": cmd(&s.heal_command),
        "in_effect_command": cmd(&s.in_effect_command),
        "timeout_ms": ms(&s.timeout),
    })
}

/// The recovery's `verify_command` and its limit.
fn verify_of(r: &firedrill_spec::RecoverySpec) -> Option<(firedrill_spec::CommandSpec, Duration)> {
    let timeout = r.verify_timeout.as_ref().map(|t| t.get_ref().0);
    r.verify_command.as_ref().map(|c| {
        let t = timeout.unwrap_or(firedrill_spec::DEFAULT_COMMAND_TIMEOUT);
        (c.get_ref().clone(), t)
    })
}

impl Plan {
    /// Builds the runtime plan from a spec that has passed validation.
    pub fn build(
        d: &DrillSpec,
        target: String,
        password: Option<String>,
        run_dir: PathBuf,
        cleanup_rows: bool,
        store: std::sync::Arc<dyn firedrill_targets::TargetOpener>,
    ) -> Plan {
        let w = &d.workload;
        let mode = match w.mode {
            WorkloadMode::Closed => Mode::Closed {
                clients: w.clients.as_ref().map(|c| *c.get_ref()).unwrap_or(4),
            },
            WorkloadMode::Rate => Mode::Rate {
                rate: w.rate.as_ref().map(|r| *r.get_ref()).unwrap_or(100.0),
                max_in_flight: w.max_in_flight.as_ref().map(|m| *m.get_ref()).unwrap_or(64),
            },
        };
        let mut steps: Vec<StepPlan> = d
            .faults
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let node = s.node_name();
                let target = match &s.zone {
                    Some(z) => NodeRef::Zone(z.get_ref().clone()),
                    None => NodeRole::parse(node)
                        .map(NodeRef::Role)
                        .unwrap_or_else(|| NodeRef::Name(node.to_string())),
                };
                StepPlan {
                    index: i,
                    at: s.at.get_ref().0,
                    action: *s.action.get_ref(),
                    node: target,
                    for_: s.for_.as_ref().map(|f| f.get_ref().0),
                    disaster: s.disaster.as_ref().is_some_and(|d| *d.get_ref()),
                    link: s.link.as_ref().map(|l| *l.get_ref()).unwrap_or_default(),
                    attrs: step_attrs(s),
                    process: s.kill_process.as_ref().map(|p| p.get_ref().clone()),
                    partition: s.partition.as_ref().map(|p| *p.get_ref()),
                    detect_after: s.detect_after.as_ref().map(|d| d.get_ref().0),
                }
            })
            .collect();
        steps.sort_by_key(|s| (s.at, s.index));
        if !steps.iter().any(|s| s.disaster) {
            if let Some(last) = steps.iter_mut().rev().find(|s| !s.action.never_disaster()) {
                last.disaster = true;
            }
        }
        let r = &d.recovery;
        let recovery = if let Some(p) = &r.promote {
            if p.get_ref() == "most_advanced" {
                RecoveryPlan::MostAdvanced
            } else {
                RecoveryPlan::Promote(p.get_ref().clone())
            }
        } else if let Some(f) = &r.failover {
            RecoveryPlan::Failover(f.get_ref().clone())
        } else if let Some(c) = &r.command {
            RecoveryPlan::Command(c.get_ref().clone())
        } else if r.automatic.as_ref().is_some_and(|a| *a.get_ref()) {
            RecoveryPlan::Automatic
        } else if r.restart.as_ref().is_some_and(|a| *a.get_ref()) {
            RecoveryPlan::Restart
        } else if let Some(rs) = &r.restore {
            RecoveryPlan::Restore(RestorePlan {
                target: firedrill_spec::RestoreTarget::parse(rs.target.get_ref())
                    .unwrap_or(firedrill_spec::RestoreTarget::Latest),
                target_text: rs.target.get_ref().clone(),
                flush_archive: rs.flush_archive.as_ref().is_none_or(|f| *f.get_ref()),
                into: rs
                    .into
                    .as_ref()
                    .and_then(|i| firedrill_spec::RestoreInto::parse(i.get_ref()).ok())
                    .unwrap_or_default(),
            })
        } else {
            RecoveryPlan::None
        };
        let s = &d.slo;
        let us = |d: Duration| d.as_micros() as u64;
        Plan {
            drill: d.name.get_ref().clone(),
            description: d.description.clone(),
            target,
            password,
            store,
            workload: WorkloadPlan {
                mode,
                op_timeout: w.op_timeout.get_ref().0,
                warmup: w.warmup.0,
                duration: w.duration.get_ref().0,
                payload_bytes: *w.payload_bytes.get_ref() as usize,
            },
            steps,
            recovery,
            recovery_delay: r.delay.0,
            slo: Slo {
                bucket_us: us(s.bucket.get_ref().0),
                success_ratio: *s.success_ratio.get_ref(),
                p99_us: s.p99.map(|p| us(p.0)),
                stable_for_us: us(s.stable_for.0),
                recovery_timeout_us: us(s.recovery_timeout.get_ref().0),
            },
            objectives: Objectives {
                rpo_us: d.objectives.as_ref().and_then(|o| o.rpo).map(|v| us(v.0)),
                rto_us: d.objectives.as_ref().and_then(|o| o.rto).map(|v| us(v.0)),
            },
            trials: *d.trials.get_ref(),
            run_dir,
            cleanup_rows,
            restorer: None,
            verify: verify_of(r),
        }
    }

    /// Longest a trial can run, for watchdog TTLs and the safety timeout.
    pub fn max_trial_time(&self) -> Duration {
        let w = &self.workload;
        self.first_ack_timeout()
            + w.warmup
            + w.duration
            + Duration::from_micros(self.slo.recovery_timeout_us + self.slo.stable_for_us)
            + self.recovery_delay
            + self
                .steps
                .iter()
                .filter_map(|s| s.detect_after)
                .max()
                .unwrap_or_default()
            + w.op_timeout * 2
            + self.command_time()
            + Duration::from_secs(30)
    }

    /// How long the workload may take to get its first write acknowledged
    /// before the trial is refused: a store that takes no writes has no
    /// steady state to break.
    pub fn first_ack_timeout(&self) -> Duration {
        Duration::from_secs(15).max(self.workload.op_timeout * 3)
    }

    /// The most the user's commands can add to a trial: the verify, and
    /// each command step's inject and heal, each within its timeout.
    fn command_time(&self) -> Duration {
        let verify = self.verify.as_ref().map_or(Duration::ZERO, |v| v.1);
        let steps: Duration = self
            .steps
            .iter()
            .filter(|s| s.action == FaultAction::Command)
            .map(|s| {
                let t = s.attrs["timeout_ms"].as_u64().map(Duration::from_millis);
                2 * t.unwrap_or(firedrill_spec::DEFAULT_COMMAND_TIMEOUT)
            })
            .sum();
        verify + steps
    }
}
