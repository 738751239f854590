//! The evidence a run leaves: report.html, junit.xml and the run history.
//! The fixture is a run.json written by a real PostgreSQL drill in the v1
//! shape before timeline series existed: old runs must keep rendering.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use firedrill_ledger::events::DrillEvent;
use firedrill_ledger::Verdict;
use firedrill_report::{
    objective_outcomes, render_html, render_junit, render_summary, History, Outcome, Reporter,
    RunArtifacts, RunCollector, RunFilter, RunMeta, RunRecord, HTML_FILE, JUNIT_FILE,
};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-pg-async-cut-crash")
}

fn fixture() -> RunRecord {
    RunRecord::load(&fixture_dir()).expect("the v1 fixture loads")
}

/// Every `data-marker="…"` value in document order.
fn marker_kinds(html: &str) -> Vec<String> {
    html.split("data-marker=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_string)
        .collect()
}

/// A self-contained page fetches nothing: no src, href, CSS url() or import.
fn assert_self_contained(html: &str) {
    for needle in ["src=", "href=", "url(", "@import", "http://", "https://"] {
        assert!(!html.contains(needle), "report fetches something: {needle}");
    }
}

#[test]
fn v1_fixture_renders_to_html() {
    let run = fixture();
    assert!(
        run.trials[0].series.is_none(),
        "the fixture predates series"
    );
    let html = render_html(&run);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.ends_with("</html>\n"));
    assert_self_contained(&html);
    let kinds = marker_kinds(&html);
    for k in [
        "fault_start",
        "fault_in_effect",
        "heal",
        "detected",
        "first_write",
        "recovered",
    ] {
        assert!(kinds.iter().any(|x| x == k), "no {k} marker in {kinds:?}");
    }
    assert!(html.contains("class=\"marker marker-fault-start\" data-marker=\"fault_start\""));
    // Two fault steps: two starts, both in effect; the cut is healed.
    assert_eq!(kinds.iter().filter(|k| *k == "fault_start").count(), 2);
    // The loss window is drawn even without per-bucket series.
    assert!(html.contains("data-window=\"rpo\""));
    assert!(html.contains("class=\"lost\""));
    // Objectives table, the server version, the spec.
    assert!(html.contains("<tr data-objective=\"rpo\">"));
    assert!(html.contains("PostgreSQL 15.18"));
    assert!(html.contains("<pre class=\"spec\">"));
    assert!(html.contains("cut_replication"));
    assert!(html.contains("data-figure=\"rpo\"") && html.contains("data-figure=\"rto\""));
}

/// A restore's phases are markers on the timeline (discovery, fetch,
/// replay, promote, counted from the disaster step), and its rolled-back
/// writes a shaded window; a run without a restore has neither.
#[test]
fn restore_phases_and_rolled_back_writes_on_the_timeline() {
    let plain = render_html(&fixture());
    let kinds = marker_kinds(&plain);
    for k in ["discovered", "fetch_done", "replay_done", "promoted"] {
        assert!(!kinds.iter().any(|x| x == k), "{k} without a restore");
    }
    assert!(!plain.contains("data-window=\"rolled_back\""));

    let mut run = fixture();
    let t = &mut run.trials[0];
    let t0 = t
        .faults
        .iter()
        .find(|f| f.disaster)
        .expect("disaster")
        .injected_s;
    t.restore = Some(firedrill_ledger::RestoreFigures {
        target: "before xid 925".into(),
        reached: true,
        rolled_back: 37_677,
        rolled_back_span_s: Some([0.0, 6.0]),
        discovered_s: Some(5.0),
        fetch_s: Some(5.77),
        replay_s: Some(6.08),
        promote_s: Some(6.15),
        ..Default::default()
    });
    let html = render_html(&run);
    let at = |kind: &str| -> f64 {
        let s = html
            .split(&format!("data-marker=\"{kind}\" data-t=\""))
            .nth(1)
            .unwrap_or_else(|| panic!("no {kind} marker"));
        s.split('"')
            .next()
            .and_then(|v| v.parse().ok())
            .expect("data-t")
    };
    assert!((at("discovered") - (t0 + 5.0)).abs() < 1e-3);
    assert!((at("fetch_done") - (t0 + 5.77)).abs() < 1e-3);
    assert!((at("replay_done") - (t0 + 6.08)).abs() < 1e-3);
    assert!((at("promoted") - (t0 + 6.15)).abs() < 1e-3);
    assert!(html.contains("data-window=\"rolled_back\""));
    assert!(html.contains("rolled back: 37677 acknowledged writes"));
    assert_self_contained(&html);
}

#[test]
fn v1_fixture_renders_to_junit_and_summary() {
    let run = fixture();
    assert_eq!(run.verdict, Verdict::Fail);
    let xml = render_junit(&run).unwrap();
    assert!(xml.contains("<testcase name=\"pg-async-cut-crash/trial-1/rpo\""));
    assert!(xml.contains("<testcase name=\"pg-async-cut-crash/trial-1/rto\""));
    assert_eq!(xml.matches("<failure ").count(), 1, "{xml}");
    assert!(
        xml.contains("RPO achieved 1.99 s, objective &lt;= 1.00 s"),
        "{xml}"
    );
    let text = render_summary(&run);
    assert!(text.contains("verdict: FAIL"));
}

#[test]
fn objective_outcomes_follow_the_check() {
    let run = fixture();
    let o = objective_outcomes(&run);
    assert_eq!(o.len(), 2);
    assert_eq!(o[0].outcome, Outcome::Violated);
    assert_eq!(o[1].outcome, Outcome::Met);
}

#[test]
fn untrusted_text_is_escaped() {
    let mut run = fixture();
    run.description = Some("<script>alert(1)</script>".into());
    run.trials[0].warnings = vec!["a \"quoted\" <b>warning</b>".into()];
    let html = render_html(&run);
    assert!(
        !html.contains("<script"),
        "markup from run.json must be escaped"
    );
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("&lt;b&gt;warning&lt;/b&gt;"));
}

#[test]
fn series_adds_latency_and_lost_bars() {
    let mut run = fixture();
    let t = &run.trials[0];
    // A series on the same grid: lost writes in the two seconds before the
    // disaster, latency everywhere.
    let n = 60;
    let start = -3.0;
    let series = firedrill_report::TrialSeries {
        bucket_s: 0.1,
        start_s: start,
        ok: vec![100; n],
        fail: vec![0; n],
        unknown: vec![0; n],
        p50_ms: vec![Some(2.0); n],
        p99_ms: (0..n).map(|i| Some(5.0 + i as f64)).collect(),
        lost: (0..n)
            .map(|i| {
                let at = start + i as f64 * 0.1;
                u32::from((-2.0..0.0).contains(&at)) * 50
            })
            .collect(),
    };
    assert!(t.series.is_none());
    run.trials[0].series = Some(series);
    let html = render_html(&run);
    assert!(html.contains("<path class=\"p50\""));
    assert!(html.contains("<path class=\"p99\""));
    assert_eq!(html.matches("<rect class=\"lost\"").count(), 20);
    // Through run.json and back: the series survives, the page is the same.
    let dir = tempfile::tempdir().unwrap();
    run.save(dir.path()).unwrap();
    let back = RunRecord::load(dir.path()).unwrap();
    assert_eq!(back, run);
    assert_eq!(render_html(&back), html);
}

/// A run's events through the collector then the artifacts reporter, as
/// `firedrill drill` wires them: run.json, report.html, junit.xml and the
/// history row all appear.
#[test]
fn artifacts_reporter_writes_every_output() {
    let run = fixture();
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("state/history.sqlite");
    let run_dir = dir.path().join("run");
    std::fs::create_dir(&run_dir).unwrap();
    let mut collector = RunCollector::new(
        &run_dir,
        RunMeta {
            drill: run.drill.clone(),
            objectives: run.objectives,
            firedrill_version: "0.1.0".into(),
            ..Default::default()
        },
    );
    let mut artifacts = RunArtifacts::new(&run_dir, Some(history.clone()));
    let events = [
        DrillEvent::DrillStarted {
            drill: run.drill.clone(),
            trials: 0,
            wall_clock: "2026-11-22T05:22:15Z".into(),
            target: "lab".into(),
        },
        DrillEvent::DrillFinished {
            verdict: Verdict::Inconclusive,
        },
    ];
    for ev in &events {
        collector.event(ev).unwrap();
        artifacts.event(ev).unwrap();
    }
    collector.finish().unwrap();
    artifacts.finish().unwrap();
    assert!(run_dir.join(HTML_FILE).exists());
    assert!(run_dir.join(JUNIT_FILE).exists());
    let h = History::open(&history).unwrap();
    let rows = h.runs(&RunFilter::default()).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].verdict, "inconclusive");
}

#[test]
fn history_lists_filters_and_trends() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = History::open(&dir.path().join("h.sqlite")).unwrap();
    let base = fixture();
    // Four runs of one drill, RPO 1, 2, 0.5, 3 s against 1.5 s; one other.
    for (i, rpo) in [1.0, 2.0, 0.5, 3.0].iter().enumerate() {
        let mut r = base.clone();
        r.started_at = format!("2026-11-2{}T00:00:00Z", i + 1);
        r.objectives.rpo_s = Some(1.5);
        r.trials[0].rpo.achieved_s = *rpo;
        r.trials[0].check.rpo_met = Some(*rpo <= 1.5);
        r.verdict = if *rpo <= 1.5 {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        r.trials[0].verdict = r.verdict;
        h.record(&r, &dir.path().join(format!("run-{i}"))).unwrap();
    }
    let mut other = base.clone();
    other.drill = "other".into();
    h.record(&other, &dir.path().join("other")).unwrap();
    // Recording the same directory again replaces its row.
    h.record(&other, &dir.path().join("other")).unwrap();

    let all = h.runs(&RunFilter::default()).unwrap();
    assert_eq!(all.len(), 5);
    let fails = h
        .runs(&RunFilter {
            drill: Some(base.drill.clone()),
            verdict: Some(Verdict::Fail),
        })
        .unwrap();
    assert_eq!(fails.len(), 2);
    assert_eq!(fails[0].started_at, "2026-11-24T00:00:00Z", "newest first");
    assert_eq!(fails[0].rpo_max_s, Some(3.0));

    let t = h.trend(&base.drill).unwrap();
    let rpo: Vec<f64> = t.points.iter().map(|p| p.rpo_s).collect();
    assert_eq!(rpo, vec![1.0, 2.0, 0.5, 3.0], "oldest first");
    assert_eq!((t.rpo_meets.met, t.rpo_meets.judged), (2, 4));
    assert_eq!((t.rto_meets.met, t.rto_meets.judged), (4, 4));
    let text = firedrill_report::render_trend(&t);
    assert!(
        text.contains("meets RPO objective: 50% (2 of 4 recoveries)"),
        "{text}"
    );
    assert!(h.knows_drill("other").unwrap());
    assert!(!h.knows_drill("nope").unwrap());
    assert_eq!(h.integrity_check().unwrap(), "ok");
}

/// Two drills finishing at the same moment, each with its own connection
/// (as two processes would have): both rows land, every time, and the file
/// stays sound.
#[test]
fn concurrent_recorders_both_land() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state/history.sqlite");
    let base = fixture();
    const ROUNDS: usize = 40;
    for round in 0..ROUNDS {
        // A fresh file every few rounds, so creating the schema races too.
        let db = if round % 8 == 0 {
            dir.path().join(format!("state-{round}/history.sqlite"))
        } else {
            db.clone()
        };
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|w| {
                let barrier = barrier.clone();
                let db = db.clone();
                let mut run = base.clone();
                run.drill = format!("drill-{w}");
                let run_dir = dir.path().join(format!("r{round}-w{w}"));
                std::thread::spawn(move || {
                    barrier.wait();
                    let mut h = History::open(&db)?;
                    h.record(&run, &run_dir)
                })
            })
            .collect();
        for h in handles {
            h.join().expect("no panic").expect("record succeeds");
        }
        let h = History::open(&db).unwrap();
        for w in 0..2 {
            let rows = h
                .runs(&RunFilter {
                    drill: Some(format!("drill-{w}")),
                    verdict: None,
                })
                .unwrap();
            assert!(
                rows.iter()
                    .any(|r| r.run_dir.ends_with(&format!("r{round}-w{w}"))),
                "round {round}: writer {w}'s run is missing"
            );
        }
        assert_eq!(h.integrity_check().unwrap(), "ok");
    }
    let h = History::open(&db).unwrap();
    assert_eq!(
        h.runs(&RunFilter::default()).unwrap().len(),
        2 * (ROUNDS - ROUNDS / 8)
    );
}

#[test]
fn a_newer_history_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    drop(History::open(&db).unwrap());
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch("PRAGMA user_version = 99").unwrap();
    drop(c);
    let err = match History::open(&db) {
        Ok(_) => panic!("a newer schema must be refused"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("schema 99"), "{err}");
}

/// The newest restore test that passed, for `firedrill watch`: a failed
/// one, a newer run that was no restore test, and another drill do not
/// count; a v1 file (no restore columns) is migrated in place.
#[test]
fn newest_passing_restore_test() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    {
        // A schema 1 file: the trials table without the restore columns.
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "CREATE TABLE runs (id INTEGER PRIMARY KEY, run_dir TEXT NOT NULL UNIQUE, drill TEXT NOT NULL,
               started_at TEXT NOT NULL, verdict TEXT NOT NULL, target TEXT NOT NULL, server_version TEXT,
               firedrill_version TEXT NOT NULL, rpo_objective_s REAL, rto_objective_s REAL,
               trials INTEGER NOT NULL, recorded_at TEXT NOT NULL DEFAULT 'x');
             CREATE TABLE trials (run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
               trial INTEGER NOT NULL, verdict TEXT NOT NULL, rpo_s REAL NOT NULL, rpo_predicted_s REAL,
               lost INTEGER NOT NULL, zombie_lost INTEGER NOT NULL, rto_s REAL, rpo_met INTEGER,
               rto_met INTEGER, PRIMARY KEY (run_id, trial));
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let mut h = History::open(&db).unwrap();
    let drills = vec!["orders-restore-test".to_string()];
    assert_eq!(h.newest_restore_test(&drills).unwrap(), None);
    let test_run = |day: u32, verdict: Verdict, test: bool, restore_s: f64| {
        let mut r = fixture();
        r.drill = "orders-restore-test".into();
        r.started_at = format!("2026-11-{day:02}T00:00:00Z");
        r.verdict = verdict;
        r.trials[0].verdict = verdict;
        r.trials[0].restore = Some(firedrill_ledger::RestoreFigures {
            test,
            duration_s: Some(restore_s),
            reached: verdict == Verdict::Pass,
            ..Default::default()
        });
        r
    };
    h.record(
        &test_run(10, Verdict::Pass, true, 4.0),
        &dir.path().join("a"),
    )
    .unwrap();
    h.record(
        &test_run(12, Verdict::Fail, true, 9.0),
        &dir.path().join("b"),
    )
    .unwrap();
    h.record(
        &test_run(13, Verdict::Pass, false, 7.0),
        &dir.path().join("c"),
    )
    .unwrap();
    let mut other = test_run(14, Verdict::Pass, true, 1.0);
    other.drill = "other".into();
    h.record(&other, &dir.path().join("d")).unwrap();
    let n = h.newest_restore_test(&drills).unwrap().expect("one passed");
    assert_eq!(n.started_at, "2026-11-10T00:00:00Z");
    assert_eq!(n.restore_s, Some(4.0));
    h.record(
        &test_run(15, Verdict::Pass, true, 5.5),
        &dir.path().join("e"),
    )
    .unwrap();
    let n = h.newest_restore_test(&drills).unwrap().expect("newer");
    assert_eq!(
        (n.started_at.as_str(), n.restore_s),
        ("2026-11-15T00:00:00Z", Some(5.5))
    );
}
