//! Kafka cross-region DR with MirrorMaker 2 (`kind = "kafka-mirror"`),
//! against real brokers and a real MM2 started from the Maven Central jars
//! (scripts/install-deps.sh). One lab for the file; each drill resets it.
//! Run with --nocapture to see the measured figures.

mod common;
use common::watch::*;
use common::*;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

/// Steady writes at 200/s after a 6 s warmup (from the first acknowledged
/// write: MM2 takes about 3 s to find the run's new topics and start
/// mirroring them, and the predicted RPO needs mirrored heartbeats before
/// the cut); region A lost at `at` (its broker killed and
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
        "FIGURES {what}: MM2 reports {} s ({}); consumer: {}; by home: {}",
        t["rpo"]["reported_s"], t["rpo"]["reported_by"], t["consumer"], t["by_home"],
    );
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
    watch_the_region_link(&lab);
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
    // MM2's own lag, from its heartbeats (1 s apart, and they cross the
    // link twice): beside firedrill's, within the interval and a half.
    let reported = d.f64(0, "rpo.reported_s").expect("MM2's reported lag");
    assert!(
        (reported - achieved).abs() <= 1.5,
        "MM2 reported {reported} s, achieved {achieved} s"
    );
    consumer_after_failover(&d, "1 s");

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

/// The consumer group after the failover: nothing skipped, and the
/// redeliveries reported beside the checkpoint interval that explains them
/// and the translated offsets it resumed at. Returns `redelivered`.
fn consumer_after_failover(d: &Drill, interval: &str) -> u64 {
    let c = &d.trial(0)["consumer"];
    assert!(c.is_object(), "no consumer figures: {}", d.trial(0));
    assert_eq!(c["skipped"], 0, "the consumer skipped records: {c}");
    assert!(c["delivered"].as_u64().unwrap_or(0) > 0, "{c}");
    assert!(
        c["consumer_rto_s"].as_f64().is_some(),
        "the consumer never caught up: {c}"
    );
    let settings = c["settings"].as_str().unwrap_or("");
    assert!(
        settings.contains(&format!("emit.checkpoints.interval {interval}")),
        "{settings}"
    );
    assert!(
        c["notes"].to_string().contains("moved to"),
        "no note of where it resumed: {c}"
    );
    let text = format!(
        "{}{}",
        d.stdout,
        std::fs::read_to_string(d.dir.join("run.json")).unwrap_or_default()
    );
    assert!(text.contains("redelivered"), "redelivered is not reported");
    c["redelivered"].as_u64().expect("redelivered")
}

/// `lab status` until it shows B's topic mirrored to A (`B.firedrill-…`
/// on A) or region A is down; the last output.
fn status_both_ways(lab: &Lab) -> String {
    let end = Instant::now() + Duration::from_secs(40);
    loop {
        let st = firedrill(&["lab", "status", lab.spec_str()]);
        let text = String::from_utf8_lossy(&st.stdout).into_owned();
        let a_down = text
            .lines()
            .any(|l| l.starts_with("a1") && l.contains("(dead)"));
        if text.contains("in A's B.firedrill-") || a_down || Instant::now() > end {
            return text;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Active-active: every other client is one of B's own producers, and MM2
/// mirrors both ways. While both regions are up, `lab status` shows B's
/// topic mirrored to A and no cycle (no topic with two region prefixes:
/// `B.A.*` would be A's records on their way back). The region link cut
/// for D = 4 s, then region A lost: B's producers lose nothing and see
/// RTO 0; A's lose their unmirrored records, RPO = D ± 0.5 s; the
/// consumer skips nothing. Then the same disaster at MM2's default
/// checkpoint interval, 60 s: a group younger than the interval has no
/// checkpoint, resumes B's copy from its start, and redelivers more.
#[test]
fn active_active_and_the_checkpoint_interval() {
    if !mirror_available() {
        return;
    }
    let _g = serial();
    let spec = |ckpt: &str| {
        drill("active-active", Some("1s"), "5s").replace(
            "mirror = \"active-passive\"",
            &format!("mirror = \"active-active\"\ncheckpoint_interval = \"{ckpt}\""),
        )
    };
    let lab = Lab::up(&spec("1s"));
    let child = start_drill(&lab);
    let status = status_both_ways(&lab);
    eprintln!("--- lab status, active-active\n{status}");
    assert!(
        status.contains("in A's B.firedrill-"),
        "B's topic was not mirrored to A before the disaster: {status}"
    );
    assert!(status.contains("no cycle"), "{status}");
    let mut child = child;
    let exit = child.0.wait().expect("drill");
    let d = load_run(&lab.run_dir("run"));
    figures("active-active region loss after a 4 s cut", &d);
    assert_eq!(exit.code(), Some(0), "drill exit");
    let homes = d.trial(0)["by_home"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let home = |h: &str| {
        homes
            .iter()
            .find(|x| x["home"] == h)
            .cloned()
            .unwrap_or_else(|| panic!("no figures for home {h}: {homes:?}"))
    };
    let (a, b) = (home("A"), home("B"));
    assert!(
        a["ok"].as_u64() > Some(100) && b["ok"].as_u64() > Some(100),
        "both regions take writes: {homes:?}"
    );
    assert_eq!(b["lost"], 0, "B's own writes were lost: {b}");
    assert_eq!(
        b["rto_s"].as_f64(),
        Some(0.0),
        "B's producers saw an outage: {b}"
    );
    assert!(
        a["lost"].as_u64() > Some(0),
        "A lost nothing after a 4 s cut: {a}"
    );
    let dd = -d.trial(0)["faults"][0]["injected_s"].as_f64().expect("cut");
    let a_rpo = a["rpo_s"].as_f64().expect("A's RPO");
    assert!((a_rpo - dd).abs() <= 0.5, "A's RPO {a_rpo} s, D = {dd} s");
    assert_eq!(
        d.u64(0, "rpo.lost"),
        a["lost"].as_u64().unwrap_or(0),
        "the loss is A's alone"
    );
    let short = consumer_after_failover(&d, "1 s");
    let after = firedrill(&["lab", "status", lab.spec_str()]);
    let after = String::from_utf8_lossy(&after.stdout).into_owned();
    assert!(after.contains("no cycle"), "{after}");
    drop(lab);

    let lab = Lab::up(&spec("60s"));
    let d = lab.drill("long-interval");
    figures("active-active, checkpoints every 60 s", &d);
    assert_eq!(d.code, 0, "{}", d.stderr);
    let long = consumer_after_failover(&d, "60 s");
    eprintln!("FIGURES redelivered after the failover: {short} at a 1 s checkpoint interval, {long} at 60 s");
    assert!(
        d.trial(0)["consumer"]["notes"]
            .to_string()
            .contains("no checkpoint"),
        "a group younger than 60 s had a checkpoint: {}",
        d.trial(0)["consumer"]
    );
    assert!(
        long > short,
        "60 s interval: {long} redelivered, 1 s: {short}"
    );
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

/// One request to the lab's proxy API (Toxiproxy's); the status code.
fn proxy_call(api: &str, method: &str, path: &str, body: &str) -> u16 {
    let mut s = std::net::TcpStream::connect(api).expect("proxy API");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("request");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// `firedrill watch` on the lab: the heartbeat exposure for region_loss
/// stays under 1 s while MM2 mirrors; with the region link down, it grows
/// with the cut and
/// crosses the 2 s objective within objective + interval + for, and
/// `status` (a fresh probe, two rounds) sees the whole cut and exits 1;
/// healed, it falls back under 1 s.
fn watch_the_region_link(lab: &Lab) {
    let st = lab.state();
    let api = st["proxy"]["api"].as_str().expect("proxy api").to_string();
    let link = st["links"]
        .as_array()
        .expect("links")
        .iter()
        .find(|l| l["node"] == "b1" && l["kind"] == "replication")
        .and_then(|l| l["name"].as_str())
        .expect("b1's replication link")
        .to_string();
    let file = lab.tmp.path().join("objectives.toml");
    std::fs::write(
        &file,
        format!(
            "[watch]\ninterval = \"500ms\"\nfor = \"1s\"\n\n[[domain]]\nname = \"orders\"\n\
             [domain.store]\nkind = \"kafka-mirror\"\nsource = \"a1\"\ntarget = \"b1\"\n\
             [[domain.store.nodes]]\nname = \"a1\"\naddr = \"127.0.0.1:{}\"\n\
             [[domain.store.nodes]]\nname = \"b1\"\naddr = \"127.0.0.1:{}\"\n\
             [domain.objectives.region_loss]\nrpo = \"2s\"\nsources = [\"heartbeat\"]\n",
            port_of(&st, "a1"),
            port_of(&st, "b1")
        ),
    )
    .expect("objectives");
    let port = free_port();
    let _w = start_watch(&file, port);
    let exposure = || {
        let m = http_get(port, "/metrics")?;
        sample(&m, "firedrill_exposure_seconds", &["source=\"heartbeat\""])
    };
    // MM2 finds the new heartbeat topic on its refresh interval: wait
    // until three scrapes in a row read under 1 s.
    let mut calm = 0;
    let settled = wait_until(Duration::from_secs(90), || {
        let e = exposure()?;
        calm = if e < 1.0 { calm + 1 } else { 0 };
        (calm >= 3).then_some(e)
    });
    let settled = settled.expect("the heartbeat exposure never settled under 1 s");
    eprintln!("FIGURES watch, mirroring: heartbeat exposure {settled:.3} s");

    // The link disabled (its connections closed, new ones refused), not
    // blackholed: a timeout toxic drops the bytes in flight, which leaves
    // MM2's connection out of step after the heal until a request times
    // out; a link that goes down and comes back heals cleanly.
    let path = format!("/proxies/{link}");
    let set = |on: bool| proxy_call(&api, "POST", &path, &format!(r#"{{"enabled":{on}}}"#));
    assert_eq!(set(false), 200, "disable {link}");
    let t_cut = Instant::now();
    let crossed = wait_until(Duration::from_secs(10), || {
        exposure()
            .filter(|e| *e > 2.0)
            .map(|e| (e, t_cut.elapsed().as_secs_f64()))
    });
    let out = firedrill(&["status", file.to_str().expect("utf-8")]);
    let table = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let during = t_cut.elapsed().as_secs_f64();
    let at_heal = exposure();
    assert_eq!(set(true), 200, "enable {link}");
    let (e, after) = crossed.expect("the exposure never crossed the 2 s objective during the cut");
    eprintln!(
        "FIGURES watch, region link cut: exposure {e:.2} s at {after:.2} s into the cut, {at_heal:?} s at {during:.2} s; status:\n{table}"
    );
    // Objective 2 s, plus one interval (0.5 s) for a beat to be written
    // after the cut and one for the scrape, plus `for`'s 1 s as slack.
    assert!(after <= 4.0, "crossed 2 s only {after:.2} s into the cut");
    // The beats MM2 had not copied yet when the cut came (the settled
    // exposure's worth) are exposed too: the figure may exceed the cut by
    // that, plus an interval, never by more.
    assert!(
        e <= after + settled + 0.6,
        "exposure {e} s: more than the cut's {after} s plus the lag before it ({settled} s)"
    );
    assert!(
        e >= after - 0.6,
        "exposure {e} s: less than the cut's {after} s"
    );
    assert_eq!(out.status.code(), Some(1), "status during a cut: {table}");
    assert!(table.contains("BREACH"), "{table}");
    let healed = Instant::now();
    let back = wait_until(Duration::from_secs(60), || exposure().filter(|e| *e < 1.0));
    eprintln!(
        "FIGURES watch, healed: exposure {back:?} s after {:.1} s",
        healed.elapsed().as_secs_f64()
    );
    assert!(
        back.is_some(),
        "the exposure stayed over 1 s after the heal"
    );
}

/// A kafka-mirror objectives file with every mistake at once: exit 2, each
/// at its file:line:column, and nothing probed (no broker is running).
#[test]
fn bad_mirror_objectives() {
    let tmp = tempdir();
    let f = tmp.path().join("bad.toml");
    std::fs::write(
        &f,
        r#"[[domain]]
name = "orders"
[domain.store]
kind = "kafka-mirror"
source = "a9"
target = "b1"
source_alias = "A.B"
[[domain.store.nodes]]
name = "b1"
addr = "127.0.0.1:1"
[domain.objectives.region_loss]
rpo = "5s"
sources = ["isr"]

[[domain]]
name = "same"
[domain.store]
kind = "kafka-mirror"
source = "b1"
target = "b1"
password_env = "X"
[[domain.store.nodes]]
name = "b1"
addr = "127.0.0.1:1"
[domain.objectives.region_loss]
rpo = "5s"
sources = ["heartbeat"]

[[domain]]
name = "missing"
[domain.store]
kind = "kafka-mirror"
[[domain.store.nodes]]
name = "b1"
addr = "127.0.0.1:1"
[domain.objectives.region_loss]
rpo = "5s"
sources = ["heartbeat"]
"#,
    )
    .expect("write");
    let started = Instant::now();
    let out = firedrill(&["status", f.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "bad mirror objectives: exit {:?}:\n{err}",
        out.status.code()
    );
    assert_eq!(out.status.code(), Some(2), "{err}");
    for want in [
        "bad.toml:5:10: source: no node named \"a9\" (nodes: b1)",
        "bad.toml:7:16: source_alias must be 1-200 letters, digits, '_' or '-'",
        "bad.toml:13:12: a kafka-mirror store has no isr source",
        "bad.toml:20:10: source and target must be two different nodes",
        "bad.toml:21:16: password_env is not used by a kafka-mirror store",
        "bad.toml:32:8: a kafka-mirror store needs source = \"NODE\"",
        "bad.toml:32:8: a kafka-mirror store needs target = \"NODE\"",
    ] {
        assert!(err.contains(want), "{want:?} not in {err}");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "it probed");
}
