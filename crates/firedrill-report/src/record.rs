//! `run.json`: the schema-versioned record of one drill run, and the
//! [`RunCollector`] that builds it from the event stream.
//!
//! The record keeps every figure the summary, HTML and JUnit outputs need,
//! so `firedrill report RUN_DIR` works from this file alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use firedrill_ledger::events::DrillEvent;
use firedrill_ledger::{
    aggregate, Analysis, Bucket, Micros, ObjectiveCheck, OpCounts, Percentiles, RpoFigures,
    RtoFigures, Verdict,
};
use serde::{Deserialize, Serialize};

use crate::commands::CommandEntry;
use crate::series::{load_trial_series, TrialSeries};
use crate::{ReportError, Reporter};

/// Bumped on any change to [`RunRecord`]; readers refuse versions they do
/// not know rather than misreport old runs. 2 added a trial's `restore`
/// (data disasters); version 1 runs still load (they have none).
pub const SCHEMA_VERSION: u32 = 2;

/// The oldest schema this build still reads.
pub const OLDEST_SCHEMA_VERSION: u32 = 1;

/// File name inside the run directory.
pub const RUN_FILE: &str = "run.json";

/// The declared objectives, in seconds (None: not declared, not checked).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectivesRecord {
    pub rpo_s: Option<f64>,
    pub rto_s: Option<f64>,
}

/// Run-level facts the event stream does not carry; the caller knows them
/// from the validated spec and the build.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunMeta {
    pub drill: String,
    pub description: Option<String>,
    pub objectives: ObjectivesRecord,
    pub firedrill_version: String,
    /// Often only known after connecting; see [`RunCollector::set_server_version`].
    pub server_version: Option<String>,
    /// The drill spec as JSON, kept so a run documents exactly what it tested.
    pub spec: serde_json::Value,
}

/// The contents of `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub schema_version: u32,
    pub drill: String,
    pub description: Option<String>,
    pub verdict: Verdict,
    /// RFC 3339 UTC wall clock of drill start, for display only.
    pub started_at: String,
    pub target: String,
    pub firedrill_version: String,
    pub server_version: Option<String>,
    pub objectives: ObjectivesRecord,
    pub spec: serde_json::Value,
    /// Warnings not tied to one trial (per-trial ones live in the trial).
    #[serde(default)]
    pub warnings: Vec<String>,
    pub trials: Vec<TrialRecord>,
    pub summary: Summary,
    /// Set when this record was completed by `firedrill report --reaudit`
    /// after the firedrill process died mid-drill (added within schema 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaudit: Option<ReauditRecord>,
}

/// How a dead run's record was completed: from the journal's partial
/// ledger and a fresh read of the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReauditRecord {
    /// RFC 3339 UTC: when the re-audit ran.
    pub at: String,
    /// RFC 3339 UTC: the journal's last liveness mark, the latest moment
    /// the process is known to have been alive.
    pub died_at: String,
    /// Ops in the journal (their outcome was recorded).
    pub journaled_ops: u64,
    /// Ops issued but never recorded (in flight at the kill, or completed
    /// after the last flush): counted as unknown.
    pub unrecorded_ops: u64,
    /// The node read back.
    pub audited: String,
    /// Why the record is a re-audit, in words.
    pub reason: String,
}

/// One trial. Times are seconds relative to the disaster (`t_fault`) when
/// the trial had one, else relative to drill start, like the analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    pub trial: u32,
    pub verdict: Verdict,
    pub rpo: RpoFigures,
    pub rto: RtoFigures,
    pub ops: OpCounts,
    pub check: ObjectiveCheck,
    pub faults: Vec<FaultEntry>,
    pub recovery: Option<RecoveryEntry>,
    pub detected: Option<DetectedEntry>,
    pub warnings: Vec<String>,
    pub buckets: Vec<Bucket>,
    /// Timeline detail from the saved ledger (latency, lost writes by
    /// time). Added within schema 1: absent in older runs and in runs whose
    /// ledger was not saved, and renderers do without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<TrialSeries>,
    /// A data disaster's figures: lost_before, rolled_back and its span,
    /// damaged_left, the recovery point beside the target, the restore's
    /// phases. Schema 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<firedrill_ledger::RestoreFigures>,
    /// The recovery's command and verify_command runs (a command fault's
    /// runs are on its fault entry).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<CommandEntry>,
    /// A stream's consumer group: consumer_rto, redelivered, skipped.
    /// Added within schema 2: absent in older runs and for other stores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<firedrill_ledger::ConsumerFigures>,
    /// Each home's (region's) own writes: lost, RPO, RTO. Within schema 2.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_home: Vec<firedrill_ledger::HomeFigures>,
    /// Acknowledged writes' latency before the disaster. Within schema 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_before: Option<firedrill_ledger::WriteLatency>,
    /// A capability trial: the business operation's own figures (the
    /// trial's rpo, rto and ops are the end-to-end ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<firedrill_ledger::capability::CapabilityFigures>,
    /// A capability trial: each domain's own figures, in write order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<crate::capability::DomainRecord>,
}

/// One fault step, its injection and heal folded together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultEntry {
    /// Index of the step in the spec's schedule (0-based).
    pub step: usize,
    pub action: String,
    pub node: String,
    /// The step whose injection start is t_fault.
    pub disaster: bool,
    pub injected_s: f64,
    /// None when the injection failed.
    pub in_effect_s: Option<f64>,
    /// None when never healed (a kill has nothing to heal).
    pub healed_s: Option<f64>,
    pub error: Option<String>,
    pub heal_error: Option<String>,
    /// What the fault did, in the store's terms (the bad transaction's xid
    /// and LSN, the WAL segment taken out of the archive). Added within
    /// schema 2: absent when the fault says nothing more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// A command step's runs: inject, probes, heal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<CommandEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryEntry {
    pub action: String,
    pub node: Option<String>,
    pub start_s: f64,
    pub done_s: f64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectedEntry {
    pub how: String,
    pub t_s: f64,
}

/// Phase percentiles across trials (None: no trial had that phase).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhasePercentiles {
    pub impact_s: Option<Percentiles>,
    pub detected_s: Option<Percentiles>,
    pub first_write_s: Option<Percentiles>,
    pub recovered_s: Option<Percentiles>,
}

/// Cross-trial figures: an objective must hold in every trial, and p95/max
/// show how close the worst trial came.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub trials: u32,
    pub passed: u32,
    pub failed: u32,
    pub inconclusive: u32,
    pub rpo_achieved_s: Option<Percentiles>,
    pub rpo_predicted_s: Option<Percentiles>,
    pub lost: Option<Percentiles>,
    pub zombie_lost: Option<Percentiles>,
    /// Over the trials that recovered only; the others are `not_recovered`.
    pub rto_s: Option<Percentiles>,
    pub not_recovered: u32,
    pub phases: PhasePercentiles,
}

impl Summary {
    pub fn from_trials(trials: &[TrialRecord]) -> Summary {
        let pick = |f: &dyn Fn(&TrialRecord) -> Option<f64>| -> Option<Percentiles> {
            aggregate(&trials.iter().filter_map(f).collect::<Vec<_>>())
        };
        let count = |v: Verdict| trials.iter().filter(|t| t.verdict == v).count() as u32;
        Summary {
            trials: trials.len() as u32,
            passed: count(Verdict::Pass),
            failed: count(Verdict::Fail),
            inconclusive: count(Verdict::Inconclusive),
            rpo_achieved_s: pick(&|t| Some(t.rpo.achieved_s)),
            rpo_predicted_s: pick(&|t| t.rpo.predicted_s),
            lost: pick(&|t| Some(t.rpo.lost as f64)),
            zombie_lost: pick(&|t| Some(t.rpo.zombie_lost as f64)),
            rto_s: pick(&|t| t.rto.achieved_s),
            not_recovered: trials.iter().filter(|t| t.rto.achieved_s.is_none()).count() as u32,
            phases: PhasePercentiles {
                impact_s: pick(&|t| t.rto.phases.impact_s),
                detected_s: pick(&|t| t.rto.phases.detected_s),
                first_write_s: pick(&|t| t.rto.phases.first_write_s),
                recovered_s: pick(&|t| t.rto.phases.recovered_s),
            },
        }
    }
}

impl RunRecord {
    /// An empty record for a run that has not started yet.
    pub fn new(meta: RunMeta) -> RunRecord {
        RunRecord {
            schema_version: SCHEMA_VERSION,
            drill: meta.drill,
            description: meta.description,
            verdict: Verdict::Inconclusive,
            started_at: String::new(),
            target: String::new(),
            firedrill_version: meta.firedrill_version,
            server_version: meta.server_version,
            objectives: meta.objectives,
            spec: meta.spec,
            warnings: Vec::new(),
            trials: Vec::new(),
            summary: Summary::default(),
            reaudit: None,
        }
    }

    /// Reads `<run_dir>/run.json`, refusing schema versions it does not know.
    pub fn load(run_dir: &Path) -> Result<RunRecord, ReportError> {
        let path = run_dir.join(RUN_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ReportError::Io {
            op: "read",
            path: path.clone(),
            source,
        })?;
        let json_err = |source| ReportError::Json {
            path: path.clone(),
            source,
        };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(json_err)?;
        // Check the version before the shape, so an old or newer file gets a
        // clear message instead of "missing field".
        let found = value.get("schema_version").and_then(|v| v.as_u64());
        if !found.is_some_and(|v| {
            (u64::from(OLDEST_SCHEMA_VERSION)..=u64::from(SCHEMA_VERSION)).contains(&v)
        }) {
            return Err(ReportError::SchemaVersion {
                path,
                found: found.unwrap_or(0),
                expected: SCHEMA_VERSION,
            });
        }
        serde_json::from_value(value).map_err(json_err)
    }

    /// Writes `<run_dir>/run.json` (pretty JSON) through a temporary file and
    /// a rename, so a reader never sees half a record.
    pub fn save(&self, run_dir: &Path) -> Result<PathBuf, ReportError> {
        let mut text = serde_json::to_string_pretty(self).map_err(ReportError::Encode)?;
        text.push('\n');
        crate::write_atomic(&run_dir.join(RUN_FILE), &text)
    }
}

/// A fault step's raw observer times until its trial finishes and the
/// disaster time, the origin for display, is known.
#[derive(Debug)]
struct RawFault {
    step: usize,
    action: String,
    node: String,
    t_start: Micros,
    t_done: Option<Micros>,
    error: Option<String>,
    heal_done: Option<Micros>,
    heal_error: Option<String>,
    detail: Option<String>,
}

#[derive(Debug)]
struct RawRecovery {
    action: String,
    node: Option<String>,
    t_start: Micros,
    t_done: Micros,
    error: Option<String>,
}

#[derive(Debug, Default)]
struct PendingTrial {
    faults: Vec<RawFault>,
    /// Every recovery, in order: a capability trial has one per domain.
    recovery: Vec<RawRecovery>,
    domains: Vec<crate::capability::DomainRecord>,
    detected: Option<(String, Micros)>,
    warnings: Vec<String>,
    commands: Vec<firedrill_ledger::CommandRun>,
}

/// Builds the [`RunRecord`] from events and writes `run.json` when the drill
/// finishes (or, as an inconclusive run, when it is aborted before that).
pub struct RunCollector {
    run_dir: PathBuf,
    record: RunRecord,
    pending: BTreeMap<u32, PendingTrial>,
    started: bool,
    /// `DrillFinished` arrived: the verdict is the engine's, not ours.
    finished: bool,
    written: bool,
}

impl RunCollector {
    pub fn new(run_dir: impl Into<PathBuf>, meta: RunMeta) -> Self {
        RunCollector {
            run_dir: run_dir.into(),
            record: RunRecord::new(meta),
            pending: BTreeMap::new(),
            started: false,
            finished: false,
            written: false,
        }
    }

    pub fn set_server_version(&mut self, v: impl Into<String>) {
        self.record.server_version = Some(v.into());
    }

    /// The record as built so far (complete after `DrillFinished`).
    pub fn record(&self) -> &RunRecord {
        &self.record
    }

    pub fn into_record(self) -> RunRecord {
        self.record
    }

    fn write(&mut self) -> Result<(), ReportError> {
        self.record.trials.sort_by_key(|t| t.trial);
        self.record.summary = Summary::from_trials(&self.record.trials);
        self.record.save(&self.run_dir)?;
        self.written = true;
        Ok(())
    }

    fn finish_trial(
        &mut self,
        trial: u32,
        analysis: &Analysis,
        check: &ObjectiveCheck,
        verdict: Verdict,
    ) {
        let p = self.pending.remove(&trial).unwrap_or_default();
        let origin = analysis.t_fault_us.unwrap_or(0);
        let rel = |t: Micros| (i128::from(t) - i128::from(origin)) as f64 / 1e6;
        let mut warnings = p.warnings;
        let commands = p.commands;
        // A step's runs go on its entry: the one for the node they were
        // told about (a zone's step has one entry per node).
        let runs_of = |step: usize, node: &str| -> Vec<CommandEntry> {
            commands
                .iter()
                .filter(|c| c.step == Some(step))
                .filter(|c| c.node.as_deref().unwrap_or("") == node)
                .map(|c| CommandEntry::of(c, rel))
                .collect()
        };
        let faults = p
            .faults
            .into_iter()
            .map(|f| FaultEntry {
                commands: runs_of(f.step, &f.node),
                disaster: analysis.t_fault_us == Some(f.t_start),
                injected_s: rel(f.t_start),
                in_effect_s: f.t_done.map(rel),
                healed_s: f.heal_done.map(rel),
                step: f.step,
                action: f.action,
                node: f.node,
                error: f.error,
                heal_error: f.heal_error,
                detail: f.detail,
            })
            .collect();
        let mut recoveries = p.recovery.into_iter().map(|r| RecoveryEntry {
            action: r.action,
            node: r.node,
            start_s: rel(r.t_start),
            done_s: rel(r.t_done),
            error: r.error,
        });
        let recovery = recoveries.next();
        let mut domains = p.domains;
        crate::capability::place_recoveries(
            &mut domains,
            recovery.iter().cloned().chain(recoveries),
        );
        let detected = p
            .detected
            .map(|(how, t)| DetectedEntry { how, t_s: rel(t) });
        let series = match load_trial_series(&self.run_dir, trial, analysis) {
            Ok(s) => s,
            Err(e) => {
                warnings.push(format!("no timeline detail: {e}"));
                None
            }
        };
        if self.record.trials.iter().any(|t| t.trial == trial) {
            warnings.push(format!("trial {trial} finished twice; keeping the last"));
            self.record.trials.retain(|t| t.trial != trial);
        }
        self.record.trials.push(TrialRecord {
            trial,
            verdict,
            rpo: analysis.rpo.clone(),
            rto: analysis.rto.clone(),
            ops: analysis.ops,
            check: check.clone(),
            faults,
            recovery,
            detected,
            warnings,
            buckets: analysis.buckets.clone(),
            series,
            restore: analysis.restore.clone(),
            consumer: analysis.consumer.clone(),
            by_home: analysis.by_home.clone(),
            latency_before: analysis.latency_before,
            capability: analysis.capability.clone(),
            domains,
            commands: commands
                .iter()
                .filter(|c| c.step.is_none())
                .map(|c| CommandEntry::of(c, rel))
                .collect(),
        });
    }
}

impl RunCollector {
    /// A heal folds into the latest unhealed injection of its step: a step
    /// can be injected again in a later trial, never twice in one.
    fn healed(&mut self, ev: &DrillEvent) {
        let DrillEvent::FaultHealed {
            trial,
            step,
            action,
            node,
            t_done,
            error,
            ..
        } = ev
        else {
            return;
        };
        let p = self.pending.entry(*trial).or_default();
        match p
            .faults
            .iter_mut()
            .rev()
            .find(|f| f.step == *step && f.heal_done.is_none())
        {
            Some(f) => {
                f.heal_done = Some(*t_done);
                f.heal_error = error.clone();
            }
            None => p.warnings.push(format!(
                "step {step} ({action} {node}) was healed but never injected"
            )),
        }
    }
}

impl Reporter for RunCollector {
    fn event(&mut self, ev: &DrillEvent) -> Result<(), ReportError> {
        match ev {
            DrillEvent::DrillStarted {
                drill,
                wall_clock,
                target,
                ..
            } => {
                self.started = true;
                if self.record.drill.is_empty() {
                    self.record.drill = drill.clone();
                }
                self.record.started_at = wall_clock.clone();
                self.record.target = target.clone();
            }
            DrillEvent::TrialStarted { trial } => {
                self.pending.insert(*trial, PendingTrial::default());
            }
            DrillEvent::FaultInjected {
                trial,
                step,
                action,
                node,
                t_start,
                t_done,
                error,
                detail,
            } => self
                .pending
                .entry(*trial)
                .or_default()
                .faults
                .push(RawFault {
                    step: *step,
                    action: action.clone(),
                    node: node.clone(),
                    t_start: *t_start,
                    t_done: *t_done,
                    error: error.clone(),
                    heal_done: None,
                    heal_error: None,
                    detail: detail.clone(),
                }),
            DrillEvent::FaultHealed { .. } => self.healed(ev),
            DrillEvent::Recovery {
                trial,
                action,
                node,
                t_start,
                t_done,
                error,
            } => {
                self.pending
                    .entry(*trial)
                    .or_default()
                    .recovery
                    .push(RawRecovery {
                        action: action.clone(),
                        node: node.clone(),
                        t_start: *t_start,
                        t_done: *t_done,
                        error: error.clone(),
                    });
            }
            DrillEvent::Detected { trial, t_us, how } => {
                // The first notice is the one that counts for the detected phase.
                self.pending
                    .entry(*trial)
                    .or_default()
                    .detected
                    .get_or_insert_with(|| (how.clone(), *t_us));
            }
            DrillEvent::Warning { trial, message } => match trial {
                Some(t) => self
                    .pending
                    .entry(*t)
                    .or_default()
                    .warnings
                    .push(message.clone()),
                None => self.record.warnings.push(message.clone()),
            },
            DrillEvent::TrialFinished {
                trial,
                analysis,
                check,
                verdict,
            } => self.finish_trial(*trial, analysis, check, *verdict),
            DrillEvent::DomainFinished {
                trial,
                domain,
                analysis,
                check,
                verdict,
                judged,
            } => self.pending.entry(*trial).or_default().domains.push(
                crate::capability::DomainRecord::of(domain, analysis, check, *verdict, *judged),
            ),
            DrillEvent::DrillFinished { verdict } => {
                self.finished = true;
                self.record.verdict = *verdict;
                self.write()?;
            }
            DrillEvent::Command { trial, run } => {
                self.pending
                    .entry(*trial)
                    .or_default()
                    .commands
                    .push(run.clone());
            }
            DrillEvent::Phase { .. }
            | DrillEvent::Progress { .. }
            | DrillEvent::LagSample { .. }
            | DrillEvent::Audit { .. } => {}
        }
        Ok(())
    }

    /// A drill that ends without `DrillFinished` was aborted: still leave a
    /// readable `run.json`, marked inconclusive (exit code 3). A write that
    /// failed on `DrillFinished` is retried once here, verdict unchanged.
    fn finish(&mut self) -> Result<(), ReportError> {
        if !self.started || self.written {
            return Ok(());
        }
        if !self.finished {
            self.finished = true;
            self.record.verdict = Verdict::Inconclusive;
            self.record
                .warnings
                .push("the drill ended before it finished; the run is incomplete".into());
        }
        self.write()
    }
}
