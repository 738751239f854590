//! Snapshot tests of the human summary, built the way a real drill builds
//! it: events → RunCollector → run.json → render. The analyses are written
//! by hand (the scenarios of DESIGN.md's ground-truth experiments), so these
//! tests pin the reporters, not the analysis.

use firedrill_ledger::events::DrillEvent;
use firedrill_ledger::{
    check, Analysis, Bucket, Micros, Objectives, OpCounts, Phases, RpoFigures, RtoFigures, Verdict,
};
use firedrill_report::{
    render_junit, render_summary, ObjectivesRecord, Reporter, RunCollector, RunMeta, RunRecord,
    MAX_WIDTH,
};
use serde_json::json;

/// Disaster (kill of the primary) at 12 s after drill start.
const T_FAULT: Micros = 12_000_000;

fn us(s: f64) -> Micros {
    (T_FAULT as i64 + (s * 1e6).round() as i64) as Micros
}

/// 100 ms buckets from `from` to `to` (seconds relative to the disaster),
/// unhealthy inside `[down, up)`.
fn buckets(from: f64, to: f64, down: f64, up: f64) -> Vec<Bucket> {
    let n = ((to - from) * 10.0).round() as i64;
    (0..n)
        .map(|i| {
            let start_s = from + i as f64 / 10.0;
            let healthy = !(start_s >= down - 1e-9 && start_s < up - 1e-9);
            Bucket {
                start_s: (start_s * 10.0).round() / 10.0,
                ok: if healthy { 95 } else { 0 },
                fail: 0,
                unknown: if healthy { 0 } else { 16 },
                healthy,
            }
        })
        .collect()
}

struct Trial {
    trial: u32,
    /// (action, node, injected, in effect, healed) relative to the disaster.
    faults: Vec<(&'static str, &'static str, f64, f64, Option<f64>)>,
    recovery: Option<(&'static str, &'static str, f64, f64)>,
    detected: Option<(&'static str, f64)>,
    warnings: Vec<&'static str>,
    analysis: Analysis,
}

fn objectives(rpo_s: f64, rto_s: f64) -> (ObjectivesRecord, Objectives) {
    (
        ObjectivesRecord {
            rpo_s: Some(rpo_s),
            rto_s: Some(rto_s),
        },
        Objectives {
            rpo_us: Some((rpo_s * 1e6) as u64),
            rto_us: Some((rto_s * 1e6) as u64),
        },
    )
}

fn events(drill: &str, trials: &[Trial], objectives: &Objectives) -> Vec<DrillEvent> {
    let mut ev = vec![DrillEvent::DrillStarted {
        drill: drill.into(),
        trials: trials.len() as u32,
        wall_clock: "2026-11-22T02:51:41Z".into(),
        target: "postgres lab pg3".into(),
    }];
    let mut worst = Verdict::Pass;
    for t in trials {
        let n = t.trial;
        ev.push(DrillEvent::TrialStarted { trial: n });
        ev.push(DrillEvent::Progress {
            trial: n,
            t_us: 5_000_000,
            ops_per_s: 950.0,
            ok: 4000,
            fail: 0,
            unknown: 0,
        });
        for (step, (action, node, inj, eff, healed)) in t.faults.iter().enumerate() {
            ev.push(DrillEvent::FaultInjected {
                trial: n,
                step,
                action: (*action).into(),
                node: (*node).into(),
                t_start: us(*inj),
                t_done: Some(us(*eff)),
                error: None,
                detail: None,
            });
            if let Some(h) = healed {
                ev.push(DrillEvent::FaultHealed {
                    trial: n,
                    step,
                    action: (*action).into(),
                    node: (*node).into(),
                    t_start: us(*h - 0.01),
                    t_done: us(*h),
                    error: None,
                });
            }
        }
        if let Some((how, at)) = t.detected {
            ev.push(DrillEvent::Detected {
                trial: n,
                t_us: us(at),
                how: how.into(),
            });
        }
        if let Some((action, node, start, done)) = t.recovery {
            ev.push(DrillEvent::Recovery {
                trial: n,
                action: action.into(),
                node: Some(node.into()),
                t_start: us(start),
                t_done: us(done),
                error: None,
            });
        }
        for w in &t.warnings {
            ev.push(DrillEvent::Warning {
                trial: Some(n),
                message: (*w).into(),
            });
        }
        let (check, verdict) = check(&t.analysis, objectives);
        if verdict != Verdict::Pass {
            worst = verdict;
        }
        ev.push(DrillEvent::TrialFinished {
            trial: n,
            analysis: Box::new(t.analysis.clone()),
            check,
            verdict,
        });
    }
    ev.push(DrillEvent::DrillFinished { verdict: worst });
    ev
}

fn spec(name: &str) -> serde_json::Value {
    json!({
        "name": name,
        "workload": { "mode": "closed", "clients": 16, "duration": "30s" },
        "faults": [
            { "at": "8s", "action": "cut_replication", "node": "sync_standby" },
            { "at": "10s", "action": "kill", "node": "primary", "disaster": true }
        ],
        "recovery": { "promote": "n2", "delay": "1s" },
        "slo": { "success_ratio": 0.99, "stable_for": "5s", "bucket": "100ms",
                 "recovery_timeout": "1m" },
        "trials": 1
    })
}

/// Runs the events through a RunCollector in a temporary run directory and
/// checks the written run.json renders exactly like the in-memory record.
fn collect(
    drill: &str,
    description: &str,
    trials: &[Trial],
    obj: (ObjectivesRecord, Objectives),
) -> RunRecord {
    let dir = tempfile::tempdir().unwrap();
    let meta = RunMeta {
        drill: drill.into(),
        description: Some(description.into()),
        objectives: obj.0,
        firedrill_version: "0.1.0".into(),
        server_version: Some("PostgreSQL 16.4".into()),
        spec: spec(drill),
    };
    let mut c = RunCollector::new(dir.path(), meta);
    for ev in events(drill, trials, &obj.1) {
        c.event(&ev).unwrap();
    }
    c.finish().unwrap();
    let loaded = RunRecord::load(dir.path()).unwrap();
    assert_eq!(&loaded, c.record());
    assert_eq!(render_summary(&loaded), render_summary(c.record()));
    loaded
}

fn assert_width(text: &str) {
    for l in text.lines() {
        assert!(l.chars().count() <= MAX_WIDTH, "too wide: {l:?}");
    }
}

/// Async replication, standby cut 2 s before the primary dies: ~2 s of
/// acknowledged writes are gone, close to the lag sampled before the fault.
fn async_loss(trial: u32, rpo: f64, predicted: f64, lost: u64, rto: Option<f64>) -> Trial {
    let recovered = rto;
    Trial {
        trial,
        faults: vec![
            ("cut_replication", "n2", -2.0, -1.99, None),
            ("kill", "n1", 0.0, 0.01, None),
        ],
        recovery: Some(("promote", "n2", 1.0, 1.3)),
        detected: Some(("promote issued", 1.0)),
        warnings: vec![],
        analysis: Analysis {
            verify_failed: None,
            consumer: None,
            by_home: Vec::new(),
            latency_before: None,
            capability: None,
            t_fault_us: Some(T_FAULT),
            t_fault_done_us: Some(T_FAULT + 10_000),
            rpo: RpoFigures {
                achieved_s: rpo,
                predicted_s: Some(predicted),
                lost,
                zombie_lost: 0,
                unknown_survived: 2,
                unknown_lost: 14,
                fail_survived: 0,
                duplicates: 0,
                phantoms: 0,
                loss_span_s: Some([-(rpo - 0.01), -0.01]),
                ..Default::default()
            },
            rto: RtoFigures {
                achieved_s: rto,
                incident_s: Some(0.0),
                phases: Phases {
                    impact_s: Some(0.01),
                    detected_s: Some(1.0),
                    first_write_s: Some(1.31),
                    recovered_s: recovered,
                },
            },
            ops: OpCounts {
                ok: 24_310,
                fail: 3,
                unknown: 16,
            },
            buckets: buckets(
                -2.0,
                rto.map_or(8.0, |r| (r + 6.6).max(8.0)),
                0.0,
                rto.unwrap_or(8.0),
            ),
            restore: None,
        },
    }
}

fn render_checked(run: &RunRecord) -> String {
    let text = render_summary(run);
    assert_width(&text);
    text
}

#[test]
fn async_loss_trial() {
    let run = collect(
        "pg-async-cut-then-kill",
        "Asynchronous replication: the standby stops receiving WAL 2 s before the primary \
         is killed, then the standby is promoted. Expect RPO close to the replication lag.",
        &[async_loss(1, 2.0, 1.9, 1_842, Some(1.4))],
        objectives(1.0, 30.0),
    );
    assert_eq!(run.verdict, Verdict::Fail);
    insta::assert_snapshot!(render_checked(&run));
}

#[test]
fn sync_stall_trial() {
    let t = Trial {
        trial: 1,
        faults: vec![
            ("cut_replication", "n2", -2.0, -1.995, Some(1.5)),
            ("kill", "n1", 0.0, 0.01, None),
        ],
        recovery: Some(("promote", "n2", 1.0, 1.3)),
        detected: Some(("promote issued", 1.0)),
        warnings: vec![],
        analysis: Analysis {
            verify_failed: None,
            consumer: None,
            by_home: Vec::new(),
            latency_before: None,
            capability: None,
            t_fault_us: Some(T_FAULT),
            t_fault_done_us: Some(T_FAULT + 10_000),
            rpo: RpoFigures {
                achieved_s: 0.0,
                predicted_s: Some(0.0),
                lost: 0,
                unknown_lost: 16,
                ..Default::default()
            },
            rto: RtoFigures {
                achieved_s: Some(3.4),
                incident_s: Some(-2.0),
                phases: Phases {
                    impact_s: Some(-1.0),
                    detected_s: Some(1.0),
                    first_write_s: Some(1.31),
                    recovered_s: Some(1.4),
                },
            },
            ops: OpCounts {
                ok: 19_880,
                fail: 0,
                unknown: 16,
            },
            buckets: buckets(-2.0, 8.0, -2.0, 1.4),
            restore: None,
        },
    };
    let run = collect(
        "pg-sync-cut-then-kill",
        "Synchronous replication: the same cut stalls every commit until the standby is \
         promoted. No acknowledged write may be lost; the price is paid in RTO.",
        &[t],
        objectives(0.0, 5.0),
    );
    assert_eq!(run.verdict, Verdict::Pass);
    let text = render_checked(&run);
    assert!(text.contains("outage began 2.00 s before the disaster, at step 1 cut_replication n2"));
    insta::assert_snapshot!(text);
}

/// The primary is killed and nothing takes over: the RTO is never met.
fn no_failover() -> Trial {
    Trial {
        trial: 1,
        faults: vec![("kill", "n1", 0.0, 0.01, None)],
        recovery: None,
        detected: None,
        warnings: vec!["recovery is automatic and no standby took over"],
        analysis: Analysis {
            verify_failed: None,
            consumer: None,
            by_home: Vec::new(),
            latency_before: None,
            capability: None,
            t_fault_us: Some(T_FAULT),
            t_fault_done_us: Some(T_FAULT + 10_000),
            rpo: RpoFigures {
                achieved_s: 0.0,
                predicted_s: Some(0.02),
                unknown_survived: 9,
                unknown_lost: 7,
                ..Default::default()
            },
            rto: RtoFigures {
                achieved_s: None,
                incident_s: Some(0.0),
                phases: Phases {
                    impact_s: Some(0.0),
                    ..Default::default()
                },
            },
            ops: OpCounts {
                ok: 9_500,
                fail: 58_000,
                unknown: 16,
            },
            buckets: buckets(0.0, 60.0, 0.0, 60.0),
            restore: None,
        },
    }
}

#[test]
fn never_recovered_trial() {
    let t = no_failover();
    let run = collect(
        "pg-kill-no-failover",
        "The primary is killed and nothing promotes a standby.",
        &[t],
        objectives(5.0, 30.0),
    );
    assert_eq!(run.verdict, Verdict::Fail);
    assert_eq!(run.summary.not_recovered, 1);
    let text = render_checked(&run);
    assert!(text.contains("never recovered (recovery_timeout 1m)"));
    assert!(text.ends_with(
        "verdict: FAIL (rto: the service never met its SLO again within recovery_timeout)\n"
    ));
    insta::assert_snapshot!(text);
}

#[test]
fn three_trials() {
    let run = collect(
        "pg-async-cut-then-kill",
        "Three trials of the async cut-then-kill drill.",
        &[
            async_loss(1, 2.0, 1.9, 1_842, Some(1.4)),
            async_loss(2, 2.1, 2.0, 1_930, Some(1.6)),
            async_loss(3, 1.95, 1.9, 1_790, Some(31.2)),
        ],
        objectives(5.0, 30.0),
    );
    assert_eq!(run.summary.trials, 3);
    assert_eq!(run.summary.passed, 2);
    assert_eq!(run.summary.failed, 1);
    insta::assert_snapshot!(render_checked(&run));
}

#[test]
fn run_json_shape() {
    let run = collect(
        "pg-async-cut-then-kill",
        "One async trial.",
        &[async_loss(1, 2.0, 1.9, 1_842, Some(1.4))],
        objectives(1.0, 30.0),
    );
    let mut v = serde_json::to_value(&run).unwrap();
    // Buckets are many; the shape of one is enough here.
    v["trials"][0]["buckets"]
        .as_array_mut()
        .unwrap()
        .truncate(2);
    insta::assert_json_snapshot!(v);
}

#[test]
fn round_trip_through_run_json_renders_the_same() {
    let run = collect(
        "pg-sync-cut-then-kill",
        "Round trip.",
        &[
            async_loss(1, 2.0, 1.9, 10, None),
            async_loss(2, 0.5, 0.4, 3, Some(2.0)),
        ],
        objectives(1.0, 30.0),
    );
    let dir = tempfile::tempdir().unwrap();
    run.save(dir.path()).unwrap();
    let back = RunRecord::load(dir.path()).unwrap();
    assert_eq!(back, run);
    assert_eq!(render_summary(&back), render_summary(&run));
}

#[test]
fn aborted_drill_leaves_an_inconclusive_run_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = RunCollector::new(dir.path(), RunMeta::default());
    let evs = events(
        "x",
        &[async_loss(1, 2.0, 1.9, 5, Some(1.0))],
        &Objectives::default(),
    );
    // Everything but DrillFinished.
    for ev in &evs[..evs.len() - 1] {
        c.event(ev).unwrap();
    }
    c.finish().unwrap();
    let run = RunRecord::load(dir.path()).unwrap();
    assert_eq!(run.verdict, Verdict::Inconclusive);
    assert_eq!(run.trials.len(), 1);
    assert_eq!(run.drill, "x");
    let text = render_summary(&run);
    assert!(text.ends_with(
        "verdict: INCONCLUSIVE (the drill ended before it finished; the run is incomplete)\n"
    ));
}

#[test]
fn a_failed_write_keeps_the_engines_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("gone");
    let mut c = RunCollector::new(&gone, RunMeta::default());
    let evs = events(
        "x",
        &[async_loss(1, 2.0, 1.9, 5, Some(1.0))],
        &objectives(1.0, 30.0).1,
    );
    let (last, rest) = evs.split_last().unwrap();
    for ev in rest {
        c.event(ev).unwrap();
    }
    assert!(c.event(last).is_err());
    std::fs::create_dir(&gone).unwrap();
    c.finish().unwrap();
    let run = RunRecord::load(&gone).unwrap();
    assert_eq!(run.verdict, Verdict::Fail);
    assert!(run.warnings.is_empty());
}

#[test]
fn load_refuses_unknown_schema_versions() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("run.json"), r#"{"schema_version": 3}"#).unwrap();
    let err = RunRecord::load(dir.path()).unwrap_err();
    assert!(err.to_string().contains("schema_version 3"), "{err}");
}

// ------------------------------------------------------------ JUnit

#[test]
fn junit_async_loss() {
    let run = collect(
        "pg-async-cut-then-kill",
        "One async trial, RPO violated.",
        &[async_loss(1, 2.0, 1.9, 1_842, Some(1.4))],
        objectives(1.0, 30.0),
    );
    let xml = render_junit(&run).unwrap();
    assert!(xml.contains("name=\"pg-async-cut-then-kill/trial-1/rpo\""));
    assert!(xml.contains("RPO achieved 2.00 s, objective &lt;= 1.00 s"));
    insta::assert_snapshot!(xml);
}

#[test]
fn junit_three_trials() {
    let run = collect(
        "pg-async-cut-then-kill",
        "Three trials; the third recovers too late.",
        &[
            async_loss(1, 2.0, 1.9, 1_842, Some(1.4)),
            async_loss(2, 2.1, 2.0, 1_930, Some(1.6)),
            async_loss(3, 1.95, 1.9, 1_790, Some(31.2)),
        ],
        objectives(5.0, 30.0),
    );
    let xml = render_junit(&run).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 6);
    assert_eq!(xml.matches("<failure ").count(), 1);
    assert!(xml.contains("RTO achieved 31.20 s, objective &lt;= 30.00 s"));
    insta::assert_snapshot!(xml);
}

#[test]
fn junit_never_recovered() {
    let run = collect(
        "pg-kill-no-failover",
        "Nothing promotes a standby.",
        &[no_failover()],
        objectives(5.0, 30.0),
    );
    let xml = render_junit(&run).unwrap();
    assert!(xml.contains("RTO achieved never recovered, objective &lt;= 30.00 s"));
    insta::assert_snapshot!(xml);
}

/// Phantoms make a trial inconclusive: each objective is an error, never a
/// pass or a skip, so CI cannot show it green.
#[test]
fn junit_inconclusive_trials_are_errors() {
    let mut t = async_loss(1, 0.5, 0.4, 3, Some(1.0));
    t.analysis.rpo.phantoms = 2;
    let run = collect(
        "pg-phantoms",
        "The audit read rows firedrill never wrote.",
        &[t],
        objectives(1.0, 30.0),
    );
    assert_eq!(run.verdict, Verdict::Inconclusive);
    let xml = render_junit(&run).unwrap();
    assert_eq!(xml.matches("<error ").count(), 2, "{xml}");
    assert!(!xml.contains("<skipped"));
    insta::assert_snapshot!(xml);
}

#[test]
fn junit_run_without_trials_is_one_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = RunCollector::new(
        dir.path(),
        RunMeta {
            drill: "aborted".into(),
            objectives: objectives(1.0, 30.0).0,
            ..Default::default()
        },
    );
    c.event(&DrillEvent::DrillStarted {
        drill: "aborted".into(),
        trials: 1,
        wall_clock: "2026-11-22T02:51:41Z".into(),
        target: "postgres lab pg3".into(),
    })
    .unwrap();
    c.finish().unwrap();
    let run = RunRecord::load(dir.path()).unwrap();
    let xml = render_junit(&run).unwrap();
    assert!(xml.contains("name=\"aborted/run\""), "{xml}");
    assert!(xml.contains("<error "), "{xml}");
    insta::assert_snapshot!(xml);
}
