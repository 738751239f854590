//! Data the engine records and the analysis reads. All times are
//! microseconds since drill start on the one observer clock (firedrill's
//! monotonic clock); never a store's clock.

use serde::{Deserialize, Serialize};

/// Microseconds since drill start, observer clock.
pub type Micros = u64;

/// What the client learned about one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Outcome {
    /// The store acknowledged the write.
    Ok = 0,
    /// The store definitely rejected it (or it was never sent).
    Fail = 1,
    /// Timeout, reset or lost connection: it may or may not have happened.
    Unknown = 2,
}

/// One ledger entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Unique, dense from 1 across the trial.
    pub seq: u64,
    pub t_invoke: Micros,
    pub t_done: Micros,
    pub outcome: Outcome,
}

/// When one fault step took effect and when it was healed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// Index of the step in the spec's schedule.
    pub step: usize,
    /// `kill`, `stop`, `pause`, `resume`, `cut_replication`, …
    pub action: String,
    /// The node it hit (a role resolved to a name).
    pub node: String,
    /// This is the disaster step: its start is t_fault.
    pub disaster: bool,
    /// Injection started.
    pub t_start: Micros,
    /// Injection call returned: the fault is in effect. None if it failed.
    pub t_done: Option<Micros>,
    pub heal_start: Option<Micros>,
    pub heal_done: Option<Micros>,
    /// Why injection or heal failed, if it did.
    pub error: Option<String>,
}

/// One replication-lag sample, taken about every 100 ms before the fault.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LagSample {
    pub t: Micros,
    /// Index into `Timeline::nodes`.
    pub node: u16,
    /// Data-loss window if this node were promoted now.
    pub lag_us: Micros,
}

/// Everything about a trial besides the ledger and the audit set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Node names, for `LagSample::node`.
    pub nodes: Vec<String>,
    /// End of warmup: the schedule's `at` offsets count from here.
    pub measure_start: Micros,
    /// When the workload stopped issuing operations.
    pub workload_end: Micros,
    pub faults: Vec<FaultRecord>,
    /// The store or firedrill noticed the failure (promote issued, leader
    /// change seen, …).
    pub detected: Option<Micros>,
    /// Recovery action (promote / command) start and end.
    pub recovery_start: Option<Micros>,
    pub recovery_done: Option<Micros>,
    /// The node the recovery made authoritative, if known.
    pub promoted: Option<String>,
    pub lag_samples: Vec<LagSample>,
    /// A data disaster's bad transaction, when the disaster was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damage: Option<crate::Damage>,
    /// `t_fault + detect_after`: when someone noticed the damage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovered: Option<Micros>,
    /// What a restore recovery did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<crate::RestoreMarks>,
    /// Backups the schedule's `backup` steps took, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backups: Vec<crate::BackupMark>,
    /// Every user command the trial ran (command faults, the recovery's
    /// command and verify_command), in the order they ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<crate::CommandRun>,
    /// The lag the store reports about itself, sampled like `lag_samples`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reported_lag: Vec<LagSample>,
    /// Where `reported_lag` comes from ("MM2's heartbeats ...").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_by: Option<String>,
    /// What a stream's consumer group delivered, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<crate::ConsumerLog>,
    /// The seqs each home (region) wrote, when clients have homes.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub homes: std::collections::BTreeMap<String, Vec<u64>>,
}

/// SLO parameters for the RTO, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    pub bucket_us: Micros,
    pub success_ratio: f64,
    pub p99_us: Option<Micros>,
    pub stable_for_us: Micros,
    pub recovery_timeout_us: Micros,
}

impl Default for Slo {
    fn default() -> Self {
        Slo {
            bucket_us: 100_000,
            success_ratio: 0.99,
            p99_us: None,
            stable_for_us: 5_000_000,
            recovery_timeout_us: 60_000_000,
        }
    }
}

/// Objectives to check a trial against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Objectives {
    pub rpo_us: Option<Micros>,
    pub rto_us: Option<Micros>,
}

/// The ids found in the recovered authoritative store. Kept sorted, with
/// repeats, so duplicates stay visible.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSet {
    ids: Vec<u64>,
    /// How many more ids were present but garbled (their payload is not
    /// what the workload wrote): not in `ids`, so they count as lost.
    #[serde(default)]
    garbled: usize,
}

impl AuditSet {
    pub fn new(mut ids: Vec<u64>) -> Self {
        ids.sort_unstable();
        AuditSet { ids, garbled: 0 }
    }
    /// The intact ids, and the number of ids present but garbled.
    pub fn with_garbled(ids: Vec<u64>, garbled: usize) -> Self {
        AuditSet {
            garbled,
            ..AuditSet::new(ids)
        }
    }
    /// Ids present but garbled (left out of [`Self::ids`]).
    pub fn garbled(&self) -> usize {
        self.garbled
    }
    /// Sorted ids, repeats included.
    pub fn ids(&self) -> &[u64] {
        &self.ids
    }
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

// ------------------------------------------------------------ results

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RpoFigures {
    /// max(0, t_fault_done − min(t_done of lost)), seconds; 0 when nothing
    /// acknowledged was lost.
    pub achieved_s: f64,
    /// Replication lag of the node to be promoted just before the fault.
    pub predicted_s: Option<f64>,
    /// The lag the store reported about itself just before the fault
    /// (MM2's heartbeats), beside firedrill's own prediction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_s: Option<f64>,
    /// Where `reported_s` comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_by: Option<String>,
    /// Acknowledged writes missing from the recovered store.
    pub lost: u64,
    /// Lost writes that the store received and acknowledged after the
    /// fault was in effect (invoked at or after t_fault_done).
    pub zombie_lost: u64,
    pub unknown_survived: u64,
    pub unknown_lost: u64,
    /// Writes the store rejected that are present anyway (should be 0).
    pub fail_survived: u64,
    /// Ids present more than once.
    pub duplicates: u64,
    /// Ids present that were never written (corruption).
    pub phantoms: u64,
    /// First and last lost acknowledgement, seconds relative to t_fault.
    pub loss_span_s: Option<[f64; 2]>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Phases {
    /// First failed/unknown op, relative to t_fault (negative if the outage
    /// began before the disaster).
    pub impact_s: Option<f64>,
    pub detected_s: Option<f64>,
    /// First acknowledged write invoked after the fault took effect.
    pub first_write_s: Option<f64>,
    pub recovered_s: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RtoFigures {
    /// t_recovered − t_incident; None when the service never recovered
    /// within recovery_timeout.
    pub achieved_s: Option<f64>,
    /// Start of the incident, relative to t_fault (≤ 0).
    pub incident_s: Option<f64>,
    pub phases: Phases,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCounts {
    pub ok: u64,
    pub fail: u64,
    pub unknown: u64,
}

/// One SLO bucket, for timelines in reports.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Bucket start, seconds relative to t_fault (or to measure_start when
    /// there is no fault).
    pub start_s: f64,
    pub ok: u32,
    pub fail: u32,
    pub unknown: u32,
    pub healthy: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Observer time of the disaster's start and effect (µs since start).
    pub t_fault_us: Option<Micros>,
    pub t_fault_done_us: Option<Micros>,
    pub rpo: RpoFigures,
    pub rto: RtoFigures,
    pub ops: OpCounts,
    /// Buckets from the first fault step to the end of the workload.
    pub buckets: Vec<Bucket>,
    /// A data disaster's figures (lost_before, rolled_back, damaged_left,
    /// the recovery point), when the disaster was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<crate::RestoreFigures>,
    /// Why the recovery's verify_command failed, when it did: the trial
    /// fails whatever its figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_failed: Option<String>,
    /// A stream consumer group's figures, when the target ran one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<crate::ConsumerFigures>,
    /// The figures of each home's own writes, when clients have homes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_home: Vec<HomeFigures>,
    /// Acknowledged writes' latency in steady state, before the disaster:
    /// what a topology costs every write (a stretch cluster's cross-zone
    /// round trip), beside what it saves in a disaster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_before: Option<WriteLatency>,
    /// A capability trial: the figures of the business operation over its
    /// domains (orphans, the dominating domain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<crate::capability::CapabilityFigures>,
}

/// Latency of acknowledged writes over a window, milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct WriteLatency {
    pub n: u64,
    /// The fastest acknowledged write: the floor a topology puts under
    /// every write (a cross-zone round trip), which queueing on a loaded
    /// machine can raise but never lower, unlike the median.
    #[serde(default)]
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl WriteLatency {
    /// Of the acknowledged ops invoked in `[from, to)`; None when none were.
    pub fn of(ops: &[Op], from: Micros, to: Micros) -> Option<WriteLatency> {
        let mut l: Vec<Micros> = ops
            .iter()
            .filter(|o| o.outcome == Outcome::Ok && o.t_invoke >= from && o.t_invoke < to)
            .map(|o| o.t_done.saturating_sub(o.t_invoke))
            .collect();
        if l.is_empty() {
            return None;
        }
        l.sort_unstable();
        // Nearest rank: the smallest value with at least q of them at or below it.
        let rank = |q: f64| l[((q * l.len() as f64).ceil() as usize).clamp(1, l.len()) - 1];
        Some(WriteLatency {
            n: l.len() as u64,
            min_ms: l[0] as f64 / 1e3,
            p50_ms: rank(0.50) as f64 / 1e3,
            p99_ms: rank(0.99) as f64 / 1e3,
        })
    }
}

/// What one home's (region's) writes lost, and how long its producers
/// were down: in active-active, B's producers apart from A's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HomeFigures {
    pub home: String,
    pub ok: u64,
    pub lost: u64,
    pub rpo_s: f64,
    pub rto_s: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    Inconclusive,
}

/// The check of one trial against the objectives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectiveCheck {
    /// None when no rpo objective was given.
    pub rpo_met: Option<bool>,
    pub rto_met: Option<bool>,
    /// Human reasons for each violation.
    pub reasons: Vec<String>,
}
