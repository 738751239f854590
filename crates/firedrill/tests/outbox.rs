//! The outbox capability on real servers: PostgreSQL (sync, logical WAL),
//! Kafka with Debezium's PostgreSQL connector in a Connect worker (Maven
//! Central's jars), and a Redis projection fed by firedrill's consumer.
//! One lab for the file (examples/checkout-outbox.toml); each drill resets
//! it. Run with --nocapture for the figures.

mod common;
use common::watch::{free_port, http_get, sample, start_watch};
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

fn example() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/checkout-outbox.toml");
    let text = std::fs::read_to_string(&path).expect("example");
    text.replacen("[lab]\n", "[lab]\ndir = \"@DIR@\"\n", 1)
}

fn outbox(d: &Drill) -> &Value {
    &d.trial(0)["capability"]["outbox"]
}

fn n(d: &Drill, key: &str) -> u64 {
    outbox(d)[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no outbox.{key} in {}", d.trial(0)))
}

fn figures(what: &str, d: &Drill) {
    let rec = d.trial(0)["domains"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["domain"] == "events"))
        .map(|e| e["recovery"].clone())
        .unwrap_or(Value::Null);
    eprintln!(
        "FIGURES {what}: exit {}, outbox {}, events recovery {rec}",
        d.code,
        outbox(d)
    );
}

/// What every outbox drill on a synchronous PostgreSQL must show: no order
/// lost, every order's event in the log once the pipeline caught up, no
/// event without its order, every event applied.
fn invariants(d: &Drill) {
    assert!(d.code == 0 || d.code == 1, "exit {}: {}", d.code, d.stderr);
    assert!(
        n(d, "orders_acked") > 3_000,
        "too few orders: {}",
        outbox(d)
    );
    assert_eq!(n(d, "orders_lost"), 0, "sync replication, no node lost");
    assert_eq!(n(d, "events_lost"), 0, "orders without their event");
    assert_eq!(n(d, "events_without_order"), 0);
    assert_eq!(n(d, "not_applied"), 0);
    assert!(
        outbox(d)["caught_up_s"].as_f64().is_some(),
        "the pipeline never caught up: {}",
        outbox(d)
    );
    assert!(n(d, "log_records") >= n(d, "orders_acked"), "{}", outbox(d));
}

#[test]
fn connector_killed_and_restarted() {
    if !(pg_available() && redis_available() && kafka_available()) {
        return;
    }
    let _g = serial();
    let lab = Lab::up(&example());
    let text = std::fs::read_to_string(&lab.spec).expect("spec");

    // The negative control first: no fault, so nothing is published or
    // delivered twice. The duplicates below are the kill's.
    let kill = "[[drill.faults]]\nat = \"3s\"\naction = \"kill\"\ndomain = \"events\"\nnode = \"connect\"\ndisaster = true\n";
    assert!(text.contains(kill), "the example's kill step moved");
    let calm = lab.tmp.path().join("calm.toml");
    std::fs::write(&calm, text.replace(kill, "")).expect("write");
    let d0 = lab.drill_file(&calm, "calm");
    figures("no fault", &d0);
    invariants(&d0);
    assert_eq!(d0.code, 0, "{}", d0.stdout);
    assert_eq!(n(&d0, "log_duplicates"), 0);
    assert_eq!(n(&d0, "delivered_twice"), 0);
    assert_eq!(n(&d0, "applied_twice"), 0);

    // The worker killed 3 s in and restarted 2 s later: Debezium
    // publishes again what it had not flushed, the idempotent consumer
    // applies each event once.
    let d = lab.drill("kill-idempotent");
    figures("connector killed, idempotent consumer", &d);
    invariants(&d);
    assert_eq!(d.code, 0, "{}", d.stdout);
    assert!(n(&d, "log_duplicates") > 0, "{}", outbox(&d));
    assert!(n(&d, "delivered_twice") > 0, "{}", outbox(&d));
    assert_eq!(n(&d, "applied_twice"), 0, "{}", outbox(&d));
    assert!(d.stdout.contains("recovered by restart"), "{}", d.stdout);
    // The worker that runs now is a new process, recorded in state.json.
    let st: Value = serde_json::from_str(
        &std::fs::read_to_string(lab.lab_dir().join("events/state.json")).expect("state"),
    )
    .expect("json");
    let pid = st["sentinels"][0]["proc"]["pid"].as_i64().expect("pid");
    assert!(
        proc_state(pid).is_some(),
        "the restarted worker is not running"
    );

    // The negative control of the consumer: the same disaster with a
    // consumer that applies every delivery. The audit catches the orders
    // applied twice, and the drill fails on them.
    let careless = lab.tmp.path().join("careless.toml");
    std::fs::write(
        &careless,
        text.replace("consumer = \"idempotent\"", "consumer = \"non_idempotent\""),
    )
    .expect("write");
    let d2 = lab.drill_file(&careless, "kill-non-idempotent");
    figures("connector killed, non-idempotent consumer", &d2);
    invariants(&d2);
    assert!(n(&d2, "delivered_twice") > 0, "{}", outbox(&d2));
    assert_eq!(
        n(&d2, "applied_twice"),
        n(&d2, "delivered_twice"),
        "every redelivery applied: {}",
        outbox(&d2)
    );
    assert_eq!(d2.code, 1, "{}", d2.stdout);
    // The same figures in report.html's outbox table and in JUnit.
    let html = std::fs::read_to_string(d2.dir.join("report.html")).expect("report.html");
    let row = format!(
        "<tr><td>orders applied twice</td><td>{}</td></tr>",
        n(&d2, "applied_twice")
    );
    assert!(
        html.contains("<table class=\"outbox\">") && html.contains(&row),
        "no outbox table with {row}"
    );
    let junit = std::fs::read_to_string(d2.dir.join("junit.xml")).expect("junit.xml");
    assert!(
        junit.contains("applied twice by the non_idempotent consumer"),
        "{junit}"
    );
    assert!(
        d2.stdout
            .contains("applied twice by the non_idempotent consumer"),
        "{}",
        d2.stdout
    );

    cdc_lag_while_stopped(&lab);
}

fn member_state(lab: &Lab, member: &str) -> Value {
    let t = std::fs::read_to_string(lab.lab_dir().join(member).join("state.json")).expect("state");
    serde_json::from_str(&t).expect("json")
}

/// `firedrill watch`'s `cdc` source on the orders database: the slot's
/// lag stays under the objective while Debezium runs (it confirms at each
/// 5 s offset flush: a sawtooth), grows about a second per second once the worker is
/// stopped (SIGSTOP to its recorded pid), crosses the objective in time,
/// and falls back when the worker runs again.
fn cdc_lag_while_stopped(lab: &Lab) {
    const RPO: f64 = 10.0;
    const INTERVAL: f64 = 1.0;
    let pg = member_state(lab, "orders");
    let conninfo = |n: &str| {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            port_of(&pg, n)
        )
    };
    let file = lab.tmp.path().join("objectives.toml");
    let text = format!(
        r#"[watch]
interval = "1s"
for = "2s"

[[domain]]
name = "orders"
[domain.store]
kind = "postgres"
[[domain.store.nodes]]
name = "n1"
conninfo = "{}"
[[domain.store.nodes]]
name = "n2"
conninfo = "{}"
[domain.objectives.outbox]
rpo = "10s"
sources = ["cdc", "heartbeat"]
"#,
        conninfo("n1"),
        conninfo("n2")
    );
    std::fs::write(&file, text).expect("objectives");
    let wport = free_port();
    let _w = start_watch(&file, wport);
    let lag = || {
        let m = http_get(wport, "/metrics")?;
        sample(&m, "firedrill_exposure_seconds", &["source=\"cdc\""])
    };
    let mut healthy = Vec::new();
    let end = Instant::now() + Duration::from_secs(12);
    while Instant::now() < end {
        if let Some(l) = lag() {
            healthy.push(l);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let worst = healthy.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "FIGURES cdc lag with Debezium running: {} samples, max {worst:.2} s",
        healthy.len()
    );
    assert!(healthy.len() >= 10, "too few samples: {healthy:?}");
    assert!(worst < RPO, "CDC lag {worst} s with the connector running");

    let ev = member_state(lab, "events");
    let pid = ev["sentinels"][0]["proc"]["pid"]
        .as_i64()
        .expect("connect pid");
    let stopped = Stopped::new(pid);
    let t0 = Instant::now();
    let mut crossed = None;
    let mut last = (0.0, 0.0);
    while t0.elapsed() < Duration::from_secs(20) {
        if let Some(l) = lag() {
            let t = t0.elapsed().as_secs_f64();
            if crossed.is_none() && l > RPO {
                crossed = Some(t);
            }
            last = (t, l);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(stopped);
    let crossed = crossed.expect("the CDC lag never crossed its objective");
    eprintln!(
        "FIGURES cdc lag with the worker stopped: crossed {RPO} s {crossed:.2} s after the stop; {:.2} s at {:.2} s",
        last.1, last.0
    );
    // At the stop the lag was somewhere on its running sawtooth (at most
    // `worst`: one offset flush plus Debezium's heartbeat and the probe's
    // interval); from there it grows one second per second, read one
    // interval late at most.
    assert!(
        (RPO - worst - 2.0 * INTERVAL..=RPO + INTERVAL + 2.0).contains(&crossed),
        "crossed {RPO} s at {crossed:.2} s after the stop (running lag at most {worst:.2} s)"
    );
    assert!(
        last.1 >= last.0 - INTERVAL && last.1 <= last.0 + worst + 2.0 * INTERVAL,
        "lag {:.2} s at {:.2} s after the stop",
        last.1,
        last.0
    );
    let back = (0..60).find_map(|_| {
        std::thread::sleep(Duration::from_millis(500));
        lag().filter(|l| *l < RPO)
    });
    eprintln!("FIGURES cdc lag after the worker runs again: {back:?} s");
    assert!(
        back.is_some(),
        "the CDC lag did not fall back after SIGCONT"
    );
}

/// An outbox on a domain that is not PostgreSQL, and a `cdc` source that
/// is not: exit 2, the place in the file, nothing started.
#[test]
fn outbox_bad_input() {
    let text = example().replace("dir = \"@DIR@\"\n", "");
    check_bad_drill(
        &text.replace("source = \"orders\"\nlog", "source = \"projection\"\nlog"),
        "an outbox's source is a PostgreSQL domain",
        &[],
    );
    check_bad_drill(
        &text.replace(
            "[lab.member.cdc]\nsource = \"orders\"",
            "[lab.member.cdc]\nsource = \"projection\"",
        ),
        "an outbox needs a PostgreSQL domain",
        &[],
    );
    check_bad_drill(
        &text.replace("wal_level = \"logical\"", "wal_level = \"replica\""),
        "set wal_level = \"logical\"",
        &[],
    );
    check_bad_drill(
        &text.replace("consumer = \"idempotent\"", "consumer = \"exactly_once\""),
        "consumer is one of idempotent, non_idempotent",
        &[],
    );
    // A `cdc` in a lab of one store has no source to read: refused by
    // `lab up` itself, before any broker starts.
    let tmp = tempdir();
    let dir = tmp.path().join("lab");
    let spec = tmp.path().join("bad.toml");
    std::fs::write(
        &spec,
        format!(
            "[lab]\nname = \"k\"\nkind = \"kafka\"\ndir = \"{}\"\n\n[lab.cdc]\nsource = \"orders\"\n",
            dir.display()
        ),
    )
    .expect("write");
    let out = firedrill(&["lab", "up", spec.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "FIGURES bad input cdc in a plain lab: exit {:?}: {err}",
        out.status.code()
    );
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.toml:6:1"), "no file:line:col in {err}");
    assert!(err.contains("`cdc` reads a PostgreSQL domain"), "{err}");
    assert!(!dir.exists(), "lab up created {}", dir.display());
}
