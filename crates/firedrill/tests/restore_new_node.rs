//! Restores into a new node on real PostgreSQL 15: a scratch node of the
//! lab (own data directory, port, process), promoted, the clients moved to
//! it, torn down after the audit and on every exit path; the restore test
//! (no fault) with its history row read back by a real `firedrill watch`;
//! and the same PITR from a plain pg_basebackup. One pgBackRest lab for
//! the first tests, one basebackup lab for the last.

mod common;
use common::watch::{free_port, http_get, sample, wait_until, Killed};
use common::*;
use firedrill_ledger::{codec, Outcome};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn pitr_available() -> bool {
    pg_available() && programs_available(&["pgbackrest"])
}

/// The scratch nodes the lab records (`scratch.json`), as JSON.
fn scratch(lab: &Lab) -> Vec<Value> {
    std::fs::read_to_string(lab.lab_dir().join("scratch.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Waits until a scratch node's server is recorded with a pid; its pid.
fn wait_scratch_pid(lab: &Lab, limit: Duration) -> Option<i64> {
    wait_until(limit, || {
        scratch(lab).iter().find_map(|n| n["proc"]["pid"].as_i64())
    })
}

fn alive(pid: i64) -> bool {
    proc_state(pid).is_some_and(|s| s != 'Z')
}

/// A drill running in the background, with its own state directory.
fn spawn_drill(spec: &Path, out: &Path, state: &Path) -> Drilling {
    Drilling(
        Command::new(BIN)
            .args(["drill", spec.to_str().expect("utf-8"), "--out"])
            .arg(out)
            .env("FIREDRILL_STATE_DIR", state)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn drill"),
    )
}

fn finish(mut d: Drilling, out: &Path) -> Drill {
    use std::io::Read;
    let mut err_pipe = d.0.stderr.take().expect("stderr");
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let mut stdout = String::new();
    if let Some(mut o) = d.0.stdout.take() {
        let _ = o.read_to_string(&mut stdout);
    }
    let status = d.0.wait().expect("drill exit");
    let stderr = err.join().unwrap_or_default();
    eprintln!("--- drill stdout\n{stdout}\n--- drill stderr\n{stderr}");
    let run = std::fs::read_to_string(out.join("run.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    Drill {
        code: status.code().unwrap_or(-1),
        run,
        stdout,
        stderr,
        dir: out.to_path_buf(),
    }
}

/// The lab's [lab] table with another example's [drill], so one lab runs
/// several examples' drills.
fn with_drill(lab: &Lab, example_name: &str, edit: &dyn Fn(String) -> String) -> PathBuf {
    let own = std::fs::read_to_string(&lab.spec).expect("spec");
    let lab_part = &own[..own.find("\n[drill]").expect("[drill]")];
    let ex = example(example_name);
    let drill_part = &ex[ex.find("\n[drill]").expect("[drill]")..];
    let path = lab.tmp.path().join(example_name);
    std::fs::write(&path, edit(format!("{lab_part}{drill_part}"))).expect("write");
    path
}

/// Every write acknowledged before the fault is on the restored node, and
/// every write invoked after it was promoted (the clients moved to it).
/// Returns how many writes the restored node took.
fn check_moved(d: &Drill) -> usize {
    let trial = d.dir.join("trial-1");
    let ops =
        codec::decode(&std::fs::read(trial.join("ledger.bin")).expect("ledger")).expect("decode");
    let mut audit =
        codec::decode_ids(&std::fs::read(trial.join("audit.bin")).expect("audit")).expect("ids");
    audit.sort_unstable();
    let tl: Value =
        serde_json::from_str(&std::fs::read_to_string(trial.join("timeline.json")).expect("tl"))
            .expect("json");
    let t_fault = tl["faults"][0]["t_start"].as_u64().expect("t_fault");
    // The clients were moved once the restored node was promoted and taken in.
    let moved = tl["restore"]["moved"].as_u64().expect("restore.moved");
    assert!(moved >= tl["restore"]["promoted"].as_u64().expect("promoted"));
    let here = |s: u64| audit.binary_search(&s).is_ok();
    let ok: Vec<_> = ops.iter().filter(|o| o.outcome == Outcome::Ok).collect();
    let before = ok
        .iter()
        .filter(|o| o.t_done < t_fault && !here(o.seq))
        .count();
    assert_eq!(
        before, 0,
        "writes acknowledged before the fault are missing"
    );
    let after: Vec<_> = ok.iter().filter(|o| o.t_invoke > moved).collect();
    let missing = after.iter().filter(|o| !here(o.seq)).count();
    assert_eq!(
        missing, 0,
        "writes made after the clients moved are not on the restored node"
    );
    after.len()
}

/// A restore test, or a restore into a new node, leaves the lab's own
/// nodes as they were (the damaged primary keeps serving nothing the next
/// drill needs): the next drill may skip the rebuild a changed lab gets,
/// which takes 5-30 s here.
fn lab_as_it_was(lab: &Lab) {
    let _ = std::fs::remove_file(lab.lab_dir().join("drilled"));
}

#[test]
fn new_node_restores_restore_tests_and_exit_paths() {
    if !pitr_available() {
        return;
    }
    let _g = serial();
    let started = Instant::now();
    let lab = Lab::up(&example("pg-pitr-new-node.toml"));
    let state = lab.tmp.path().join("state");
    eprintln!("FIGURES lab up {:.1} s", started.elapsed().as_secs_f64());

    // 1. The restore test (no fault), its history row, and the watch metric.
    let wport = free_port();
    let objectives = lab.tmp.path().join("objectives.toml");
    let n1_port = lab.state()["nodes"][0]["port"].as_u64().expect("port");
    std::fs::write(
        &objectives,
        format!(
            "[watch]\ninterval = \"1s\"\n\n[[domain]]\nname = \"orders\"\n[domain.store]\nkind = \"postgres\"\n\
             [[domain.store.nodes]]\nname = \"n1\"\nconninfo = \"host=127.0.0.1 port={n1_port} user=postgres dbname=postgres\"\n\
             [domain.objectives.node_loss]\nrpo = \"5s\"\nsources = [\"heartbeat\"]\n\
             [domain.restore_test]\ndrills = [\"pg-restore-test\"]\nmax_age = \"1h\"\n"
        ),
    )
    .expect("objectives");
    let _watch = Killed(
        Command::new(BIN)
            .args(["watch", objectives.to_str().expect("utf-8")])
            .args(["--listen", &format!("127.0.0.1:{wport}")])
            .env("FIREDRILL_STATE_DIR", &state)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn watch"),
    );
    let age = |m: &str| {
        sample(
            m,
            "firedrill_restore_test_age_seconds",
            &["domain=\"orders\""],
        )
    };
    // Negative control: no passing restore test yet (an empty history), so
    // the age is +Inf, never a zero.
    let before = wait_until(Duration::from_secs(20), || {
        http_get(wport, "/metrics").and_then(|m| age(&m))
    })
    .expect("no restore test age exported");
    assert_eq!(before, f64::INFINITY, "age before any restore test");
    let spec = with_drill(&lab, "pg-restore-test.toml", &|s| s);
    let out = lab.run_dir("restore-test");
    let d = finish(spawn_drill(&spec, &out, &state), &out);
    let r = &d.trial(0)["restore"];
    eprintln!(
        "FIGURES restore test: restore {r}; RTO {:?}",
        d.f64(0, "rto.achieved_s")
    );
    assert_eq!(d.code, 0, "exit {}: {}", d.code, d.stdout);
    assert_eq!(r["test"], true, "{r}");
    assert_eq!(r["reached"], true, "{r}");
    assert_eq!(r["lost_before"], 0, "{r}");
    assert_eq!(d.u64(0, "rpo.lost"), 0);
    let duration = r["duration_s"].as_f64().expect("restore duration");
    assert_eq!(
        d.f64(0, "rto.achieved_s"),
        Some(duration),
        "RTO is the restore's duration"
    );
    assert!(duration > 0.0 && duration < 60.0, "{duration}");
    assert!(
        r["rolled_back"].as_u64().unwrap_or(0) > 0,
        "the primary took no writes during the restore: {r}"
    );
    assert!(
        d.stdout
            .contains("restore test  target latest into scratch node r1: restored"),
        "{}",
        d.stdout
    );
    let rows = Command::new(BIN)
        .args(["runs", "--json", "--drill", "pg-restore-test"])
        .env("FIREDRILL_STATE_DIR", &state)
        .output()
        .expect("runs");
    let rows: Value = serde_json::from_slice(&rows.stdout).expect("runs json");
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(rows[0]["verdict"], "pass", "{rows}");
    let metrics = wait_until(Duration::from_secs(20), || {
        http_get(wport, "/metrics").filter(|m| age(m).is_some_and(f64::is_finite))
    })
    .expect("the watcher never read the restore test from the history");
    let (a, dur) = (
        age(&metrics).expect("age"),
        sample(
            &metrics,
            "firedrill_restore_test_duration_seconds",
            &["domain=\"orders\""],
        )
        .expect("duration"),
    );
    eprintln!("FIGURES watch after the restore test: age {a:.1} s, duration {dur:.3} s");
    assert!(a < 120.0, "age {a}");
    assert!(
        (dur - duration).abs() < 1e-6,
        "watch says {dur}, run.json {duration}"
    );
    assert_eq!(
        sample(
            &metrics,
            "firedrill_restore_test_max_age_seconds",
            &["domain=\"orders\""]
        ),
        Some(3600.0)
    );

    // 2. Ctrl-C's path (SIGTERM) while the scratch node runs: torn down.
    let out = lab.run_dir("sigterm");
    lab_as_it_was(&lab);
    let running = spawn_drill(&spec, &out, &state);
    let pid = wait_scratch_pid(&lab, Duration::from_secs(60)).expect("no scratch node started");
    let _ = Command::new("kill")
        .args(["-TERM", &running.0.id().to_string()])
        .status();
    let d = finish(running, &out);
    eprintln!("FIGURES SIGTERM during a restore test: exit {}", d.code);
    assert_eq!(d.code, 3, "{}", d.stderr);
    assert!(
        !alive(pid),
        "scratch node pid {pid} outlived an interrupted drill"
    );
    assert!(scratch(&lab).is_empty(), "{:?}", scratch(&lab));

    // 3. A data disaster restored before the fault into a new node.
    let out = lab.run_dir("new-node");
    lab_as_it_was(&lab);
    let running = spawn_drill(&lab.spec, &out, &state);
    let pid = wait_scratch_pid(&lab, Duration::from_secs(60)).expect("no scratch node started");
    let st = firedrill(&["lab", "status", lab.spec_str()]);
    let status = String::from_utf8_lossy(&st.stdout).into_owned();
    eprintln!("FIGURES lab status during the restore:\n{status}");
    assert!(
        status.contains("\nr1 ") && status.contains("scratch node"),
        "lab status does not show the scratch node: {status}"
    );
    let d = finish(running, &out);
    let r = &d.trial(0)["restore"];
    eprintln!(
        "FIGURES new-node PITR: restore {r}; RTO {:?}",
        d.f64(0, "rto.achieved_s")
    );
    assert_eq!(d.code, 0, "exit {}: {}", d.code, d.stdout);
    assert_eq!(r["node"], "r1", "{r}");
    assert_eq!(r["reached"], true, "{r}");
    assert_eq!(r["lost_before"], 0, "{r}");
    assert_eq!(r["damaged_left"], 0, "{r}");
    assert!(r["damaged"].as_u64().unwrap_or(0) > 100, "{r}");
    let on_new = check_moved(&d);
    assert!(
        on_new > 100,
        "the clients barely wrote to the restored node ({on_new})"
    );
    assert!(
        d.stdout.contains("into new node r1: reached"),
        "{}",
        d.stdout
    );
    // Torn down after the audit: its server, data and record.
    assert!(!alive(pid), "scratch node pid {pid} outlived the drill");
    assert!(scratch(&lab).is_empty(), "{:?}", scratch(&lab));
    assert!(!lab.lab_dir().join("data/r1").exists());

    // 4. SIGKILL of firedrill: the scratch node stays (its watchdog waits
    // for the TTL), `lab status` shows it, and `lab down` stops it.
    let out = lab.run_dir("sigkill");
    lab_as_it_was(&lab);
    let mut running = spawn_drill(&spec, &out, &state);
    let pid = wait_scratch_pid(&lab, Duration::from_secs(60)).expect("no scratch node started");
    let _ = running.0.kill();
    let _ = running.0.wait();
    assert!(alive(pid), "the scratch node died with firedrill");
    let st = firedrill(&["lab", "status", lab.spec_str()]);
    assert!(
        String::from_utf8_lossy(&st.stdout).contains("\nr1 "),
        "{st:?}"
    );
    let down = firedrill(&["lab", "down", lab.spec_str()]);
    assert!(down.status.success(), "{down:?}");
    assert!(!alive(pid), "lab down left scratch node pid {pid} running");
    eprintln!(
        "FIGURES restore tests file part 1: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// `[lab.backup] tool = "basebackup"`: pg_basebackup at `lab up`, WAL in
/// the archive directory, restored into a new node to just before the bad
/// transaction, judged from the server's log.
#[test]
fn basebackup_restores_before_the_fault() {
    if !pg_available() {
        return;
    }
    let _g = serial();
    let lab = Lab::up(&example("pg-basebackup-pitr.toml"));
    assert!(lab.lab_dir().join("backup/base/PG_VERSION").is_file());
    let d = lab.drill("basebackup");
    let r = &d.trial(0)["restore"];
    eprintln!(
        "FIGURES basebackup PITR: restore {r}; RTO {:?}",
        d.f64(0, "rto.achieved_s")
    );
    assert_eq!(d.code, 0, "exit {}: {}", d.code, d.stdout);
    assert_eq!(r["reached"], true, "{r}");
    assert!(
        r["detail"]
            .as_str()
            .unwrap_or("")
            .contains("recovery stopping before commit of transaction"),
        "{r}"
    );
    assert_eq!(r["lost_before"], 0, "{r}");
    assert_eq!(r["damaged_left"], 0, "{r}");
    check_moved(&d);
}

#[test]
fn bad_new_node_input_is_exit_2_with_position() {
    let good =
        example("pg-pitr-new-node.toml").replace("@DIR@", "/tmp/firedrill-new-node-bad-never");
    check_bad_drill(
        &good.replace("from = \"pgbackrest\"", "from = \"barman\""),
        "restore from \"barman\", but the lab's [lab.backup] tool is \"pgbackrest\"",
        &["--lab"],
    );
    check_bad_drill(
        &good.replace("tool = \"pgbackrest\"", "tool = \"barman\""),
        "backup tool \"barman\": give \"pgbackrest\" or \"basebackup\"",
        &["--lab"],
    );
    check_bad_drill(
        &good.replace("from = \"pgbackrest\"", "from = \"basebackup\""),
        "restore from \"basebackup\", but the lab's [lab.backup] tool is \"pgbackrest\"",
        &["--lab"],
    );
    check_bad_drill(
        &good.replace("into = \"new_node\"", "into = \"elsewhere\""),
        "into = \"elsewhere\": give \"in_place\" or \"new_node\"",
        &["--lab"],
    );
    let test =
        example("pg-restore-test.toml").replace("@DIR@", "/tmp/firedrill-new-node-bad-never");
    check_bad_drill(
        &test.replace("into = \"new_node\"", "into = \"in_place\""),
        "a restore test (no fault) restores into a scratch node",
        &["--lab"],
    );
    check_bad_drill(
        &test.replace("target = \"latest\"", "target = \"before_fault\""),
        "needs a corruption step",
        &["--lab"],
    );
    assert!(
        !Path::new("/tmp/firedrill-new-node-bad-never").exists(),
        "a lab was started"
    );
}
