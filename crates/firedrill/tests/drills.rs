//! The ground-truth drills of DESIGN.md, against real PostgreSQL servers.

mod common;
use common::*;

fn lab(name: &str, replication: &str) -> String {
    format!(
        r#"
[lab]
name = "{name}"
dir = "@DIR@"
standbys = 1
replication = "{replication}"
"#
    )
}

/// The replication cut drill: the standby stops receiving WAL at +1 s,
/// writes go on for D = 2 s, then the primary is killed and n2 promoted.
fn cut_then_kill(name: &str, replication: &str, rpo: &str) -> String {
    lab(name, replication)
        + &format!(
            r#"
[drill]
name = "{name}"
[drill.workload]
mode = "closed"
clients = 4
op_timeout = "1s"
warmup = "1s"
duration = "6s"
[[drill.faults]]
at = "1s"
action = "cut_replication"
node = "n2"
[[drill.faults]]
at = "3s"
action = "kill"
node = "primary"
[drill.recovery]
promote = "n2"
[drill.slo]
stable_for = "2s"
recovery_timeout = "20s"
[drill.objectives]
rpo = "{rpo}"
rto = "30s"
"#
        )
}

#[test]
fn async_replication_cut_loses_the_window() {
    if !pg_available() {
        return;
    }
    let _g = serial();
    let lab = Lab::up(&cut_then_kill("cut-async", "async", "5s"));
    let d = lab.drill("run");
    assert_eq!(d.code, 0, "objective rpo 5s should pass: {}", d.stderr);
    let lost = d.u64(0, "rpo.lost");
    let achieved = d.f64(0, "rpo.achieved_s").expect("achieved");
    let predicted = d.f64(0, "rpo.predicted_s").expect("predicted");
    assert!(lost > 0, "an async standby cut for 2 s must lose writes");
    assert!(
        (achieved - 2.0).abs() <= 0.3,
        "achieved RPO {achieved} not within 2.0 ± 0.3"
    );
    assert!(
        (predicted - achieved).abs() <= 0.5,
        "predicted {predicted} vs achieved {achieved}"
    );
    assert_eq!(d.u64(0, "rpo.zombie_lost"), 0);
    assert_eq!(d.u64(0, "rpo.phantoms"), 0);
    assert_eq!(d.u64(0, "rpo.duplicates"), 0);
    assert!(
        d.f64(0, "rto.achieved_s").is_some(),
        "n2 was promoted: the service recovered"
    );
    assert_eq!(d.run["verdict"], "pass");
    // The saved run re-renders without the store.
    let r = firedrill(&["report", d.dir.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&r.stdout).contains("pass")
            || String::from_utf8_lossy(&r.stdout).contains("PASS")
    );
    assert!(d.dir.join("events.jsonl").exists());
}

#[test]
fn sync_replication_cut_loses_nothing_and_stalls_writes() {
    if !pg_available() {
        return;
    }
    let _g = serial();
    let lab = Lab::up(&cut_then_kill("cut-sync", "sync", "0s"));
    let d = lab.drill("run");
    assert_eq!(
        d.code, 0,
        "rpo 0 must be met with sync replication: {}",
        d.stderr
    );
    assert_eq!(d.u64(0, "rpo.lost"), 0);
    assert_eq!(d.u64(0, "rpo.zombie_lost"), 0);
    let rto = d
        .f64(0, "rto.achieved_s")
        .expect("the promoted standby accepts writes: RTO is measured");
    // Writes stall from the cut, 2 s before the crash: the incident starts there.
    let incident = d.f64(0, "rto.incident_s").expect("incident");
    assert!(
        incident <= -1.5,
        "outage should begin at the cut, got {incident}"
    );
    assert!(
        rto >= 2.0,
        "RTO counts the stall before the crash, got {rto}"
    );
    let stalled_ok: u64 = d.trial(0)["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .filter(|b| {
            let s = b["start_s"].as_f64().unwrap_or(0.0);
            (-1.8..=-0.2).contains(&s)
        })
        .map(|b| b["ok"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        stalled_ok, 0,
        "no write may be acknowledged while the sync standby is cut"
    );
    assert!(
        d.stdout.contains("outage began"),
        "the summary must show the stall:\n{}",
        d.stdout
    );
}

#[test]
fn standby_killed_costs_nothing() {
    if !pg_available() {
        return;
    }
    let _g = serial();
    let spec = lab("standby-kill", "async")
        + r#"
[drill]
name = "standby-kill"
trials = 2
[drill.workload]
clients = 4
warmup = "1s"
duration = "4s"
[[drill.faults]]
at = "1s"
action = "kill"
node = "standby"
[drill.slo]
stable_for = "2s"
recovery_timeout = "10s"
[drill.objectives]
rpo = "0s"
rto = "1s"
"#;
    let lab = Lab::up(&spec);
    let d = lab.drill("run");
    assert_eq!(d.code, 0, "{}", d.stderr);
    for t in 0..2 {
        assert_eq!(d.u64(t, "rpo.lost"), 0);
        assert_eq!(
            d.f64(t, "rto.achieved_s"),
            Some(0.0),
            "trial {t}: writes never stopped"
        );
        assert!(d.u64(t, "ops.ok") > 100);
    }
    // The lab was rebuilt between trials: both trials found a standby to kill.
    assert_eq!(d.run["trials"].as_array().map(|a| a.len()), Some(2));
    assert!(
        d.stdout.contains("p50"),
        "cross-trial table expected:\n{}",
        d.stdout
    );
}

#[test]
fn no_recovery_fails_the_rto() {
    if !pg_available() {
        return;
    }
    let _g = serial();
    let spec = lab("no-recovery", "async")
        + r#"
[drill]
name = "no-recovery"
[drill.workload]
clients = 2
warmup = "1s"
duration = "3s"
[[drill.faults]]
at = "1s"
action = "kill"
node = "primary"
[drill.slo]
stable_for = "1s"
recovery_timeout = "5s"
[drill.objectives]
rpo = "5s"
rto = "1m"
"#;
    let lab = Lab::up(&spec);
    let d = lab.drill("run");
    assert_eq!(d.code, 1, "a service that never recovers violates its RTO");
    assert_eq!(d.run["verdict"], "fail");
    assert!(
        d.trial(0)["rto"]["achieved_s"].is_null(),
        "rto must be null: {}",
        d.trial(0)["rto"]
    );
}

#[test]
fn pausing_the_standby_loses_nothing() {
    // DESIGN.md: a SIGSTOPped standby keeps what is in its socket buffers
    // and replays it on promotion. A low open-loop rate keeps the backlog
    // within the buffers.
    if !pg_available() {
        return;
    }
    let _g = serial();
    let spec = lab("pause", "async")
        + r#"
[drill]
name = "pause"
[drill.workload]
mode = "rate"
rate = 50
max_in_flight = 8
warmup = "1s"
duration = "6s"
[[drill.faults]]
at = "1s"
action = "pause"
node = "n2"
[[drill.faults]]
at = "3s"
action = "kill"
node = "primary"
disaster = true
[[drill.faults]]
at = "3500ms"
action = "resume"
node = "n2"
[drill.recovery]
promote = "n2"
delay = "1s"
[drill.slo]
stable_for = "2s"
recovery_timeout = "20s"
[drill.objectives]
rpo = "1s"
rto = "30s"
"#;
    let lab = Lab::up(&spec);
    let d = lab.drill("run");
    // The standby was frozen for 2 s before the crash, yet nothing
    // acknowledged during those 2 s is lost: at most the writes racing the
    // crash itself (the async window of a few ms), as without any pause.
    // Compare the replication cut above: RPO ≈ 2 s.
    let achieved = d.f64(0, "rpo.achieved_s").expect("achieved");
    assert!(
        achieved < 0.1,
        "buffered WAL is replayed on promotion; achieved RPO {achieved}"
    );
    if let Some(span) = d.trial(0)["rpo"]["loss_span_s"].as_array() {
        let first = span[0].as_f64().unwrap_or(-99.0);
        assert!(
            first > -0.1,
            "a write acknowledged {first} s before the crash was lost"
        );
    }
    assert!(d.u64(0, "ops.ok") > 100);
    assert_eq!(d.u64(0, "rpo.zombie_lost"), 0);
    assert_eq!(d.code, 0, "{}", d.stderr);
}

/// Explicit endpoints, as for a user's own servers: a conninfo per node,
/// the data directory for process faults, the user's own failover command.
/// A fast shutdown of an async primary loses nothing: PostgreSQL sends all
/// WAL to connected standbys before it exits.
#[test]
fn endpoints_stop_and_command_failover() {
    if !pg_available() {
        return;
    }
    let _g = serial();
    let lab = Lab::up(&lab("endpoints", "async"));
    let state = lab.state();
    let node = |name: &str| {
        state["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .unwrap()
            .clone()
    };
    let (n1, n2) = (node("n1"), node("n2"));
    let psql = std::path::Path::new(state["bin_dir"].as_str().unwrap()).join("psql");
    let spec = format!(
        r#"
[drill]
name = "endpoints"
[drill.target]
nodes = [
  {{ name = "db1", conninfo = "{c1}", data_dir = "{d1}" }},
  {{ name = "db2", conninfo = "{c2}", data_dir = "{d2}" }},
]
[drill.workload]
clients = 2
warmup = "1s"
duration = "4s"
[[drill.faults]]
at = "1s"
action = "stop"
node = "primary"
[drill.recovery]
command = "{psql} -h 127.0.0.1 -p {p2} -U postgres -d postgres -Atc 'SELECT pg_promote()' && test \"$FIREDRILL_FAILED_NODE\" = db1"
[drill.slo]
stable_for = "2s"
recovery_timeout = "20s"
[drill.objectives]
rpo = "0s"
rto = "30s"
"#,
        c1 = n1["conninfo"].as_str().unwrap(),
        c2 = n2["conninfo"].as_str().unwrap(),
        d1 = n1["data_dir"].as_str().unwrap(),
        d2 = n2["data_dir"].as_str().unwrap(),
        p2 = n2["port"],
        psql = psql.display(),
    );
    let path = lab.tmp.path().join("endpoints.toml");
    std::fs::write(&path, spec).unwrap();
    let out_dir = lab.run_dir("run-endpoints");
    let out = firedrill(&[
        "drill",
        path.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("run.json")).unwrap()).unwrap();
    let t = &run["trials"][0];
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(t["rpo"]["lost"], 0, "a fast shutdown ships all WAL first");
    assert!(
        t["rto"]["achieved_s"].as_f64().is_some(),
        "the command promoted db2"
    );
    assert_eq!(
        t["faults"][0]["node"], "db1",
        "role primary resolved to db1"
    );
    assert_eq!(t["recovery"]["action"], "command");
    assert!(run["target"].as_str().unwrap().contains("endpoints"));
}

#[test]
fn drill_with_lab_starts_and_stops_the_lab() {
    if !pg_available() {
        return;
    }
    let _g = serial();
    let tmp = tempdir();
    let dir = tmp.path().join("lab");
    let spec = tmp.path().join("drill.toml");
    let text = lab("with-lab", "async").replace("@DIR@", &dir.display().to_string())
        + r#"
[drill]
name = "with-lab"
[drill.workload]
clients = 2
warmup = "1s"
duration = "3s"
[[drill.faults]]
at = "1s"
action = "kill"
node = "standby"
[drill.slo]
stable_for = "1s"
[drill.objectives]
rpo = "5s"
rto = "1m"
"#;
    std::fs::write(&spec, text).expect("write spec");
    let spec_s = spec.to_str().expect("utf-8");
    let run = tmp.path().join("run");
    // Negative control: without --lab the drill refuses a lab that is not up.
    let out = firedrill(&["drill", spec_s, "--out", run.to_str().expect("utf-8")]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not up"));
    assert!(!dir.exists(), "nothing may be started without --lab");
    // With --lab: the lab comes up, the drill runs, the lab goes down.
    let out = firedrill(&[
        "drill",
        spec_s,
        "--lab",
        "--out",
        run.to_str().expect("utf-8"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "a standby kill meets its objectives"
    );
    assert!(stdout.contains("lab with-lab is up"), "{stdout}");
    assert!(run.join("run.json").is_file(), "the drill ran");
    assert!(!dir.exists(), "--lab takes the lab it started down again");
}
