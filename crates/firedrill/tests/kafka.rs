//! Kafka (KRaft), against real brokers started from the Maven Central jars
//! (scripts/install-deps.sh): the examples in examples/kafka-*.toml, run as
//! they are with a lab directory of the test's own. Each drill resets its
//! lab between trials. Run with --nocapture to see the measured figures.

mod common;
use common::*;

fn figures(what: &str, d: &Drill, i: usize) {
    let t = d.trial(i);
    eprintln!(
        "FIGURES {what} (trial {}): lost {} (zombie {}) of {} ok, fail {}, unknown {} survived / {} lost, \
         duplicates {}, achieved RPO {} s, predicted {} s, loss span {}; RTO {} s, phases {}; detected by {}",
        i + 1,
        t["rpo"]["lost"],
        t["rpo"]["zombie_lost"],
        t["ops"]["ok"],
        t["ops"]["fail"],
        t["rpo"]["unknown_survived"],
        t["rpo"]["unknown_lost"],
        t["rpo"]["duplicates"],
        t["rpo"]["achieved_s"],
        t["rpo"]["predicted_s"],
        t["rpo"]["loss_span_s"],
        t["rto"]["achieved_s"],
        t["rto"]["phases"],
        t["detected"]["how"],
    );
}

/// acks=all, min.insync.replicas=2, RF 3, unclean off: the partition-0
/// leader killed under load, 3 trials, lost 0 each; then a 2 s session
/// timeout instead of 6 s gives a lower median RTO, and the run records
/// the settings.
#[test]
fn leader_kill_durable_settings_lose_nothing() {
    if !kafka_available() {
        return;
    }
    let _g = serial();
    let mut medians = Vec::new();
    for ex in [
        "kafka-leader-kill.toml",
        "kafka-leader-kill-fast-session.toml",
    ] {
        // Two trials of the example's three: the session timeouts differ by
        // 4 s, far more than trials differ, and the suite's time is bounded.
        let text = example(ex);
        assert!(text.contains("trials = 3"), "{ex} changed its trials");
        let lab = Lab::up(&text.replace("trials = 3", "trials = 2"));
        let d = lab.drill("run");
        let mut rtos = Vec::new();
        for i in 0..2 {
            figures(ex, &d, i);
            assert_eq!(
                d.u64(i, "rpo.lost"),
                0,
                "{ex} trial {}: lost acknowledged records",
                i + 1
            );
            assert_eq!(d.u64(i, "rpo.phantoms"), 0);
            assert!(
                d.u64(i, "ops.ok") > 500,
                "{ex}: the workload wrote too little"
            );
            rtos.push(d.f64(i, "rto.achieved_s").expect("recovered"));
            assert!(
                d.f64(i, "rto.phases.detected_s").is_some(),
                "no detected phase"
            );
        }
        let settings = d.run.to_string();
        let want = if ex.contains("fast") {
            "broker.session.timeout 2s"
        } else {
            "broker.session.timeout 6s"
        };
        assert!(
            settings.contains(want),
            "{ex}: the run does not record {want:?}"
        );
        let m = median(&rtos);
        eprintln!("FIGURES {ex}: RTOs {rtos:?}, median {m:.2} s");
        medians.push(m);
    }
    assert!(
        medians[1] < medians[0],
        "session timeout 2 s median RTO {:.2} s is not below 6 s's {:.2} s",
        medians[1],
        medians[0]
    );
}

/// The zombie leader with unclean election on, then off: cut from its
/// followers for D = 5 s while its clients reach it, then killed. Then
/// Jepsen 2013: acks=all with min.insync.replicas=1 loses acknowledged
/// records when the ISR shrinks to the leader and the leader dies; with 2
/// the same schedule gives `fail` outcomes and loses nothing.
///
/// One test: the unclean zombie and the Jepsen schedule run on one lab
/// (their examples' labs are the same but for the name; the lab is reset
/// between drills), and the JVMs start once instead of twice.
#[test]
fn unclean_election_and_jepsen_isr_shrink() {
    if !kafka_available() {
        return;
    }
    let _g = serial();
    let unclean = example("kafka-unclean-zombie.toml");
    let jepsen = example("kafka-jepsen-isr.toml");
    let lab_of =
        |t: &str| t[..t.find("[drill]").expect("[drill]")].replace("kafka-jepsen", "kafka-unclean");
    assert_eq!(
        lab_of(&unclean)
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect::<Vec<_>>(),
        lab_of(&jepsen)
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect::<Vec<_>>(),
        "the two examples no longer share their lab"
    );
    let lab = Lab::up(&unclean);
    let d = lab.drill("run");
    figures("unclean on", &d, 0);
    assert!(d.u64(0, "rpo.lost") > 0, "unclean election lost nothing");
    let rpo = d.f64(0, "rpo.achieved_s").expect("achieved RPO");
    assert!(
        (4.0..=6.0).contains(&rpo),
        "achieved RPO {rpo} s not within D = 5 s ± 1 s"
    );
    let dir = lab.lab_dir().display().to_string();
    std::fs::write(
        &lab.spec,
        jepsen
            .replace("name = \"kafka-jepsen\"", "name = \"kafka-unclean\"")
            .replace("@DIR@", &dir),
    )
    .expect("spec");
    let d = lab.drill("jepsen");
    figures("jepsen min.insync 1", &d, 0);
    assert!(
        d.u64(0, "rpo.lost") > 0,
        "min.insync.replicas=1 lost nothing"
    );
    drop(lab);
    let lab = Lab::up(&example("kafka-clean-zombie.toml"));
    let d = lab.drill("run");
    figures("unclean off", &d, 0);
    assert_eq!(
        d.code, 1,
        "an offline partition must fail the RTO objective"
    );
    assert_eq!(
        d.u64(0, "rpo.lost"),
        0,
        "clean election lost acknowledged records"
    );
    assert!(d.f64(0, "rto.achieved_s").is_none(), "RTO should be null");
    drop(lab);
    let lab = Lab::up(&example("kafka-jepsen-isr-min2.toml"));
    let d = lab.drill("run");
    figures("jepsen min.insync 2", &d, 0);
    assert_eq!(d.u64(0, "rpo.lost"), 0);
    assert!(
        d.u64(0, "ops.fail") > 0,
        "no NOT_ENOUGH_REPLICAS fail outcomes"
    );
}

/// A whole zone killed at one instant. 5 combined broker+controller nodes
/// over 3 zones, z2's two killed: 3 of 5 voters stay, the ISR elsewhere
/// has every acknowledged record: lost 0, recovered. Then 2 zones, where
/// the larger one is the quorum.
#[test]
fn zone_loss() {
    if !kafka_available() {
        return;
    }
    let _g = serial();
    let ex = "kafka-zone-loss.toml";
    let lab = Lab::up(&example(ex));
    let d = lab.drill("run");
    figures("zone loss, 5 nodes in 3 zones", &d, 0);
    // Both are injected at once: the records come in completion order.
    let mut hit: Vec<String> = d.trial(0)["faults"]
        .as_array()
        .map(|fs| fs.iter().map(|f| f["node"].to_string()).collect())
        .unwrap_or_default();
    hit.sort();
    assert_eq!(hit, ["\"k2\"", "\"k5\""], "{ex}: zone z2 is k2 and k5");
    assert_eq!(d.code, 0, "{ex}: exit {}", d.code);
    assert_eq!(d.u64(0, "rpo.lost"), 0, "{ex}: lost acknowledged records");
    assert_eq!(d.u64(0, "rpo.phantoms"), 0);
    assert!(
        d.u64(0, "ops.ok") > 200,
        "{ex}: the workload wrote too little"
    );
    let rto = d
        .f64(0, "rto.achieved_s")
        .expect("3 zones: recovered (RTO not null)");
    eprintln!("FIGURES {ex}: RTO {rto:.2} s");
    drop(lab);

    // 2 zones only: the larger one holds 2 of the 3 voters. Nothing is
    // lost (acks=all: the dead brokers' logs have every acknowledged
    // record, audited from disk), but nothing recovers: RTO null, exit 1,
    // and the verdict names the lost quorum.
    let ex = "kafka-zone-loss-2-zones.toml";
    let lab = Lab::up(&example(ex));
    let d = lab.drill("run");
    figures("zone loss, 2 zones", &d, 0);
    assert_eq!(d.code, 1, "{ex}: exit {}: {}", d.code, d.stderr);
    assert_eq!(d.f64(0, "rto.achieved_s"), None, "{ex}: it recovered");
    assert_eq!(d.u64(0, "rpo.lost"), 0, "{ex}: lost acknowledged records");
    assert_eq!(d.u64(0, "rpo.phantoms"), 0);
    assert!(
        // Writes stall at the kill 1 s after warmup: a loaded machine gets
        // few in before it; what matters is that some were acknowledged.
        d.u64(0, "ops.ok") > 10,
        "{ex}: the workload wrote too little"
    );
    let why = d.trial(0)["check"]["reasons"].to_string();
    assert!(
        why.contains("KRaft quorum lost its majority (1 of 3 voters left)"),
        "{ex}: the verdict does not say why: {why}"
    );
    let detected = d.trial(0)["detected"].to_string();
    assert!(
        !detected.contains("k1 became") && !detected.contains("k3 became"),
        "{ex}: a killed node was reported as the new primary: {detected}"
    );
    eprintln!("FIGURES {ex}: exit 1, RTO null, lost 0: {why}");
}

/// The stretch cluster (examples/kafka-stretch-zone-loss.toml): 3 zones,
/// the inter-broker links delayed 10 ms each way (a 20 ms cross-zone round
/// trip), zone z2 lost: lost 0. The control is the same cluster with the
/// latency set to 0 ms: acks=all writes wait for a follower in another
/// zone, so no write before the disaster is acknowledged sooner than the
/// round trip. The floor (the fastest write), not the median: on a loaded
/// 2-core machine queueing raised the control's median to 75 ms and hid
/// the round trip in it (CI, stop 25), but queueing never lowers a floor.
#[test]
fn stretch_cluster_pays_the_round_trip() {
    if !kafka_available() {
        return;
    }
    let _g = serial();
    let ex = "kafka-stretch-zone-loss.toml";
    let text = example(ex);
    assert!(
        text.matches("latency = \"10ms\"").count() == 3,
        "{ex}: 3 links at 10 ms"
    );
    let lab = Lab::up(&text.replace("latency = \"10ms\"", "latency = \"0ms\""));
    let base = lab.drill("no-latency");
    figures("stretch, no cross-zone latency", &base, 0);
    std::fs::write(
        &lab.spec,
        text.replace("@DIR@", &lab.lab_dir().display().to_string()),
    )
    .expect("spec");
    let d = lab.drill("rtt-20ms");
    figures("stretch, 20 ms cross-zone round trip", &d, 0);
    for (what, d) in [("0 ms", &base), ("20 ms", &d)] {
        assert_eq!(d.code, 0, "{what}: exit {}: {}", d.code, d.stderr);
        assert_eq!(
            d.u64(0, "rpo.lost"),
            0,
            "{what}: a zone loss lost acknowledged records"
        );
        assert!(
            d.u64(0, "ops.ok") > 200,
            "{what}: the workload wrote too little"
        );
    }
    let ms = |d: &Drill, q: &str| {
        d.f64(0, &format!("latency_before.{q}_ms"))
            .expect("write latency")
    };
    let (b, s) = (ms(&base, "min"), ms(&d, "min"));
    eprintln!(
        "FIGURES {ex}: fastest write {b:.1} ms without latency, {s:.1} ms at a 20 ms round trip (p50 {:.1} / {:.1} ms, p99 {:.1} / {:.1} ms)",
        ms(&base, "p50"),
        ms(&d, "p50"),
        ms(&base, "p99"),
        ms(&d, "p99")
    );
    assert!(
        s >= 20.0,
        "a write was acknowledged in {s:.1} ms, sooner than the 20 ms round trip"
    );
    // The control: without the latency the floor is well under it, so the
    // bound above is the round trip's and not the machine's.
    assert!(
        b < 20.0,
        "without latency the fastest write took {b:.1} ms: the bound proves nothing"
    );
}

const GOOD: &str = "[lab]\nname = \"kb\"\nkind = \"kafka\"\ndir = \"/tmp/firedrill-kafka-bad-never\"\n\
[lab.kafka]\nreplication_factor = 3\nmin_insync_replicas = 2\n\
[drill]\nname = \"b\"\n[drill.target]\nkafka_acks = \"all\"\n\
[drill.workload]\nduration = \"1s\"\n[[drill.faults]]\nat = \"1s\"\naction = \"kill\"\nnode = \"primary\"\n\
[drill.recovery]\nautomatic = true\n";

#[test]
fn bad_kafka_input_is_exit_2_with_position() {
    check_bad_drill(
        &GOOD.replace("kafka_acks = \"all\"", "kafka_acks = 2"),
        "kafka_acks",
        &[],
    );
    check_bad_drill(
        &GOOD.replace("min_insync_replicas = 2", "min_insync_replicas = 4"),
        "min_insync_replicas",
        &[],
    );
    check_bad_drill(
        &GOOD.replace("kind = \"kafka\"", "kind = \"etcd\"").replace(
            "[lab.kafka]\nreplication_factor = 3\nmin_insync_replicas = 2\n",
            "",
        ),
        "kafka_acks",
        &[],
    );
    check_bad_drill(
        &GOOD
            .replace("kind = \"kafka\"\n", "kind = \"kafka\"\nzones = 3\n")
            .replace("node = \"primary\"", "zone = \"z9\""),
        "no zone named \"z9\"; the zones are z1, z2, z3",
        &[],
    );
    check_bad_drill(
        &GOOD.replace(
            "kafka_acks = \"all\"",
            "kafka_acks = \"all\"\nkafka_enable_idempotence = true\nkafka_retries = 0",
        ),
        "kafka_retries",
        &[],
    );
    // librdkafka would refuse this producer at the preflight: refused here.
    check_bad_drill(
        &GOOD.replace(
            "kafka_acks = \"all\"",
            "kafka_acks = \"1\"\nkafka_enable_idempotence = true",
        ),
        "an idempotent producer needs acks = \"all\"",
        &[],
    );
    assert!(
        !std::path::Path::new("/tmp/firedrill-kafka-bad-never").exists(),
        "a lab was started"
    );
}

/// A lab whose jars are missing fails `lab up` with the install command.
#[test]
fn missing_jars_name_the_install_command() {
    let tmp = tempdir();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let spec = tmp.path().join("lab.toml");
    std::fs::write(
        &spec,
        format!(
            "[lab]\nname = \"kj\"\nkind = \"kafka\"\ndir = \"{}\"\n",
            tmp.path().join("lab").display()
        ),
    )
    .expect("write");
    let out = std::process::Command::new(BIN)
        .args(["lab", "up", spec.to_str().expect("utf-8")])
        .env("FIREDRILL_KAFKA_LIBS", &empty)
        .env("FIREDRILL_STATE_DIR", state_dir())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("FIGURES missing jars: exit {:?}: {err}", out.status.code());
    assert!(!out.status.success());
    assert!(err.contains("scripts/install-deps.sh"), "{err}");
}

/// `links = "netns"`: the partition-0 leader's veth set down for 10 s cuts
/// it from followers, quorum and clients at once. The controller fences it
/// and elects an in-sync replica: lost 0, recovered, and every veth is up
/// again after the drill.
#[test]
fn netns_partition_of_the_leader() {
    if !kafka_available() {
        return;
    }
    let _g = serial();
    if !netns_usable() {
        return;
    }
    let ex = "kafka-netns-leader-partition.toml";
    let lab = Lab::up(&example(ex));
    let status = firedrill(&["lab", "status", lab.spec_str()]);
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        text.contains("netns fd-") && text.contains("10.213."),
        "lab status shows no namespaces:\n{text}"
    );
    let d = lab.drill("run");
    figures("netns leader partition", &d, 0);
    assert_eq!(d.code, 0, "{ex}: exit {}: {}", d.code, d.stderr);
    assert_eq!(d.u64(0, "rpo.lost"), 0, "{ex}: lost acknowledged records");
    assert_eq!(d.u64(0, "rpo.phantoms"), 0);
    assert!(
        d.u64(0, "ops.ok") > 500,
        "{ex}: the workload wrote too little"
    );
    let rto = d
        .f64(0, "rto.achieved_s")
        .expect("recovered (RTO not null)");
    let detected = d
        .f64(0, "rto.phases.detected_s")
        .expect("a leader change was seen");
    assert!(
        detected >= 2.5,
        "{ex}: a new leader at +{detected:.2} s, before the 3 s session timeout could fence the old one"
    );
    let status = firedrill(&["lab", "status", lab.spec_str()]);
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        !text.contains("DOWN"),
        "a veth is still down after the drill:\n{text}"
    );
    eprintln!("FIGURES {ex}: RTO {rto:.2} s, leader change at +{detected:.2} s");
}
