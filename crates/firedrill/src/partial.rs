//! Runs whose firedrill process died: `run-start.json` and `spec.toml`
//! written when the drill starts, the trials' crash-safe journals, and
//! `firedrill report` on such a run (inconclusive with the figures known
//! so far), or `--reaudit` (read the store again and complete them).

use crate::drill::{password, prepare, resolve};
use crate::lab::load_spec;
use crate::Failure;
use firedrill_engine::{TrialFiles, JOURNAL_FILE};
use firedrill_ledger::events::DrillEvent;
use firedrill_ledger::journal::{self, Partial};
use firedrill_ledger::{analyze, check, codec, AuditSet, Op, Outcome, Timeline, Verdict};
use firedrill_report::{
    exit_code, render_summary, ObjectivesRecord, ReauditRecord, Reporter, RunCollector, RunMeta,
    RunRecord,
};
use firedrill_spec::{DrillSpec, LoadedSpec};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Written when a drill starts: what a report of a dead run needs.
pub const START_FILE: &str = "run-start.json";
/// The spec text exactly as it ran (specs hold no secrets: only the names
/// of the variables and files they come from).
pub const SPEC_COPY: &str = "spec.toml";
/// How long a re-audit waits for a node that answers.
const REAUDIT_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize, Deserialize)]
pub struct RunStart {
    pub drill: String,
    pub started_at: String,
    pub firedrill_version: String,
    /// The drill's process, with its start time: alive means still running.
    pub pid: i32,
    pub pid_start_time: u64,
    /// The spec file as given, made absolute, and the working directory
    /// relative lab paths resolve against.
    pub spec_file: PathBuf,
    pub cwd: PathBuf,
    pub target: String,
    pub trials: u32,
    /// A capability run: its domains, each journaled in `<run>/<domain>/`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
}

fn io(path: &Path, e: impl std::fmt::Display) -> Failure {
    Failure::aborted(format!("{}: {e}", path.display()))
}

/// Records the run's start: the manifest and a copy of the spec.
pub fn write_start(
    run_dir: &Path,
    spec: &LoadedSpec,
    d: &DrillSpec,
    target: &str,
    domains: &[String],
) -> Result<(), Failure> {
    let cwd = std::env::current_dir().map_err(|e| io(Path::new("."), e))?;
    let me = firedrill_proc::ProcHandle::of_child(std::process::id() as i32, false)
        .map_err(|e| Failure::internal(e.to_string()))?;
    let start = RunStart {
        drill: d.name.get_ref().clone(),
        started_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        firedrill_version: env!("CARGO_PKG_VERSION").into(),
        pid: me.pid,
        pid_start_time: me.start_time,
        spec_file: cwd.join(&spec.path),
        cwd,
        target: target.to_string(),
        trials: *d.trials.get_ref(),
        domains: domains.to_vec(),
    };
    let copy = run_dir.join(SPEC_COPY);
    std::fs::write(&copy, &spec.source).map_err(|e| io(&copy, e))?;
    let text =
        serde_json::to_string_pretty(&start).map_err(|e| Failure::internal(e.to_string()))?;
    firedrill_report::write_atomic(&run_dir.join(START_FILE), &text)
        .map_err(|e| Failure::aborted(e.to_string()))?;
    Ok(())
}

/// One trial as its journal left it.
pub(crate) struct TrialState {
    pub(crate) trial: u32,
    pub(crate) partial: Partial,
    /// The trial reached its audit and saved its files.
    finished: bool,
}

pub(crate) fn load_start(run_dir: &Path) -> Result<RunStart, Failure> {
    let path = run_dir.join(START_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Failure::input(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| Failure::input(format!("{}: {e}", path.display())))
}

fn load(run_dir: &Path) -> Result<(RunStart, Vec<TrialState>), Failure> {
    let start = load_start(run_dir)?;
    let trials = load_trials(run_dir, start.trials)?;
    Ok((start, trials))
}

/// The trials' journals under `run_dir` (a drill's, or one domain's).
pub(crate) fn load_trials(run_dir: &Path, n: u32) -> Result<Vec<TrialState>, Failure> {
    let mut trials = Vec::new();
    for trial in 1..=n.max(1) {
        let dir = TrialFiles::dir(run_dir, trial);
        let Ok(bytes) = std::fs::read(dir.join(JOURNAL_FILE)) else {
            continue;
        };
        let partial = Partial::recover(&bytes)
            .map_err(|e| Failure::input(format!("{}: {e}", dir.join(JOURNAL_FILE).display())))?;
        trials.push(TrialState {
            trial,
            finished: dir.join("audit.bin").exists(),
            partial,
        });
    }
    Ok(trials)
}

fn rfc3339_ms(unix_ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(unix_ms)).to_string()
}

/// The latest moment the journal shows the process alive: (observer µs, unix ms).
fn last_alive(t: &TrialState) -> (u64, u64) {
    let t_us = t.partial.last_mark.as_ref().map(|m| m.t_us).unwrap_or(0);
    let t0 = t.partial.start.as_ref().map(|s| s.t0_unix_ms).unwrap_or(0);
    (t_us, t0 + t_us / 1000)
}

fn counts(ops: &[Op]) -> (u64, u64, u64) {
    let n = |o| ops.iter().filter(|op| op.outcome == o).count() as u64;
    (n(Outcome::Ok), n(Outcome::Fail), n(Outcome::Unknown))
}

/// The reason a dead run is inconclusive, in words.
pub(crate) fn death_reason(start: &RunStart, trials: &[TrialState]) -> String {
    let alive = firedrill_proc::ProcHandle {
        pid: start.pid,
        start_time: start.pid_start_time,
        group_leader: false,
    }
    .is_alive();
    let Some(last) = trials.last() else {
        return "the firedrill process died before any trial started; no ledger".into();
    };
    let (t_us, unix_ms) = last_alive(last);
    let ops = last.partial.ops.len();
    let phase = last
        .partial
        .last_mark
        .as_ref()
        .map(|m| m.phase.as_str())
        .unwrap_or("start");
    let verb = if alive {
        format!("the drill is still running (pid {}); as of", start.pid)
    } else {
        "the firedrill process died at".into()
    };
    format!(
        "{verb} {} (trial {}, {:.1} s into it, phase {phase}); partial ledger of {ops} ops",
        rfc3339_ms(unix_ms),
        last.trial,
        t_us as f64 / 1e6
    )
}

/// Seconds of `t` relative to the trial's disaster, else its measurement start.
fn rel(tl: &Timeline, t: u64) -> f64 {
    let origin = tl
        .faults
        .iter()
        .find(|f| f.disaster)
        .map(|f| f.t_start)
        .unwrap_or(tl.measure_start);
    (t as f64 - origin as f64) / 1e6
}

pub(crate) fn trial_json(t: &TrialState) -> serde_json::Value {
    let p = &t.partial;
    let (ok, fail, unknown) = counts(&p.ops);
    let issued = p.last_mark.as_ref().map(|m| m.issued).unwrap_or(0);
    let max_seq = p.ops.iter().map(|o| o.seq).max().unwrap_or(0);
    let faults: Vec<serde_json::Value> = p
        .timeline
        .faults
        .iter()
        .map(|f| {
            serde_json::json!({
                "step": f.step, "action": f.action, "node": f.node, "disaster": f.disaster,
                "injected_s": rel(&p.timeline, f.t_start),
                "in_effect_s": f.t_done.map(|x| rel(&p.timeline, x)),
                "healed_s": f.heal_done.map(|x| rel(&p.timeline, x)),
                "error": f.error,
            })
        })
        .collect();
    serde_json::json!({
        "trial": t.trial,
        "finished": t.finished,
        "run_id": p.start.as_ref().map(|s| s.run_id.clone()),
        "journal": { "frames": p.frames, "stop": p.stop },
        "ops": { "ok": ok, "fail": fail, "unknown": unknown },
        "journaled_ops": p.ops.len(),
        "issued": issued,
        "unrecorded": issued.saturating_sub(p.ops.len() as u64),
        "max_seq": max_seq,
        "phase": p.last_mark.as_ref().map(|m| m.phase.clone()),
        "last_alive_s": p.last_mark.as_ref().map(|m| rel(&p.timeline, m.t_us)),
        "faults": faults,
    })
}

/// Heals the drill left to its watchdogs: still pending, and carried out.
pub(crate) fn heals(run_dir: &Path) -> (usize, usize) {
    let pending = std::fs::read_dir(run_dir.join("heal"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .unwrap_or(0);
    let done = std::fs::read_to_string(run_dir.join("watchdog.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0);
    (pending, done)
}

/// `firedrill report RUN_DIR` on a run without run.json.
pub fn report(run_dir: &Path, json: bool) -> Result<u8, Failure> {
    let start = load_start(run_dir)?;
    if !start.domains.is_empty() {
        return crate::partial_cap::report(run_dir, &start, json);
    }
    let trials = load_trials(run_dir, start.trials)?;
    let reason = death_reason(&start, &trials);
    let (pending, watchdog) = heals(run_dir);
    if json {
        let v = serde_json::json!({
            "drill": start.drill,
            "verdict": "inconclusive",
            "partial": true,
            "reason": reason,
            "started_at": start.started_at,
            "target": start.target,
            "heals_pending": pending,
            "watchdog_heal_commands": watchdog,
            "trials": trials.iter().map(trial_json).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| Failure::internal(e.to_string()))?
        );
        return Ok(3);
    }
    println!("drill {} (PARTIAL: no run.json)", start.drill);
    println!("  target: {}", start.target);
    println!("  {reason}");
    for t in &trials {
        print_trial(t, "");
    }
    println!(
        "\nheals left to the watchdogs: {pending} still pending, {watchdog} command heal(s) run by them"
    );
    println!(
        "verdict: INCONCLUSIVE (re-read the store with `firedrill report {} --reaudit`)",
        run_dir.display()
    );
    Ok(3)
}

/// One trial's journaled figures and faults, as text.
pub(crate) fn print_trial(t: &TrialState, indent: &str) {
    let p = &t.partial;
    let (ok, fail, unknown) = counts(&p.ops);
    let issued = p.last_mark.as_ref().map(|m| m.issued).unwrap_or(0);
    println!(
        "\n{indent}trial {}{}: ops journaled {} (ok {ok}, fail {fail}, unknown {unknown}); {} issued, {} never recorded",
        t.trial,
        if t.finished { " (audited before the end)" } else { "" },
        p.ops.len(),
        issued,
        issued.saturating_sub(p.ops.len() as u64)
    );
    for f in &p.timeline.faults {
        let healed = match f.heal_done {
            Some(h) => format!("healed at {:+.2} s", rel(&p.timeline, h)),
            None => "not healed by the drill".into(),
        };
        let effect = if f.t_done.is_some() {
            "in effect, "
        } else {
            ""
        };
        println!(
            "{indent}  fault step {} {} {}: injected at {:+.2} s, {effect}{healed}",
            f.step,
            f.action,
            f.node,
            rel(&p.timeline, f.t_start),
        );
    }
    if let Some(s) = p
        .stop
        .filter(|s| *s != firedrill_ledger::journal::Stop::Clean)
    {
        println!(
            "{indent}  journal: {} complete frames, then {s:?} (dropped)",
            p.frames
        );
    }
}

/// The died trial's ledger, completed with the store's ids.
fn complete_ledger(t: &TrialState, read: &firedrill_targets::AuditRead) -> (Vec<Op>, u64) {
    let (t_dead, _) = last_alive(t);
    let issued = t.partial.last_mark.as_ref().map(|m| m.issued).unwrap_or(0);
    let found: Vec<u64> = read.ids.iter().chain(&read.garbled).copied().collect();
    journal::complete(&t.partial.ops, issued, &found, t_dead)
}

fn save_trial(
    run_dir: &Path,
    trial: u32,
    ops: &[Op],
    ids: &[u64],
    tl: &Timeline,
) -> std::io::Result<()> {
    let d = TrialFiles::dir(run_dir, trial);
    std::fs::write(d.join("ledger.bin"), codec::encode(ops))?;
    std::fs::write(d.join("audit.bin"), codec::encode_ids(ids))?;
    std::fs::write(
        d.join("timeline.json"),
        serde_json::to_vec_pretty(tl).map_err(std::io::Error::other)?,
    )
}

/// A trial that finished its audit before the process died, re-analysed
/// from the files it saved.
fn saved_trial(
    run_dir: &Path,
    trial: u32,
    plan: &firedrill_engine::Plan,
) -> Result<
    (
        firedrill_ledger::Analysis,
        firedrill_ledger::ObjectiveCheck,
        Verdict,
    ),
    Failure,
> {
    let d = TrialFiles::dir(run_dir, trial);
    let read = |f: &str| std::fs::read(d.join(f)).map_err(|e| io(&d.join(f), e));
    let bad = |e: firedrill_ledger::LedgerError| Failure::input(format!("{}: {e}", d.display()));
    let ops = codec::decode(&read("ledger.bin")?).map_err(bad)?;
    let ids = codec::decode_ids(&read("audit.bin")?).map_err(bad)?;
    let tl: Timeline = serde_json::from_slice(&read("timeline.json")?)
        .map_err(|e| Failure::input(format!("{}: {e}", d.display())))?;
    let analysis = analyze(&ops, &tl, &AuditSet::new(ids), &plan.slo);
    let (chk, verdict) = check(&analysis, &plan.objectives);
    Ok((analysis, chk, verdict))
}

/// The events a trial would have sent, rebuilt from its timeline.
fn replay(col: &mut RunCollector, trial: u32, tl: &Timeline) -> Result<(), Failure> {
    let mut evs = vec![DrillEvent::TrialStarted { trial }];
    for f in &tl.faults {
        evs.push(DrillEvent::FaultInjected {
            trial,
            step: f.step,
            action: f.action.clone(),
            node: f.node.clone(),
            t_start: f.t_start,
            t_done: f.t_done,
            error: f.error.clone(),
            detail: None,
        });
        if let Some(h) = f.heal_done {
            evs.push(DrillEvent::FaultHealed {
                trial,
                step: f.step,
                action: f.action.clone(),
                node: f.node.clone(),
                t_start: f.heal_start.unwrap_or(h),
                t_done: h,
                error: None,
            });
        }
    }
    if let (Some(s), Some(e)) = (tl.recovery_start, tl.recovery_done) {
        evs.push(DrillEvent::Recovery {
            trial,
            action: "recovery".into(),
            node: tl.promoted.clone(),
            t_start: s,
            t_done: e,
            error: None,
        });
    }
    if let Some(t) = tl.detected {
        evs.push(DrillEvent::Detected {
            trial,
            t_us: t,
            how: "as journaled".into(),
        });
    }
    for ev in &evs {
        col.event(ev)
            .map_err(|e| Failure::internal(e.to_string()))?;
    }
    Ok(())
}

fn emit(col: &mut RunCollector, e: DrillEvent) -> Result<(), Failure> {
    col.event(&e).map_err(|e| Failure::internal(e.to_string()))
}

/// What re-auditing one died trial found.
struct TrialOutcome {
    verdict: Verdict,
    unrecorded: u64,
    node: String,
    died_at: String,
}

/// Re-reads one died trial's rows, completes its ledger, and feeds its
/// events to the collector.
async fn reaudit_trial(
    run_dir: &Path,
    plan: &firedrill_engine::Plan,
    nodes: &[firedrill_engine::NodeSpec],
    t: &TrialState,
    col: &mut RunCollector,
) -> Result<TrialOutcome, Failure> {
    let mut tl = t.partial.timeline.clone();
    let run_id = t
        .partial
        .start
        .as_ref()
        .map(|s| s.run_id.clone())
        .unwrap_or_default();
    let (t_dead, unix_ms) = last_alive(t);
    tl.workload_end = tl.workload_end.max(t_dead);
    let got = firedrill_engine::reaudit(plan, nodes, &run_id, &tl, REAUDIT_WAIT)
        .await
        .map_err(|e| {
            Failure::aborted(format!(
                "re-audit of trial {} failed, the run stays inconclusive: {e}",
                t.trial
            ))
        })?;
    let (ops, unrecorded) = complete_ledger(t, &got.read);
    let audit = AuditSet::with_garbled(got.read.ids.clone(), got.read.garbled.len());
    if let Err(e) = save_trial(run_dir, t.trial, &ops, audit.ids(), &tl) {
        eprintln!("warning: could not save trial {}'s files: {e}", t.trial);
    }
    replay(col, t.trial, &tl)?;
    if let Some(n) = got.note {
        emit(
            col,
            DrillEvent::Warning {
                trial: Some(t.trial),
                message: n,
            },
        )?;
    }
    let mut analysis = analyze(&ops, &tl, &audit, &plan.slo);
    let settle_from = tl
        .faults
        .iter()
        .map(|f| f.t_done.unwrap_or(f.t_start))
        .max();
    let (mut chk, mut verdict) = journal::judge(
        &mut analysis,
        &plan.objectives,
        t_dead,
        settle_from,
        plan.slo.stable_for_us,
    );
    if verdict == Verdict::Pass {
        verdict = Verdict::Inconclusive;
        chk.reasons.push(
            "the drill did not run to its end: a re-audit can show a loss, not a pass".into(),
        );
    }
    emit(
        col,
        DrillEvent::TrialFinished {
            trial: t.trial,
            analysis: Box::new(analysis),
            check: chk,
            verdict,
        },
    )?;
    Ok(TrialOutcome {
        verdict,
        unrecorded,
        node: got.node,
        died_at: rfc3339_ms(unix_ms),
    })
}

/// `firedrill report RUN_DIR --reaudit`.
pub async fn reaudit(run_dir: &Path) -> Result<u8, Failure> {
    let run_dir = std::fs::canonicalize(run_dir).map_err(|e| io(run_dir, e))?;
    let (start, trials) = load(&run_dir)?;
    if !start.domains.is_empty() {
        return Err(Failure::aborted(format!(
            "{}: a capability run (domains {}) cannot be re-audited yet: `firedrill report` gives what each domain journaled; run the drill again for the figures",
            run_dir.display(),
            start.domains.join(", ")
        )));
    }
    let reason = death_reason(&start, &trials);
    if reason.contains("still running") {
        return Err(Failure::aborted(format!(
            "{reason}: wait for it to end before re-auditing"
        )));
    }
    // Relative lab paths in the spec resolve against the drill's directory.
    if start.cwd.is_dir() {
        std::env::set_current_dir(&start.cwd).map_err(|e| io(&start.cwd, e))?;
    }
    let spec = load_spec(&run_dir.join(SPEC_COPY))?;
    let d = spec
        .file
        .drill
        .as_ref()
        .ok_or_else(|| Failure::input("no [drill] table"))?;
    let pw = password(d.target.as_ref())?;
    let mut prepared = prepare(resolve(&spec)?, d).await?;
    let plan = firedrill_engine::Plan::build(
        d,
        prepared.desc.clone(),
        pw,
        run_dir.clone(),
        false,
        prepared.opener.clone(),
    );
    let nodes = prepared.env.nodes_now();
    let meta = RunMeta {
        drill: plan.drill.clone(),
        description: plan.description.clone(),
        objectives: ObjectivesRecord {
            rpo_s: plan.objectives.rpo_us.map(|v| v as f64 / 1e6),
            rto_s: plan.objectives.rto_us.map(|v| v as f64 / 1e6),
        },
        firedrill_version: env!("CARGO_PKG_VERSION").into(),
        server_version: None,
        spec: serde_json::to_value(d).unwrap_or(serde_json::Value::Null),
    };
    let mut col = RunCollector::new(run_dir.clone(), meta);
    emit(
        &mut col,
        DrillEvent::DrillStarted {
            drill: plan.drill.clone(),
            trials: plan.trials,
            wall_clock: start.started_at.clone(),
            target: prepared.desc.clone(),
        },
    )?;
    let mut verdicts = Vec::new();
    let (mut unrecorded, mut audited, mut died_at) = (0, Vec::new(), String::new());
    for t in &trials {
        if t.finished {
            // Audited before the death: its saved files are the record
            // (a later trial's lab reset may have removed its rows).
            let (analysis, chk, verdict) = saved_trial(&run_dir, t.trial, &plan)?;
            replay(&mut col, t.trial, &t.partial.timeline)?;
            verdicts.push(verdict);
            emit(
                &mut col,
                DrillEvent::TrialFinished {
                    trial: t.trial,
                    analysis: Box::new(analysis),
                    check: chk,
                    verdict,
                },
            )?;
            continue;
        }
        let o = reaudit_trial(&run_dir, &plan, &nodes, t, &mut col).await?;
        verdicts.push(o.verdict);
        unrecorded += o.unrecorded;
        audited.push(o.node);
        died_at = o.died_at;
    }
    let verdict = if verdicts.contains(&Verdict::Fail) {
        Verdict::Fail
    } else {
        Verdict::Inconclusive
    };
    emit(
        &mut col,
        DrillEvent::Warning {
            trial: None,
            message: reason.clone(),
        },
    )?;
    emit(&mut col, DrillEvent::DrillFinished { verdict })?;
    let mut rec = RunRecord::load(&run_dir).map_err(|e| Failure::internal(e.to_string()))?;
    rec.reaudit = Some(ReauditRecord {
        at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        died_at,
        journaled_ops: trials.iter().map(|t| t.partial.ops.len() as u64).sum(),
        unrecorded_ops: unrecorded,
        audited: audited.join(", "),
        reason: format!(
            "{reason}; the store re-read, {unrecorded} unrecorded op(s) counted as unknown"
        ),
    });
    rec.save(&run_dir)
        .map_err(|e| Failure::internal(e.to_string()))?;
    drop(prepared.embedded.take());
    println!("{}", render_summary(&rec));
    Ok(exit_code(rec.verdict) as u8)
}
