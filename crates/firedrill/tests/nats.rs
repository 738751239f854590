//! NATS JetStream labs and drills against real nats-server processes: the
//! stream leader killed under load loses no acknowledged message, and the
//! cluster recovers once the surviving replicas elect a new leader.

mod common;
use common::*;
use std::path::Path;

/// nats-server is installed: on PATH, or in /usr/sbin where Debian puts it
/// (which `programs_available` does not look in). Under CI=true a missing
/// server fails the test instead of skipping it.
fn nats_available() -> bool {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("nats-server").is_file()))
        .unwrap_or(false);
    if on_path || Path::new("/usr/sbin/nats-server").is_file() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "nats-server missing (CI=true: this is a failure, not a skip; scripts/install-deps.sh installs it)"
        );
    }
    eprintln!("skipping: nats-server not installed");
    false
}

#[test]
fn nats_stream_leader_kill_loses_nothing_and_recovers() {
    if !nats_available() {
        return;
    }
    let _g = serial();
    // One lab for the file; the drill resets it between trials.
    let lab = Lab::up(&example("nats-leader-kill.toml"));
    let d = lab.drill("run");
    let trials = d.run["trials"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(trials, 3, "three trials expected: {}", d.stderr);
    let mut rtos = Vec::new();
    for i in 0..trials {
        let t = d.trial(i);
        let rto = d.f64(i, "rto.achieved_s");
        eprintln!(
            "trial {i}: killed {} | acknowledged {} fail {} unknown {} | lost {} zombie_lost {} phantoms {} unknown_survived {} fail_survived {} | RTO {:?} s | phases impact {:?} detected {:?} first_write {:?} recovered {:?} s | verdict {}",
            t["faults"][0]["node"],
            d.u64(i, "ops.ok"),
            d.u64(i, "ops.fail"),
            d.u64(i, "ops.unknown"),
            d.u64(i, "rpo.lost"),
            d.u64(i, "rpo.zombie_lost"),
            d.u64(i, "rpo.phantoms"),
            d.u64(i, "rpo.unknown_survived"),
            d.u64(i, "rpo.fail_survived"),
            rto,
            d.f64(i, "rto.phases.impact_s"),
            d.f64(i, "rto.phases.detected_s"),
            d.f64(i, "rto.phases.first_write_s"),
            d.f64(i, "rto.phases.recovered_s"),
            t["verdict"],
        );
        assert!(d.u64(i, "ops.ok") > 0, "trial {i}: nothing acknowledged");
        assert_eq!(
            d.u64(i, "rpo.lost"),
            0,
            "trial {i}: JetStream lost acknowledged messages"
        );
        assert_eq!(d.u64(i, "rpo.zombie_lost"), 0, "trial {i}");
        assert_eq!(d.u64(i, "rpo.phantoms"), 0, "trial {i}");
        rtos.push(rto.unwrap_or_else(|| panic!("trial {i}: the cluster never recovered")));
    }
    assert!(
        d.run["target"]
            .as_str()
            .unwrap_or_default()
            .contains("replicas"),
        "run.json must record the stream replicas in force: {}",
        d.run["target"]
    );
    eprintln!(
        "nats-leader-kill: per-trial RTO {rtos:?} s, median {:.2} s",
        median(&rtos)
    );
}
