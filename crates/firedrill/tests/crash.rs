//! The crash-safe ledger on a real PostgreSQL lab: firedrill is SIGKILLed
//! at random moments of a drill; the watchdog heals the fault, `report`
//! says inconclusive (exit 3) with the journaled ledger, and `--reaudit`
//! completes the figures from the store. One lab for the whole file.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SPEC: &str = r#"
[lab]
name = "crash"
dir = "@DIR@"
standbys = 1

[drill]
name = "crash"
[drill.workload]
clients = 2
warmup = "1s"
duration = "8s"
op_timeout = "1s"

[[drill.faults]]
at = "3s"
action = "pause"
node = "primary"
for = "2s"

[drill.slo]
stable_for = "2s"
recovery_timeout = "20s"

[drill.objectives]
rpo = "1s"
rto = "20s"
"#;

/// Steady phase (3 s) then the fault (2 s paused) and its recovery: the
/// kill lands somewhere in [0.5 s, 6 s) after the steady phase began.
const KILL_FROM_S: f64 = 0.5;
const KILL_TO_S: f64 = 6.0;

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: not within {limit:?}");
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

/// Starts a drill; its stderr goes to `<run>.stderr`, beside the run dir.
fn spawn_drill(lab: &Lab, run: &Path) -> Drilling {
    let err = std::fs::File::create(run.with_extension("stderr")).expect("stderr file");
    Drilling(
        Command::new(BIN)
            .args(["drill", lab.spec_str(), "--out", run.to_str().unwrap()])
            .env("FIREDRILL_STATE_DIR", state_dir())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn drill"),
    )
}

/// A small deterministic generator seeded from the clock (printed, so a
/// failing moment can be replayed by reading the log).
struct Lcg(u64);
impl Lcg {
    fn next_f64(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The lab is unfaulted: every node's process runs (not stopped) and the
/// primary accepts a write.
fn assert_healthy(lab: &Lab) {
    let state = lab.state();
    for n in ["n1", "n2"] {
        let st = proc_state(pid_of(&state, n));
        assert!(
            matches!(st, Some(c) if c != 'T' && c != 'Z'),
            "{n} is {st:?}"
        );
    }
    let (ok, out) = psql_as(&state, "n1", "SELECT pg_is_in_recovery()", None);
    assert!(ok && out == "f", "n1 is not a writable primary: {out}");
}

fn store_rows(lab: &Lab, run_id: &str) -> u64 {
    let (ok, out) = psql_as(
        &lab.state(),
        "n1",
        &format!("SELECT count(*) FROM firedrill_ledger WHERE run_id = '{run_id}'"),
        None,
    );
    assert!(ok, "count rows: {out}");
    out.parse().expect("count")
}

/// Kills a drill at `after` past its steady phase; returns the run dir.
fn kill_during(lab: &Lab, name: &str, after: Duration) -> std::path::PathBuf {
    let run = lab.run_dir(name);
    let mut d = spawn_drill(lab, &run);
    let err = || std::fs::read_to_string(run.with_extension("stderr")).unwrap_or_default();
    let end = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(Some(st)) = d.0.try_wait() {
            panic!("the drill ended before its steady phase ({st}): {}", err());
        }
        let events = std::fs::read_to_string(run.join("events.jsonl")).unwrap_or_default();
        if events.contains("\"phase\":\"steady\"") {
            break;
        }
        assert!(
            Instant::now() < end,
            "no steady phase within 90 s; stderr: {}\nevents: {events}",
            err()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(after);
    assert!(d.0.try_wait().unwrap().is_none(), "the drill ended early");
    d.0.kill().unwrap(); // SIGKILL
    d.0.wait().unwrap();
    run
}

#[test]
fn kill_9_mid_drill_leaves_a_partial_ledger_that_a_reaudit_completes() {
    if !pg_available() {
        return;
    }
    let _g = serial();
    let lab = Lab::up(SPEC);

    // The uninterrupted run of the same schedule, and the negative
    // control: a complete run's report is its verdict, not inconclusive.
    let whole = lab.drill("whole");
    assert_eq!(whole.code, 0, "uninterrupted drill: {}", whole.stderr);
    let rep = firedrill(&["report", whole.dir.to_str().unwrap()]);
    assert_eq!(rep.status.code(), Some(0), "{}", text(&rep));
    assert!(!text(&rep).contains("INCONCLUSIVE") && !text(&rep).contains("PARTIAL"));
    let again = firedrill(&["report", whole.dir.to_str().unwrap(), "--reaudit"]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    eprintln!(
        "uninterrupted: ok {} fail {} unknown {} lost {} rto {:?}",
        whole.u64(0, "ops.ok"),
        whole.u64(0, "ops.fail"),
        whole.u64(0, "ops.unknown"),
        whole.u64(0, "rpo.lost"),
        whole.f64(0, "rto.achieved_s")
    );

    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill moments seed {seed}");
    let mut rng = Lcg(seed);
    for k in 1..=5 {
        let after = KILL_FROM_S + rng.next_f64() * (KILL_TO_S - KILL_FROM_S);
        let run = kill_during(&lab, &format!("kill-{k}"), Duration::from_secs_f64(after));
        assert!(
            !run.join("run.json").exists(),
            "a killed drill wrote run.json"
        );

        // The watchdog heals the pause (TTL: for + 5 s after injection).
        wait_for("the lab healthy again", Duration::from_secs(20), || {
            let st = lab.state();
            ["n1", "n2"]
                .iter()
                .all(|n| proc_state(pid_of(&st, n)) != Some('T'))
        });
        wait_for("no heal pending", Duration::from_secs(20), || {
            std::fs::read_dir(run.join("heal"))
                .map(|mut d| d.next().is_none())
                .unwrap_or(true)
        });
        assert_healthy(&lab);

        let rep = firedrill(&["report", run.to_str().unwrap(), "--json"]);
        assert_eq!(rep.status.code(), Some(3), "{}", text(&rep));
        let p = json_of(&rep);
        assert_eq!(p["verdict"], "inconclusive");
        let reason = p["reason"].as_str().unwrap();
        assert!(
            reason.contains("the firedrill process died at")
                && reason.contains("partial ledger of"),
            "{reason}"
        );
        let t = &p["trials"][0];
        let run_id = t["run_id"].as_str().expect("run_id");
        let ok = t["ops"]["ok"].as_u64().unwrap();
        // Ground truth: every acknowledged write of the run is a row on
        // the primary (a pause loses nothing), plus at most the writes in
        // flight at the kill that committed without an acknowledgement.
        let rows = store_rows(&lab, run_id);
        let frac = ok as f64 / rows as f64;
        let faults = t["faults"].as_array().unwrap().len();
        eprintln!(
            "kill {k} at +{after:.2} s of steady (phase {}): journaled ok {ok} of {rows} rows in the store = {:.1} %, {} unrecorded, {faults} fault(s) injected",
            t["phase"], frac * 100.0, t["unrecorded"]
        );
        assert!(rows > 0 && frac >= 0.9, "partial ledger {ok} of {rows}");
        assert!(
            ok <= rows + 2,
            "more acknowledged than the store holds: {ok} > {rows}"
        );
        let html = firedrill(&["report", run.to_str().unwrap(), "--html"]);
        assert_eq!(html.status.code(), Some(2), "{}", text(&html));
        let human = firedrill(&["report", run.to_str().unwrap()]);
        assert_eq!(human.status.code(), Some(3));
        assert!(text(&human).contains("INCONCLUSIVE"), "{}", text(&human));

        let re = firedrill(&["report", run.to_str().unwrap(), "--reaudit"]);
        let out = text(&re);
        eprintln!("{out}");
        assert_eq!(re.status.code(), Some(3), "re-audit: {out}");
        assert!(out.contains("RE-AUDITED"), "{out}");
        let rec: Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
        assert!(rec["reaudit"]["reason"]
            .as_str()
            .unwrap()
            .contains("died at"));
        let tr = &rec["trials"][0];
        let (r_ok, r_unknown, lost) = (
            tr["ops"]["ok"].as_u64().unwrap(),
            tr["ops"]["unknown"].as_u64().unwrap(),
            tr["rpo"]["lost"].as_u64().unwrap(),
        );
        eprintln!(
            "kill {k} re-audited: ok {r_ok} fail {} unknown {r_unknown} lost {lost} unknown_survived {} rto {:?} (uninterrupted: ok {} lost {})",
            tr["ops"]["fail"], tr["rpo"]["unknown_survived"], tr["rto"]["achieved_s"],
            whole.u64(0, "ops.ok"), whole.u64(0, "rpo.lost")
        );
        assert_eq!(r_ok, ok, "the re-audit keeps the journaled outcomes");
        assert_eq!(lost, 0, "a pause loses no acknowledged write");
        let survived_unknown = tr["rpo"]["unknown_survived"].as_u64().unwrap();
        assert_eq!(
            r_ok + survived_unknown,
            rows,
            "every row in the store is an acknowledged or an unrecorded op"
        );
        // After a re-audit, run.json exists: report renders it as usual.
        let after_re = firedrill(&["report", run.to_str().unwrap()]);
        assert_eq!(after_re.status.code(), Some(3));
    }

    // The store stops during the re-audit: both nodes are paused so the
    // audit is still probing them, then the lab is taken down under it.
    let run = kill_during(&lab, "kill-audit", Duration::from_millis(500));
    wait_for("the lab unfaulted", Duration::from_secs(20), || {
        let st = lab.state();
        ["n1", "n2"]
            .iter()
            .all(|n| proc_state(pid_of(&st, n)) != Some('T'))
    });
    let state = lab.state();
    for n in ["n1", "n2"] {
        let st = Command::new("kill")
            .args(["-STOP", &pid_of(&state, n).to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }
    let re = Command::new(BIN)
        .args(["report", run.to_str().unwrap(), "--reaudit"])
        .env("FIREDRILL_STATE_DIR", state_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let down = firedrill(&["lab", "down", lab.spec_str()]);
    assert!(down.status.success(), "{}", text(&down));
    let out = re.wait_with_output().unwrap();
    let msg = text(&out);
    eprintln!("{msg}");
    assert_eq!(out.status.code(), Some(3), "{msg}");
    assert!(msg.contains("re-audit of trial 1 failed"), "{msg}");
    assert!(
        !run.join("run.json").exists(),
        "a failed re-audit writes no run.json"
    );
}
