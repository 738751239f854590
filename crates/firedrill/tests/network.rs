//! Network faults through the lab's fault proxies, against real PostgreSQL:
//! the ground truth of the network-faults issue.

mod common;
use common::*;

fn proxied(name: &str, faults: &str, recovery: &str, rpo: &str) -> String {
    format!(
        r#"
[lab]
name = "{name}"
dir = "@DIR@"
standbys = 1
replication = "async"
links = "proxied"

[drill]
name = "{name}"
[drill.workload]
clients = 4
op_timeout = "1s"
warmup = "1s"
duration = "7s"
{faults}
{recovery}
[drill.slo]
stable_for = "2s"
recovery_timeout = "20s"
[drill.objectives]
rpo = "{rpo}"
rto = "30s"
"#
    )
}

const LATENCY_300: &str = r#"
[[drill.faults]]
at = "1s"
action = "latency"
node = "n2"
link = "replication"
latency = "300ms"
"#;

/// 300 ms on the replication link, then a region loss: the primary dies and
/// its link is cut at the same instant, so the WAL in flight is lost.
#[test]
fn latency_then_region_loss_loses_the_latency() {
    if !pg_available() {
        return;
    }
    let _g = serial();
    let faults = LATENCY_300.to_string()
        + r#"
[[drill.faults]]
at = "4s"
action = "partition"
node = "n2"
link = "replication"
[[drill.faults]]
at = "4s"
action = "kill"
node = "primary"
disaster = true
"#;
    let lab = Lab::up(&proxied(
        "region-loss",
        &faults,
        "[drill.recovery]\npromote = \"n2\"\ndelay = \"1s\"",
        "5s",
    ));
    let d = lab.drill("run");
    // A kill reaches every backend (each calls setsid, so the postmaster's
    // group alone missed them and they acknowledged a few writes after the
    // crash: CI saw 3 and 4 "zombie" writes). No zombie is tolerated.
    assert_eq!(d.code, 0, "{}{}", d.stdout, d.stderr);
    assert_eq!(d.u64(0, "rpo.zombie_lost"), 0);
    let predicted = d.f64(0, "rpo.predicted_s").expect("predicted");
    let achieved = d.f64(0, "rpo.achieved_s").expect("achieved");
    assert!(
        (predicted - 0.3).abs() <= 0.15,
        "predicted RPO {predicted} should be about the 300 ms latency"
    );
    assert!(
        (achieved - 0.3).abs() <= 0.15,
        "achieved RPO {achieved} not within 0.3 ± 0.15"
    );
    assert!(d.u64(0, "rpo.lost") > 0);
}

/// The same latency, but only the primary dies: the link stays up and
/// delivers the WAL in flight, as a real WAN would, so (promoting after the
/// in-flight bytes arrived) almost nothing is lost.
#[test]
fn latency_then_kill_alone_delivers_the_bytes_in_flight() {
    if !pg_available() {
        return;
    }
    let _g = serial();
    let faults = LATENCY_300.to_string()
        + r#"
[[drill.faults]]
at = "4s"
action = "kill"
node = "primary"
"#;
    let lab = Lab::up(&proxied(
        "kill-alone",
        &faults,
        "[drill.recovery]\npromote = \"n2\"\ndelay = \"1s\"",
        "5s",
    ));
    let d = lab.drill("run");
    assert_eq!(d.code, 0, "{}", d.stderr);
    let predicted = d.f64(0, "rpo.predicted_s").expect("predicted");
    let achieved = d.f64(0, "rpo.achieved_s").expect("achieved");
    assert!((predicted - 0.3).abs() <= 0.15, "predicted RPO {predicted}");
    assert!(
        achieved < 0.1,
        "the bytes in flight reach the standby before promotion; achieved {achieved}"
    );
}

/// The replication link partitioned for D = 3 s, then the primary killed.
#[test]
fn replication_partition_then_kill_loses_d() {
    if !pg_available() {
        return;
    }
    let _g = serial();
    let faults = r#"
[[drill.faults]]
at = "1s"
action = "partition"
node = "n2"
link = "replication"
[[drill.faults]]
at = "4s"
action = "kill"
node = "primary"
"#;
    let lab = Lab::up(&proxied(
        "link-partition",
        faults,
        "[drill.recovery]\npromote = \"n2\"",
        "5s",
    ));
    let d = lab.drill("run");
    assert_eq!(d.code, 0, "{}", d.stderr);
    let achieved = d.f64(0, "rpo.achieved_s").expect("achieved");
    assert!(
        (achieved - 3.0).abs() <= 0.3,
        "achieved RPO {achieved} not within 3 ± 0.3"
    );
    let predicted = d.f64(0, "rpo.predicted_s").expect("predicted");
    assert!(
        (predicted - achieved).abs() <= 0.5,
        "predicted {predicted} vs achieved {achieved}"
    );
}

/// The primary partitioned from its clients only: an outage with an RTO,
/// and no acknowledged write lost.
#[test]
fn client_partition_costs_time_not_data() {
    if !pg_available() {
        return;
    }
    let _g = serial();
    let faults = r#"
[[drill.faults]]
at = "1s"
action = "partition"
node = "primary"
link = "clients"
for = "3s"
"#;
    let lab = Lab::up(&proxied("client-partition", faults, "", "0s"));
    let d = lab.drill("run");
    assert_eq!(d.code, 0, "{}", d.stderr);
    assert_eq!(d.u64(0, "rpo.lost"), 0);
    let rto = d
        .f64(0, "rto.achieved_s")
        .expect("the service recovers once the partition heals");
    assert!(
        (2.5..=6.0).contains(&rto),
        "RTO {rto} should be about the 3 s partition"
    );
    let status = firedrill(&["lab", "status", lab.spec_str()]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("n1-clients") && text.contains("n2-replication"),
        "lab status shows the links:\n{text}"
    );
    assert!(
        text.contains("from n1 via proxy n2-replication"),
        "a proxied standby streams from its primary through its link:\n{text}"
    );
}

/// A network fault heals when the drill is interrupted: the toxics are gone
/// from the proxy afterwards.
#[test]
fn interrupted_drill_removes_its_toxics() {
    if !pg_available() {
        return;
    }
    let _g = serial();
    let faults = r#"
[[drill.faults]]
at = "1s"
action = "latency"
node = "n2"
latency = "200ms"
for = "60s"
"#;
    let lab = Lab::up(
        &proxied("interrupt-net", faults, "", "5s")
            .replace("duration = \"7s\"", "duration = \"60s\""),
    );
    let mut drilling = start_drill(&lab);
    let child = &mut drilling.0;
    wait_injected(&lab.run_dir("run"), 1);
    let status = firedrill(&["lab", "status", lab.spec_str()]);
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        text.contains("latency downstream"),
        "the toxic is in place:\n{text}"
    );
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(3));
    let status = firedrill(&["lab", "status", lab.spec_str()]);
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        !text.contains("latency"),
        "every toxic is removed after Ctrl-C:\n{text}"
    );
}

/// Against explicit endpoints (the user's own store), firedrill embeds its
/// proxy between its clients and each node: the primary cut off from its
/// clients costs time, not data, and nothing of the store is rerouted.
#[test]
fn endpoints_client_partition_through_the_embedded_proxy() {
    if !pg_available() {
        return;
    }
    let _g = serial();
    let lab = Lab::up(
        r#"
[lab]
name = "endpoints-net"
dir = "@DIR@"
standbys = 1
"#,
    );
    let state = lab.state();
    let conninfo = |name: &str| {
        state["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .unwrap()["conninfo"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let spec = format!(
        r#"
[drill]
name = "endpoints-net"
[drill.target]
nodes = [
  {{ name = "db1", conninfo = "{c1}" }},
  {{ name = "db2", conninfo = "{c2}" }},
]
[drill.workload]
clients = 4
warmup = "1s"
duration = "6s"
[[drill.faults]]
at = "1s"
action = "partition"
node = "primary"
link = "clients"
for = "3s"
[drill.slo]
stable_for = "2s"
recovery_timeout = "20s"
[drill.objectives]
rpo = "0s"
rto = "30s"
"#,
        c1 = conninfo("n1"),
        c2 = conninfo("n2"),
    );
    let path = lab.tmp.path().join("endpoints-net.toml");
    std::fs::write(&path, spec).unwrap();
    let out_dir = lab.run_dir("run-endpoints-net");
    let out = firedrill(&[
        "drill",
        path.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("run.json")).unwrap()).unwrap();
    let t = &run["trials"][0];
    assert_eq!(t["rpo"]["lost"], 0);
    let rto = t["rto"]["achieved_s"]
        .as_f64()
        .expect("recovered after the heal");
    assert!(
        (2.5..=6.0).contains(&rto),
        "RTO {rto} should be about the 3 s partition"
    );
    assert_eq!(t["faults"][0]["node"], "db1");
    assert!(
        t["faults"][0]["healed_s"].is_number(),
        "the partition healed"
    );
    // The store itself was never rerouted: n2 still streams from n1 directly.
    let psql = std::path::Path::new(state["bin_dir"].as_str().unwrap()).join("psql");
    let n1 = state["nodes"][0]["port"].to_string();
    let q = std::process::Command::new(psql)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &n1,
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-Atc",
        ])
        .arg("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&q.stdout).trim(), "1");
}

/// Explicit endpoints allow only the clients' link: the embedded proxy
/// cannot reroute the store's replication.
#[test]
fn endpoints_refuse_replication_link_faults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[drill]
name = "bad"
[drill.target]
nodes = [{ name = "db1", conninfo = "host=127.0.0.1 port=1" }]
[drill.workload]
duration = "1s"
[[drill.faults]]
at = "1s"
action = "partition"
node = "db1"
"#,
    )
    .unwrap();
    let out = firedrill(&["drill", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("needs link = \"clients\""), "{err}");
    assert!(err.contains("bad.toml:10:10:"), "{err}");
}
