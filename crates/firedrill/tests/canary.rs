//! The credential canary: a real PostgreSQL lab whose superuser needs a
//! password (scram-sha-256 on loopback), and every command that takes one
//! (drill against endpoints, through firedrill's embedded proxy; watch;
//! status; assess) given a canary password from the environment. Their
//! stdout and stderr, every file of the run directory, the history database
//! and the lab directory are searched for the canary: nothing may hold it.
//! The search itself is checked on a file that does hold it.

mod common;
use common::watch::{free_port, http_get, wait_until};
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const CANARY: &str = "fd-canary-7Qx2vLp9sW";
const ENV: &str = "FD_CANARY_PASSWORD";

const LAB: &str = r#"
[lab]
name = "canary"
dir = "@DIR@"
standbys = 1
replication = "async"
"#;

/// Every file below `dir` that holds the canary.
fn holders(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if dir.is_file() {
        if let Ok(bytes) = std::fs::read(dir) {
            if bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()) {
                out.push(dir.to_path_buf());
            }
        }
        return out;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(holders(&p));
        } else if let Ok(bytes) = std::fs::read(&p) {
            if bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()) {
                out.push(p);
            }
        }
    }
    out
}

fn run(args: &[&str], state: &Path) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env(ENV, CANARY)
        .env_remove("FIREDRILL_LOG")
        .env("FIREDRILL_STATE_DIR", state)
        .output()
        .expect("firedrill");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("firedrill {args:?}: exit {:?}", out.status.code());
    if out.status.code() == Some(2) {
        eprintln!("{text}");
    }
    text
}

/// Makes the lab's superuser need the canary over TCP on both nodes
/// (replication stays as the lab set it). The statement is kept out of the
/// server log, which the search covers too.
fn require_password(st: &serde_json::Value) {
    let (ok, _) = psql_as(
        st,
        "n1",
        &format!("SET log_statement = 'none'; SET log_min_duration_statement = -1; ALTER ROLE postgres PASSWORD '{CANARY}'"),
        None,
    );
    assert!(ok, "ALTER ROLE");
    for node in ["n1", "n2"] {
        let data = st["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["name"] == node)
            .and_then(|n| n["data_dir"].as_str())
            .expect("data_dir");
        let hba = Path::new(data).join("pg_hba.conf");
        let text =
            std::fs::read_to_string(&hba).unwrap_or_else(|e| panic!("{}: {e}", hba.display()));
        // Every loopback `host all all ... trust` line (initdb's own, with
        // its column padding, and the lab's) now asks for the password.
        let text: String = text
            .lines()
            .map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                if w.len() == 5 && w[..3] == ["host", "all", "all"] && w[4] == "trust" {
                    format!("host all all {} scram-sha-256\n", w[3])
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        std::fs::write(&hba, text).expect("write pg_hba");
        let (ok, _) = psql_as(st, node, "SELECT pg_reload_conf()", Some(CANARY));
        assert!(ok, "reload {node}");
    }
    // The password is now needed: without it the server refuses.
    assert!(
        !psql_as(st, "n1", "SELECT 1", None).0,
        "trust still in force"
    );
    assert_eq!(psql_as(st, "n1", "SELECT 1", Some(CANARY)).1, "1");
}

#[test]
fn no_command_leaks_the_password() {
    if !pg_available() {
        return;
    }
    let _g = serial();
    let lab = Lab::up(LAB);
    let st = lab.state();
    require_password(&st);
    let tmp = tempdir();
    let state = tmp.path().join("state");
    let (p1, p2) = (port_of(&st, "n1"), port_of(&st, "n2"));
    let mut seen = String::new();

    // A drill against the endpoints, its clients partitioned through the
    // embedded proxy (the password crosses it in the SCRAM exchange).
    let spec = tmp.path().join("drill.toml");
    std::fs::write(
        &spec,
        format!(
            r#"[drill]
name = "canary-drill"
[drill.target]
password_env = "{ENV}"
nodes = [
  {{ name = "db1", conninfo = "host=127.0.0.1 port={p1} user=postgres dbname=postgres" }},
  {{ name = "db2", conninfo = "host=127.0.0.1 port={p2} user=postgres dbname=postgres" }},
]
[drill.workload]
clients = 2
warmup = "1s"
duration = "4s"
[[drill.faults]]
at = "1s"
action = "partition"
node = "primary"
link = "clients"
for = "1s"
[drill.slo]
stable_for = "1s"
recovery_timeout = "20s"
[drill.objectives]
rpo = "0s"
rto = "20s"
"#
        ),
    )
    .expect("spec");
    let run_dir = tmp.path().join("run");
    seen += &run(
        &[
            "drill",
            spec.to_str().expect("utf-8"),
            "--out",
            run_dir.to_str().expect("utf-8"),
        ],
        &state,
    );
    let run_json = std::fs::read_to_string(run_dir.join("run.json")).expect("run.json");
    assert!(
        run_json.contains("\"ok\""),
        "the drill wrote nothing: the password was not used"
    );

    // watch (two scrapes), status and assess on one objectives file.
    let objectives = tmp.path().join("objectives.toml");
    std::fs::write(
        &objectives,
        format!(
            r#"version = 2
[watch]
interval = "500ms"
[[domain]]
name = "orders"
[domain.store]
kind = "postgres"
user = "postgres"
password_env = "{ENV}"
[[domain.store.nodes]]
name = "n1"
conninfo = "host=127.0.0.1 port={p1} dbname=postgres"
[[domain.store.nodes]]
name = "n2"
conninfo = "host=127.0.0.1 port={p2} dbname=postgres"
[domain.replication]
mode = "async"
[domain.objectives.node]
rpo = "5s"
sources = ["heartbeat"]
"#
        ),
    )
    .expect("objectives");
    let listen = free_port();
    let log = tmp.path().join("watch.log");
    let mut watch = Command::new(BIN)
        .args(["watch", objectives.to_str().expect("utf-8")])
        .args(["--listen", &format!("127.0.0.1:{listen}")])
        .env(ENV, CANARY)
        .env("FIREDRILL_STATE_DIR", &state)
        .stdout(Stdio::from(std::fs::File::create(&log).expect("log")))
        .stderr(Stdio::from(
            std::fs::File::create(tmp.path().join("watch.err")).expect("log"),
        ))
        .spawn()
        .expect("watch");
    let metrics = wait_until(Duration::from_secs(20), || {
        http_get(listen, "/metrics")
            .filter(|m| m.contains("firedrill_probe_up{") && m.contains("} 1"))
    });
    std::thread::sleep(Duration::from_secs(1));
    let again = http_get(listen, "/metrics").unwrap_or_default();
    let _ = watch.kill();
    let _ = watch.wait();
    let metrics = metrics.expect("watch never probed the store up: the password was not used");
    seen += &metrics;
    seen += &again;
    seen += &run(&["status", objectives.to_str().expect("utf-8")], &state);
    seen += &run(&["assess", objectives.to_str().expect("utf-8")], &state);

    // A password in a spec is refused, and the refusal does not repeat it.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&spec).expect("spec").replace(
            "user=postgres dbname",
            &format!("user=postgres password={CANARY} dbname"),
        ),
    )
    .expect("bad spec");
    let refusal = run(&["drill", bad.to_str().expect("utf-8")], &state);
    assert!(refusal.contains("password"), "{refusal}");
    seen += &refusal;

    assert!(!seen.contains(CANARY), "a command printed the password");
    let mut leaks = holders(&run_dir);
    leaks.extend(holders(&state));
    leaks.extend(holders(&lab.lab_dir()));
    leaks.extend(holders(&log));
    leaks.extend(holders(tmp.path().join("watch.err").as_path()));
    leaks.retain(|p| p != &bad);
    assert!(leaks.is_empty(), "the password is in {leaks:?}");
    // Negative control: the search finds the canary where it was put.
    assert_eq!(holders(tmp.path()), vec![bad.clone()]);
}
