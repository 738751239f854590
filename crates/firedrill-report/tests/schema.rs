//! docs/run.schema.json describes what RunRecord really writes: the fixture
//! (v1, written by a real drill) and a record with every optional part
//! filled in both validate, and a drifted record does not.
//!
//! The validator below covers the keywords the schema uses (type, const,
//! enum, required, properties, additionalProperties, items, minItems,
//! maxItems, $ref); it exists so this check needs no large dependency.

use serde_json::Value;
use std::path::Path;

fn schema() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/run.schema.json");
    serde_json::from_str(&std::fs::read_to_string(p).expect("docs/run.schema.json")).unwrap()
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_u64() || v.is_i64(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    }
}

/// Appends every violation, with its JSON path, to `errs`.
fn validate(root: &Value, s: &Value, v: &Value, path: &str, errs: &mut Vec<String>) {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let target = root
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("bad $ref {r}"));
        validate(root, target, v, path, errs);
    }
    if let Some(t) = s.get("type") {
        let ok = match t {
            Value::String(t) => type_ok(t, v),
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(|t| type_ok(t, v)),
            _ => true,
        };
        if !ok {
            errs.push(format!("{path}: {v} is not of type {t}"));
            return;
        }
    }
    if let Some(c) = s.get("const") {
        if c != v {
            errs.push(format!("{path}: {v} != {c}"));
        }
    }
    if let Some(Value::Array(e)) = s.get("enum") {
        if !e.contains(v) {
            errs.push(format!("{path}: {v} not in {e:?}"));
        }
    }
    if let Value::Object(obj) = v {
        for r in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let k = r.as_str().unwrap_or_default();
            if !obj.contains_key(k) {
                errs.push(format!("{path}: missing {k}"));
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => validate(root, ps, val, &format!("{path}/{k}"), errs),
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errs.push(format!("{path}: unexpected key {k}"))
                }
                None => {}
            }
        }
    }
    if let Value::Array(items) = v {
        if let Some(n) = s.get("minItems").and_then(Value::as_u64) {
            if (items.len() as u64) < n {
                errs.push(format!("{path}: fewer than {n} items"));
            }
        }
        if let Some(n) = s.get("maxItems").and_then(Value::as_u64) {
            if (items.len() as u64) > n {
                errs.push(format!("{path}: more than {n} items"));
            }
        }
        if let Some(is) = s.get("items") {
            for (i, item) in items.iter().enumerate() {
                validate(root, is, item, &format!("{path}/{i}"), errs);
            }
        }
    }
}

fn errors(v: &Value) -> Vec<String> {
    let s = schema();
    let mut errs = Vec::new();
    validate(&s, &s, v, "", &mut errs);
    errs
}

fn fixture() -> Value {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-pg-async-cut-crash/run.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn the_v1_fixture_validates() {
    let errs = errors(&fixture());
    assert!(errs.is_empty(), "{errs:#?}");
}

#[test]
fn a_record_with_series_validates() {
    let mut run = firedrill_report::RunRecord::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-pg-async-cut-crash"),
    )
    .unwrap();
    run.trials[0].series = Some(firedrill_report::TrialSeries {
        bucket_s: 0.1,
        start_s: -3.0,
        ok: vec![1, 2],
        fail: vec![0, 0],
        unknown: vec![0, 1],
        p50_ms: vec![Some(1.5), None],
        p99_ms: vec![Some(4.0), None],
        lost: vec![0, 3],
    });
    let v = serde_json::to_value(&run).unwrap();
    let errs = errors(&v);
    assert!(errs.is_empty(), "{errs:#?}");
}

/// The validator is not a rubber stamp: drift is caught.
#[test]
fn drifted_records_do_not_validate() {
    let mut v = fixture();
    v["trials"][0]["rpo"]["surprise"] = Value::from(1);
    v["trials"][0]["verdict"] = Value::from("maybe");
    v["summary"]
        .as_object_mut()
        .unwrap()
        .remove("not_recovered");
    v["schema_version"] = Value::from(3);
    let errs = errors(&v);
    assert_eq!(errs.len(), 4, "{errs:#?}");
}

/// Schema 2: a data disaster's restore figures validate; an older (v1) run
/// still loads, with none.
#[test]
fn a_record_with_restore_figures_validates() {
    let mut run = firedrill_report::RunRecord::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-pg-async-cut-crash"),
    )
    .unwrap();
    assert!(run.trials[0].restore.is_none(), "a v1 run has no restore");
    run.schema_version = firedrill_report::SCHEMA_VERSION;
    run.trials[0].restore = Some(firedrill_ledger::RestoreFigures {
        target: "before_fault".into(),
        reached: true,
        detail: "recovery stopping before commit of transaction 925".into(),
        lost_before: 0,
        rolled_back: 120,
        rolled_back_span_s: Some([0.01, 7.5]),
        damaged: 400,
        damaged_left: 0,
        recovery_point_s: Some(-0.002),
        discovered_s: Some(5.0),
        fetch_s: Some(5.6),
        replay_s: Some(6.1),
        promote_s: Some(6.3),
        rto_from_discovery_s: Some(2.7),
        point: Some(firedrill_ledger::PointFigures {
            epoch: 2693106759570840833,
            index: 1535,
            acked_past: 1081,
            kept_past: 0,
            lost_at_or_before: 0,
        }),
        test: true,
        node: Some("r1".into()),
        duration_s: Some(1.3),
        action: "update_rows".into(),
        garbled: 3,
        backup_check: Some(firedrill_ledger::BackupCheck {
            command: "pgbackrest verify".into(),
            status: "ok".into(),
            detail: "archiveId: 15-1, total WAL checked: 4, total valid WAL: 4".into(),
            inventory: "pgbackrest info: status ok".into(),
            wal_gaps: vec!["000000010000000000000004".into()],
        }),
    });
    run.trials[0].faults[0].detail = Some("update_rows: xid 925, commit LSN 0/3000100".into());
    let v = serde_json::to_value(&run).unwrap();
    let errs = errors(&v);
    assert!(errs.is_empty(), "{errs:#?}");
    assert_eq!(
        v["trials"][0]["restore"]["backup_check"]["wal_gaps"][0],
        "000000010000000000000004"
    );
    v["trials"][0]["restore"]
        .as_object()
        .expect("restore is written");
}

/// A command fault's runs on its fault entry and the verify_command on the
/// trial validate (optional, within schema 2).
#[test]
fn a_record_with_commands_validates() {
    let mut run = firedrill_report::RunRecord::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-pg-async-cut-crash"),
    )
    .unwrap();
    let entry = |purpose, exit| firedrill_report::CommandEntry {
        purpose,
        program: "sh -c".into(),
        node: Some("n1".into()),
        start_s: 0.0,
        duration_s: 0.02,
        exit,
        signal: None,
        timed_out: false,
        error: None,
        output_tail: "ok\n".into(),
    };
    use firedrill_ledger::CommandPurpose as P;
    run.trials[0].faults[0].commands = vec![entry(P::Inject, Some(0)), entry(P::Heal, Some(0))];
    let mut verify = entry(P::Verify, None);
    verify.timed_out = true;
    verify.signal = Some(15);
    run.trials[0].commands = vec![verify];
    let v = serde_json::to_value(&run).unwrap();
    let errs = errors(&v);
    assert!(errs.is_empty(), "{errs:#?}");
    assert_eq!(
        v["trials"][0]["faults"][0]["commands"][1]["purpose"],
        "heal"
    );
}

/// A record completed by `report --reaudit` validates, and the summary says
/// it was re-audited; a misspelt field in it does not validate.
#[test]
fn a_reaudited_record_validates() {
    let mut run = firedrill_report::RunRecord::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-pg-async-cut-crash"),
    )
    .unwrap();
    run.reaudit = Some(firedrill_report::ReauditRecord {
        at: "2026-12-01T17:00:00Z".into(),
        died_at: "2026-12-01T16:59:00.120Z".into(),
        journaled_ops: 1000,
        unrecorded_ops: 2,
        audited: "n1".into(),
        reason: "the firedrill process died at …".into(),
    });
    let mut v = serde_json::to_value(&run).unwrap();
    let errs = errors(&v);
    assert!(errs.is_empty(), "{errs:#?}");
    assert!(firedrill_report::render_summary(&run).contains("RE-AUDITED at 2026-12-01T17:00:00Z"));
    v["reaudit"]["journaled"] = Value::from(1);
    assert_eq!(errors(&v).len(), 1);
}

/// A stream's figures (consumer group, per-home figures, MM2's reported
/// lag, the write latency before the disaster) validate, and render.
#[test]
fn a_record_with_stream_figures_validates() {
    let mut run = firedrill_report::RunRecord::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-pg-async-cut-crash"),
    )
    .unwrap();
    let t = &mut run.trials[0];
    t.consumer = Some(firedrill_ledger::ConsumerFigures {
        group: "firedrill-c-x".into(),
        settings: "commits every 1 s; MM2 emit.checkpoints.interval 1 s".into(),
        delivered: 3000,
        redelivered: 216,
        skipped: 0,
        consumer_rto_s: Some(2.13),
        notes: vec!["+1.531 s: moved to 127.0.0.1:1 with the producers".into()],
    });
    t.by_home = vec![firedrill_ledger::HomeFigures {
        home: "B".into(),
        ok: 1805,
        lost: 0,
        rpo_s: 0.0,
        rto_s: Some(0.0),
    }];
    t.latency_before = Some(firedrill_ledger::WriteLatency {
        n: 994,
        min_ms: 21.4,
        p50_ms: 47.1,
        p99_ms: 75.8,
    });
    t.rpo.reported_s = Some(4.35);
    t.rpo.reported_by = Some("MM2's heartbeats".into());
    t.capability = Some(firedrill_ledger::capability::CapabilityFigures {
        order: vec!["orders".into(), "session".into()],
        ok: 52473,
        not_whole: 4524,
        orphans: vec![firedrill_ledger::capability::Orphans {
            present_in: vec!["session".into()],
            missing_in: vec!["orders".into()],
            count: 3099,
            span_s: Some([-0.99, -0.3]),
        }],
        rpo_s: 1.0,
        rto_s: Some(1.89),
        domain_rpo_s: vec![("orders".into(), 1.0), ("session".into(), 0.3)],
        dominated_by: Some("orders".into()),
        outbox: Some(firedrill_ledger::outbox::OutboxFigures {
            consumer: "idempotent".into(),
            orders_acked: 32807,
            log_duplicates: 1658,
            delivered_twice: 1658,
            log_records: 34465,
            caught_up_s: Some(6.84),
            ..Default::default()
        }),
    });
    let dom = |name: &str| {
        let mut d: firedrill_report::DomainRecord = serde_json::from_value(serde_json::json!({
            "domain": name, "verdict": "pass", "judged": false,
            "rpo": t.rpo, "rto": t.rto, "ops": t.ops, "check": t.check,
        }))
        .unwrap();
        d.recovery = t.recovery.clone();
        d
    };
    t.domains = vec![dom("orders"), dom("session")];
    let mut v = serde_json::to_value(&run).unwrap();
    let errs = errors(&v);
    assert!(errs.is_empty(), "{errs:#?}");
    let text = firedrill_report::render_summary(&run);
    for want in [
        "consumer RTO 2.13 s; delivered 3000, redelivered 216, skipped 0",
        "home B  its producers: 1805 ok, lost 0, RPO 0.00 s, RTO 0.00 s",
        "write latency before the disaster: min 21.4 ms, p50 47.1 ms, p99 75.8 ms (994 writes)",
        "4.35 s reported by MM2's heartbeats",
        "capability  write order orders → session: 52473 operations acknowledged end to end, 4524 not whole",
        "orphans in session not in orders: 3099, acknowledged -0.99 s to -0.30 s from the disaster",
        "capability RPO 1.00 s (domains over the same operations: orders 1.00 s, session 0.30 s); orders's loss dominates",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
    v["trials"][0]["consumer"]["lag"] = Value::from(1);
    assert_eq!(errors(&v).len(), 1);
}
