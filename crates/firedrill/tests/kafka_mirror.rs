//! Kafka cross-region DR with MirrorMaker 2 (`kind = "kafka-mirror"`),
//! against real brokers and a real MM2 started from the Maven Central jars
//! (scripts/install-deps.sh). One lab for the file; each drill resets it.
//! Run with --nocapture to see the measured figures.

mod common;
use common::*;
use std::path::{Path, PathBuf};

/// The Kafka jars with MM2's among them; under CI=true their absence fails.
fn mirror_available() -> bool {
    if !kafka_available() {
        return false;
    }
    let has = std::fs::read_dir(libs())
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy() == "connect-mirror-4.3.1.jar")
        })
        .unwrap_or(false);
    if !has {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("MM2's connect-mirror-4.3.1.jar missing in {} (CI=true: a failure, not a skip; run scripts/install-deps.sh)", libs().display());
        }
        eprintln!("skipping: MM2's jar not installed (scripts/install-deps.sh)");
    }
    has
}

fn libs() -> PathBuf {
    std::env::var_os("FIREDRILL_KAFKA_LIBS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/firedrill/kafka-4.3.1/libs")
        })
}

const LAB: &str = r#"
[lab]
name = "mirror"
kind = "kafka-mirror"
dir = "@DIR@"
mirror = "active-passive"
"#;

/// Steady writes at 200/s after a 6 s warmup (the engine counts warmup
/// from before its preflight, in which MM2 takes about 3 s to find the
/// run's new topics: a 2 s warmup was over before the first write and the
/// cut came late); region A lost at `at` (its broker killed and
/// the region link cut at the same instant), producers failed over to B
/// (`failover = "B"`) 1 s later. `cut_at`: the region link cut earlier, for D = at - cut_at.
fn drill(name: &str, cut_at: Option<&str>, at: &str) -> String {
    let cut = match cut_at {
        Some(c) => format!(
            "[[drill.faults]]\nat = \"{c}\"\naction = \"partition\"\nnode = \"b1\"\nlink = \"replication\"\n"
        ),
        None => format!(
            "[[drill.faults]]\nat = \"{at}\"\naction = \"partition\"\nnode = \"b1\"\nlink = \"replication\"\n"
        ),
    };
    format!(
        r#"{LAB}
[drill]
name = "{name}"

[drill.workload]
mode = "rate"
rate = 200.0
max_in_flight = 50
op_timeout = "2s"
warmup = "6s"
duration = "10s"

{cut}
[[drill.faults]]
at = "{at}"
action = "kill"
zone = "A"
disaster = true

[drill.recovery]
failover = "B"
delay = "1s"

[drill.slo]
stable_for = "2s"
recovery_timeout = "20s"

[drill.objectives]
rpo = "10s"
rto = "30s"
"#
    )
}

fn figures(what: &str, d: &Drill) {
    let t = d.trial(0);
    eprintln!(
        "FIGURES {what}: lost {} of {} ok (unknown {} survived / {} lost), achieved RPO {} s, predicted {} s, loss span {}; RTO {} s",
        t["rpo"]["lost"],
        t["ops"]["ok"],
        t["rpo"]["unknown_survived"],
        t["rpo"]["unknown_lost"],
        t["rpo"]["achieved_s"],
        t["rpo"]["predicted_s"],
        t["rpo"]["loss_span_s"],
        t["rto"]["achieved_s"],
    );
}

fn load_run(dir: &Path) -> Drill {
    let run = std::fs::read_to_string(dir.join("run.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    Drill {
        code: 0,
        run,
        stdout: String::new(),
        stderr: String::new(),
        dir: dir.to_path_buf(),
    }
}

/// Active-passive ground truth. The region link cut for D = 4 s under
/// steady writes, then region A lost: achieved RPO = D ± 0.5 s, predicted
/// (the heartbeat's mirroring lag before the disaster) within 0.5 s of it,
/// lost > 0; `lab status` shows the lag growing during the cut. Then the
/// control without the cut: achieved ≈ the mirroring lag measured before
/// the disaster, within 0.5 s.
#[test]
fn region_loss_ground_truth() {
    if !mirror_available() {
        return;
    }
    let _g = serial();
    let lab = Lab::up(&drill("mirror-cut-4s", Some("1s"), "5s"));
    let mut child = start_drill(&lab);
    let run = lab.run_dir("run");
    wait_injected(&run, 1);
    // `lab status` is polled from 0.5 s into the cut (200 writes/s: > 50
    // records behind by then) until it shows the lag; each call can take
    // seconds on a loaded machine, and region A is lost 4 s into the cut.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut seen = Vec::new();
    let status = loop {
        let st = firedrill(&["lab", "status", lab.spec_str()]);
        let status = String::from_utf8_lossy(&st.stdout).into_owned();
        let behind: Vec<u64> = status
            .lines()
            .filter(|l| l.contains("mirroring lag"))
            .filter_map(|l| {
                l.split("mirroring lag ")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        let a_down = status
            .lines()
            .any(|l| l.starts_with("a1") && l.contains("(dead)"));
        if behind.iter().any(|&n| n > 50) || a_down {
            seen.push(behind);
            break status;
        }
        seen.push(behind);
    };
    eprintln!(
        "--- lab status during the cut ({} calls)\n{status}",
        seen.len()
    );
    assert!(
        seen.last().is_some_and(|b| b.iter().any(|&n| n > 50)),
        "lab status showed no mirroring lag during the cut (lags seen: {seen:?}): {status}"
    );
    let exit = child.0.wait().expect("drill");
    let d = load_run(&run);
    figures("region loss after a 4 s cut", &d);
    assert_eq!(exit.code(), Some(0), "drill exit");
    let achieved = d.f64(0, "rpo.achieved_s").expect("achieved RPO");
    let predicted = d.f64(0, "rpo.predicted_s").expect("predicted RPO");
    // D as it happened: from the cut's injection to the region loss's.
    let cut = d.trial(0)["faults"][0]["injected_s"].as_f64().expect("cut");
    let dd = -cut;
    eprintln!("FIGURES the cut lasted D = {dd:.3} s before the region loss");
    assert!(
        (dd - 4.0).abs() <= 0.1,
        "the schedule gave D = {dd} s, not 4 s"
    );
    assert!(
        (achieved - dd).abs() <= 0.5,
        "achieved RPO {achieved} s not within D = {dd} s ± 0.5 s"
    );
    assert!(
        (predicted - achieved).abs() <= 0.5,
        "predicted {predicted} s not within 0.5 s of achieved {achieved} s"
    );
    assert!(d.u64(0, "rpo.lost") > 0, "the cut lost nothing");
    assert_eq!(d.u64(0, "rpo.phantoms"), 0);
    assert!(
        d.f64(0, "rto.achieved_s").is_some(),
        "B never took the writes"
    );
    let settings = d.run.to_string();
    assert!(
        settings.contains("emit.checkpoints.interval 1s"),
        "the run does not record the checkpoint interval"
    );

    // The control: the same region loss, no earlier cut.
    std::fs::write(
        &lab.spec,
        drill("mirror-no-cut", None, "4s").replace("@DIR@", &lab.lab_dir().display().to_string()),
    )
    .expect("spec");
    let d = lab.drill("control");
    figures("region loss without a cut", &d);
    assert_eq!(d.code, 0, "{}", d.stderr);
    let achieved = d.f64(0, "rpo.achieved_s").expect("achieved RPO");
    let lag = d.f64(0, "rpo.predicted_s").expect("measured mirroring lag");
    assert!(
        (achieved - lag).abs() <= 0.5,
        "achieved RPO {achieved} s not within 0.5 s of the mirroring lag {lag} s"
    );
    assert!(achieved < 1.0, "no cut, yet {achieved} s lost");
}

/// Bad input: exit 2 with file:line:column, and nothing started.
#[test]
fn bad_mirror_specs() {
    let tmp = tempdir();
    let dir = tmp.path().join("never");
    let base = drill("bad", None, "4s").replace("@DIR@", &dir.display().to_string());
    check_bad_drill(
        &base.replace("mirror = \"active-passive\"", "mirror = \"bogus\""),
        "mirror must be \"active-passive\" or \"active-active\"",
        &[],
    );
    check_bad_drill(
        &base.replace("failover = \"B\"", "failover = \"C\""),
        "no region (zone) named \"C\"; the regions are A, B",
        &[],
    );
    check_bad_drill(
        &base.replace("failover = \"B\"", "promote = \"c1\""),
        "no node named \"c1\"; the nodes are a1, b1",
        &[],
    );
    // The Kafka jars without MM2's: hard links of all but connect-mirror.
    if kafka_available() {
        let nolibs = tmp.path().join("libs");
        std::fs::create_dir_all(&nolibs).expect("mkdir");
        for e in std::fs::read_dir(libs()).expect("libs").flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.ends_with(".jar") && !n.starts_with("connect-mirror-") {
                std::fs::hard_link(e.path(), nolibs.join(&n))
                    .or_else(|_| std::fs::copy(e.path(), nolibs.join(&n)).map(|_| ()))
                    .expect("link jar");
            }
        }
        let spec = base.replace(
            "mirror = \"active-passive\"",
            &format!(
                "mirror = \"active-passive\"\nlibs_dir = \"{}\"",
                nolibs.display()
            ),
        );
        check_bad_drill(
            &spec,
            "MirrorMaker 2's jar (org.apache.kafka:connect-mirror 4.3.1) is not in",
            &[],
        );
        check_bad_drill(&spec, "install it with scripts/install-deps.sh", &[]);
    }
    assert!(
        !dir.exists(),
        "a bad spec started a lab in {}",
        dir.display()
    );
}
