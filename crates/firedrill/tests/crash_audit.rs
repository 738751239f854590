//! A store that stops during the drill's own audit: inconclusive (exit 3),
//! never a pass. The hook is the recovery's verify_command, which runs
//! right before the audit: it freezes both nodes' postmasters (the primary
//! the audit reads, and the standby that could stand in), so the audit is
//! left probing them, and the test then kills both while the audit waits.
//! One lab for the file.

mod common;
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const SPEC: &str = r#"
[lab]
name = "crash-audit"
dir = "@DIR@"
standbys = 1

[drill]
name = "crash-audit"
[drill.workload]
clients = 2
warmup = "1s"
duration = "3s"
op_timeout = "1s"

[drill.recovery]
verify_command = ["sh", "@HOOK@"]

[drill.objectives]
rpo = "1s"
"#;

#[test]
fn the_store_stopping_during_the_audit_is_inconclusive() {
    if !pg_available() {
        return;
    }
    let _g = serial();
    let hook_dir = tempdir();
    let hook = hook_dir.path().join("hook.sh");
    let lab = Lab::up(&SPEC.replace("@HOOK@", hook.to_str().unwrap()));
    let state = lab.state();
    // The postmasters firedrill recorded when it started the lab.
    let pids: Vec<i64> = state["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["proc"]["pid"].as_i64().expect("pid"))
        .collect();
    assert_eq!(pids.len(), 2);
    let list = pids
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    std::fs::write(&hook, format!("kill -STOP {list}\n")).unwrap();
    let pm = pids[0];

    let run = lab.run_dir("run");
    let log = hook_dir.path().join("drill.log");
    let mut d = Drilling(
        std::process::Command::new(BIN)
            .args(["drill", lab.spec_str(), "--out", run.to_str().unwrap()])
            .env("FIREDRILL_STATE_DIR", state_dir())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(hook_dir.path().join("drill.err")).unwrap())
            .spawn()
            .unwrap(),
    );
    let end = Instant::now() + Duration::from_secs(60);
    while proc_state(pm) != Some('T') {
        assert!(Instant::now() < end, "the verify hook never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    let events = std::fs::read_to_string(run.join("events.jsonl")).unwrap();
    assert!(events.contains("\"phase\":\"audit\""), "{events}");
    assert!(
        !events.contains("\"audit\",\"trial\""),
        "the audit read nothing yet"
    );
    std::thread::sleep(Duration::from_secs(1));
    // Stopped during the audit: the node is gone for good.
    let st = std::process::Command::new("kill")
        .arg("-KILL")
        .args(pids.iter().map(|p| p.to_string()))
        .status()
        .unwrap();
    assert!(st.success());
    let status = d.0.wait().unwrap();
    let msg = format!(
        "{}{}",
        std::fs::read_to_string(&log).unwrap(),
        std::fs::read_to_string(hook_dir.path().join("drill.err")).unwrap()
    );
    eprintln!("{msg}");
    assert_eq!(status.code(), Some(3), "{msg}");
    assert!(
        msg.contains("the audit failed, the run is inconclusive")
            && msg.contains("no node is reachable for the audit"),
        "{msg}"
    );
    let rec: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(rec["verdict"], "inconclusive");
    let rep = firedrill(&["report", run.to_str().unwrap()]);
    assert_eq!(rep.status.code(), Some(3));
}
