//! Faults heal on every path: Ctrl-C, and even firedrill being SIGKILLed
//! (the detached watchdog heals at the fault's TTL).

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn spec(name: &str, faults: &str) -> String {
    format!(
        r#"
[lab]
name = "{name}"
dir = "@DIR@"
standbys = 1

[drill]
name = "{name}"
[drill.workload]
clients = 2
warmup = "1s"
duration = "60s"
{faults}
[drill.slo]
recovery_timeout = "60s"
[drill.objectives]
rpo = "1s"
"#
    )
}

fn pid_of(state: &Value, node: &str) -> i64 {
    state["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == node)
        .and_then(|n| n["proc"]["pid"].as_i64())
        .expect("pid")
}

fn psql(state: &Value, node: &str, sql: &str) -> String {
    let bin = Path::new(state["bin_dir"].as_str().unwrap()).join("psql");
    let port = state["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == node)
        .unwrap()["port"]
        .as_u64()
        .unwrap();
    let out = Command::new(bin)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-Atc",
            sql,
        ])
        .output()
        .expect("psql");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not happen within {limit:?}");
}

#[test]
fn ctrl_c_heals_a_pause_and_a_replication_cut() {
    if !pg_available() {
        return;
    }
    let _g = serial();
    let lab = Lab::up(&spec(
        "ctrl-c",
        r#"
[[drill.faults]]
at = "1s"
action = "cut_replication"
node = "n2"
[[drill.faults]]
at = "1500ms"
action = "pause"
node = "n1"
"#,
    ));
    let state = lab.state();
    let mut drilling = start_drill(&lab);
    let child = &mut drilling.0;
    wait_injected(&lab.run_dir("run"), 2);
    let n1 = pid_of(&state, "n1");
    assert_eq!(proc_state(n1), Some('T'), "n1 should be paused now");
    assert_eq!(
        psql(&state, "n2", "SELECT count(*) FROM pg_stat_wal_receiver"),
        "0",
        "n2 should be cut now"
    );

    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(3), "an interrupted drill is aborted: exit 3");

    assert_ne!(proc_state(n1), Some('T'), "n1 must be resumed after Ctrl-C");
    wait_for("n2 streaming again", Duration::from_secs(15), || {
        psql(&state, "n2", "SELECT status FROM pg_stat_wal_receiver") == "streaming"
    });
    let run: Value = serde_json::from_str(
        &std::fs::read_to_string(lab.run_dir("run").join("run.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(run["verdict"], "inconclusive");
}

#[test]
fn watchdog_heals_when_firedrill_is_killed() {
    if !pg_available() {
        return;
    }
    let _g = serial();
    let lab = Lab::up(&spec(
        "watchdog",
        r#"
[[drill.faults]]
at = "1s"
action = "pause"
node = "n2"
for = "2s"
"#,
    ));
    let state = lab.state();
    let mut drilling = start_drill(&lab);
    let child = &mut drilling.0;
    wait_injected(&lab.run_dir("run"), 1);
    let n2 = pid_of(&state, "n2");
    assert_eq!(proc_state(n2), Some('T'));
    child.kill().unwrap(); // SIGKILL: no chance to heal
    child.wait().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        proc_state(n2),
        Some('T'),
        "nobody healed yet: the TTL (for + 5 s) has not passed"
    );
    // TTL = for (2 s) + 5 s after injection.
    wait_for("the watchdog resuming n2", Duration::from_secs(15), || {
        proc_state(n2) != Some('T')
    });
    assert!(
        lab.run_dir("run")
            .join("heal")
            .read_dir()
            .unwrap()
            .next()
            .is_none(),
        "the journal entry is removed once healed"
    );
}
