//! Redis with Sentinel, against real redis-server and redis-sentinel
//! processes: the examples in examples/redis-*.toml, run as they are (plus a
//! lab directory of the test's own). Run with --nocapture to see the
//! measured figures.

mod common;
use common::*;

/// An example with its lab in a temporary directory.
fn example(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("example");
    text.replacen("[lab]\n", "[lab]\ndir = \"@DIR@\"\n", 1)
}

fn span(d: &Drill) -> (f64, f64) {
    let s = &d.trial(0)["rpo"]["loss_span_s"];
    (
        s[0].as_f64().unwrap_or(f64::NAN),
        s[1].as_f64().unwrap_or(f64::NAN),
    )
}

fn figures(what: &str, d: &Drill) {
    let t = d.trial(0);
    eprintln!(
        "FIGURES {what}: lost {} (zombie {}) of {} ok, unknown {} survived / {} lost, \
         achieved RPO {} s, predicted {} s, loss span {:?}; RTO {} s, phases {}; detected by {}; \
         faults {}; warnings {}",
        t["rpo"]["lost"],
        t["rpo"]["zombie_lost"],
        t["ops"]["ok"],
        t["rpo"]["unknown_survived"],
        t["rpo"]["unknown_lost"],
        t["rpo"]["achieved_s"],
        t["rpo"]["predicted_s"],
        t["rpo"]["loss_span_s"],
        t["rto"]["achieved_s"],
        t["rto"]["phases"],
        t["detected"]["how"],
        t["faults"],
        t["warnings"],
    );
}

/// Master killed under load, down_after 1 s: Sentinel fails over; loss is
/// zero or a few writes (async replication on loopback); RTO 1-5 s with
/// the detected phase from Sentinel's +odown.
#[test]
fn master_kill_sentinel_fails_over() {
    if !redis_available() {
        return;
    }
    let _g = serial();
    let lab = Lab::up(&example("redis-master-kill.toml"));
    let d = lab.drill("run");
    figures("master kill", &d);
    assert!(d.code == 0 || d.code == 1, "exit {}: {}", d.code, d.stderr);
    let ok = d.u64(0, "ops.ok");
    let lost = d.u64(0, "rpo.lost");
    assert!(ok > 1000, "the workload wrote too little: {ok}");
    assert_eq!(d.u64(0, "rpo.zombie_lost"), 0);
    assert!(
        lost * 1000 <= ok,
        "lost {lost} of {ok}: more than async lag on loopback explains"
    );
    assert_eq!(d.u64(0, "rpo.phantoms"), 0);
    let rto = d.f64(0, "rto.achieved_s").expect("recovered");
    assert!((1.0..=5.0).contains(&rto), "RTO {rto} s not in 1..5 s");
    let detected = d.f64(0, "rto.phases.detected_s").expect("detected");
    let how = d.trial(0)["detected"]["how"].as_str().unwrap_or("");
    assert!(how.contains("+odown"), "detected by {how:?}, not Sentinel");
    assert!(
        (0.9..rto).contains(&detected),
        "+odown at {detected} s: before down_after, or after recovery ({rto} s)"
    );
    assert_eq!(d.trial(0)["recovery"]["action"], "automatic");
    assert_ne!(d.trial(0)["recovery"]["node"], "n1");
}

/// WAIT 1 after every write (XADD to a stream): no write WAIT confirmed is
/// lost when the master is killed.
#[test]
fn wait_acknowledged_writes_survive_master_kill() {
    if !redis_available() {
        return;
    }
    let _g = serial();
    let lab = Lab::up(&example("redis-wait-kill.toml"));
    let d = lab.drill("run");
    figures("WAIT 1 + master kill", &d);
    assert_eq!(d.code, 0, "{}", d.stdout);
    assert!(d.u64(0, "ops.ok") > 500);
    assert_eq!(d.u64(0, "rpo.lost"), 0, "a write WAIT confirmed was lost");
    assert_eq!(d.u64(0, "rpo.phantoms"), 0);
    let how = d.trial(0)["detected"]["how"].as_str().unwrap_or("");
    assert!(how.contains("+odown"), "detected by {how:?}");
}

/// The zombie master: partitioned from sentinels and replicas for 10 s
/// while its clients still write to it. With min-replicas-to-write 0 it
/// acknowledges writes that are thrown away when it rejoins, also after
/// the heal, until Sentinel converts it.
#[test]
fn partitioned_master_loses_zombie_writes() {
    if !redis_available() {
        return;
    }
    let _g = serial();
    let lab = Lab::up(&example("redis-partition-zombie.toml"));
    let d = lab.drill("run");
    figures("partition, min_replicas_to_write 0", &d);
    assert_eq!(d.code, 1, "zombie losses must fail the RPO objective");
    let zombie = d.u64(0, "rpo.zombie_lost");
    let ok = d.u64(0, "ops.ok");
    assert!(zombie > 0, "no zombie loss");
    // The clients were on the master's side: they kept writing through
    // the partition (the proxies cut peers only).
    let healed = d.trial(0)["faults"][0]["healed_s"]
        .as_f64()
        .expect("healed");
    let (first, last) = span(&d);
    assert!(first < 1.0, "loss starts at the partition, not {first}");
    assert!(
        last > healed,
        "the loss should extend past the heal ({healed} s), ends at {last} s"
    );
    // The writes acknowledged during the partition are (nearly) all lost.
    assert!(
        zombie as f64 >= 0.8 * 200.0 * 10.0,
        "only {zombie} of {ok} lost"
    );
    eprintln!(
        "FIGURES zombie: {zombie} of {ok} acknowledged writes lost; loss span {first:.2} .. {last:.2} s, \
         {:.2} s past the heal at {healed:.2} s",
        last - healed
    );
    // The old master was turned into a replica in the end: one master.
    let how = d.trial(0)["warnings"].to_string();
    assert!(how.contains("+convert-to-slave n1"), "{how}");
}

/// The same partition with min-replicas-to-write 1 and max-lag 2 s: the
/// partitioned master refuses writes after about 2 s. Bound on the loss
/// window, from Redis's own bookkeeping (replication.c): a replica acks
/// once a second, so its last ack is up to 1 s before the cut; the lag is
/// `unixtime - repl_ack_time` in whole seconds, so "lag <= 2" holds until
/// up to 3 s after that ack; and the good-replica count is refreshed by
/// the once-a-second replication cron. At most 1 + 3 + 1 = 5 s.
#[test]
fn min_replicas_bounds_the_zombie_window() {
    if !redis_available() {
        return;
    }
    let _g = serial();
    let lab = Lab::up(&example("redis-partition-min-replicas.toml"));
    let d = lab.drill("run");
    figures("partition, min_replicas_to_write 1, max lag 2s", &d);
    let lost = d.u64(0, "rpo.lost");
    let (first, last) = span(&d);
    if lost > 0 {
        assert!(
            last - first.min(0.0) <= 5.0,
            "loss window {first:.2} .. {last:.2} s is longer than Redis's 5 s bound"
        );
    }
    assert_eq!(d.u64(0, "rpo.phantoms"), 0);
    assert!(
        d.u64(0, "ops.fail") > 0,
        "the master never refused (NOREPLICAS)"
    );
    assert!(d.f64(0, "rto.achieved_s").is_some(), "never recovered");
    eprintln!("FIGURES min-replicas: lost {lost}, loss window {first:.2} .. {last:.2} s");
}

/// `redis-cli` on one lab port; its trimmed stdout.
fn redis_cli(port: u64, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .env_remove("REDISCLI_AUTH")
        .output()
        .expect("redis-cli (redis-tools)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// No steady state, no fault: a master that refuses every workload write
/// (an ACL that lets the default user touch only heartbeat keys, so the
/// target's setup and heartbeat still work) fails the drill before its
/// kill fires. Exit 3 (preflight), the reason named, and the
/// master still running and still master. The control is the same lab once
/// writes are allowed again: the drill kills it.
#[test]
fn no_acknowledged_write_means_no_fault() {
    if !redis_available() {
        return;
    }
    let _g = serial();
    let lab = Lab::up(&example("redis-master-kill.toml"));
    let port = port_of(&lab.state(), "n1");
    let acl = |keys: &str| redis_cli(port, &["ACL", "SETUSER", "default", "resetkeys", keys]);
    assert_eq!(acl("~fd:*:hb"), "OK");
    let started = std::time::Instant::now();
    let d = lab.drill("refused");
    assert_eq!(d.code, 3, "exit {}: {}", d.code, d.stderr);
    assert!(
        d.stderr.contains("no write acknowledged") && d.stderr.contains("not taking writes"),
        "reason not named: {}",
        d.stderr
    );
    assert!(
        started.elapsed().as_secs() < 60,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(redis_cli(port, &["PING"]), "PONG", "n1 was hit");
    assert!(
        redis_cli(port, &["ROLE"]).starts_with("master"),
        "n1 is no longer master"
    );

    // Control: writes allowed, the same drill fires its kill.
    assert_eq!(acl("allkeys"), "OK");
    let d = lab.drill("control");
    assert!(d.code == 0 || d.code == 1, "exit {}: {}", d.code, d.stderr);
    assert!(d.u64(0, "ops.ok") > 1000);
    assert_ne!(redis_cli(port, &["PING"]), "PONG", "n1 was not killed");
}
