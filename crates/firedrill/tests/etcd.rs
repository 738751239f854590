//! etcd (Raft) labs and drills against real etcd servers: a leader killed
//! under load loses no acknowledged write, and the outage is about one
//! election timeout, shorter with tuned timeouts.

mod common;
use common::*;

struct Figures {
    rtos: Vec<f64>,
    detected: Vec<f64>,
    lost: Vec<u64>,
}

/// Runs an example's leader-kill drill (5 trials) and returns its figures.
fn leader_kill(example_file: &str) -> Figures {
    let lab = Lab::up(&example(example_file));
    let d = lab.drill("run");
    let trials = d.run["trials"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(trials, 5, "five trials expected: {}", d.stderr);
    let mut f = Figures {
        rtos: Vec::new(),
        detected: Vec::new(),
        lost: Vec::new(),
    };
    for i in 0..trials {
        assert_eq!(d.u64(i, "rpo.phantoms"), 0);
        assert_eq!(d.u64(i, "rpo.zombie_lost"), 0);
        f.lost.push(d.u64(i, "rpo.lost"));
        f.rtos.push(
            d.f64(i, "rto.achieved_s")
                .unwrap_or_else(|| panic!("trial {i}: the cluster never recovered")),
        );
        f.detected
            .push(d.f64(i, "rto.phases.detected_s").unwrap_or(f64::NAN));
    }
    assert!(
        d.run["target"]
            .as_str()
            .unwrap_or_default()
            .contains("election"),
        "run.json must record the Raft timeouts in force: {}",
        d.run["target"]
    );
    eprintln!(
        "{example_file}: per-trial RTO {:?} s, median {:.2} s; detected {:?} s; lost {:?}",
        f.rtos,
        median(&f.rtos),
        f.detected,
        f.lost
    );
    f
}

#[test]
fn etcd_leader_kill_loses_nothing_and_tuned_timeouts_recover_sooner() {
    if !programs_available(&["etcd"]) {
        return;
    }
    let _g = serial();
    let default = leader_kill("etcd-leader-kill.toml");
    // The typical outage is one election timeout (1 s, randomised up to
    // 2 s) plus detection: the median must be within [0.5, 3] s. A single
    // trial may need another election round or two (a split vote between
    // the two survivors; seen twice at stop 21: 3.70 s and 4.19 s, detected
    // at 2.44 s and 4.31 s), so each trial is bounded by 6 s.
    for (i, (lost, rto)) in default.lost.iter().zip(&default.rtos).enumerate() {
        assert_eq!(*lost, 0, "trial {i}: Raft lost acknowledged writes");
        assert!(
            (0.5..=6.0).contains(rto),
            "trial {i}: RTO {rto} s with default timeouts not within [0.5, 6] s"
        );
    }
    let m = median(&default.rtos);
    assert!(
        (0.5..=3.0).contains(&m),
        "median RTO {m} s with default timeouts not within [0.5, 3] s"
    );
    let tuned = leader_kill("etcd-leader-kill-tuned.toml");
    for (i, lost) in tuned.lost.iter().enumerate() {
        assert_eq!(*lost, 0, "trial {i} (tuned): Raft lost acknowledged writes");
    }
    let (md, mt) = (median(&default.rtos), median(&tuned.rtos));
    eprintln!("median RTO: default {md:.2} s, tuned {mt:.2} s");
    assert!(
        mt < md,
        "heartbeat 50ms / election 250ms should recover sooner than 100ms / 1s: median {mt:.2} s vs {md:.2} s"
    );
}

#[test]
fn etcd_lab_status_and_reset() {
    if !programs_available(&["etcd"]) {
        return;
    }
    let _g = serial();
    let lab = Lab::up(
        r#"
[lab]
name = "etcd-status"
kind = "etcd"
dir = "@DIR@"
[lab.etcd]
members = 5
heartbeat = "50ms"
election = "500ms"
"#,
    );
    let st = lab.state();
    let nodes = st["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 5);
    let out = firedrill(&["lab", "status", lab.spec_str(), "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let roles: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|n| n["role"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        roles.iter().filter(|r| **r == "leader").count(),
        1,
        "{roles:?}"
    );
    assert_eq!(
        roles.iter().filter(|r| **r == "follower").count(),
        4,
        "{roles:?}"
    );
    // Each member's process runs with the spec's timeouts.
    let pid = nodes[0]["proc"]["pid"].as_i64().expect("pid");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let after = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    };
    assert_eq!(after("--heartbeat-interval").as_deref(), Some("50"));
    assert_eq!(after("--election-timeout").as_deref(), Some("500"));
}
