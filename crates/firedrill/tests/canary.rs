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

/// `firedrill watch` on `objectives` with the canary in its environment
/// (logs in `dir`/watch.log and watch.err) until it probes `what` up, a
/// second scrape a second later, then `status` and `assess` on the same
/// file: everything they printed.
fn watch_status_assess(objectives: &Path, state: &Path, dir: &Path, what: &str) -> String {
    let listen = free_port();
    let mut watch = Command::new(BIN)
        .args(["watch", objectives.to_str().expect("utf-8")])
        .args(["--listen", &format!("127.0.0.1:{listen}")])
        .env(ENV, CANARY)
        .env("FIREDRILL_STATE_DIR", state)
        .stdout(Stdio::from(
            std::fs::File::create(dir.join("watch.log")).expect("log"),
        ))
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("watch.err")).expect("log"),
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
    let mut seen = metrics
        .unwrap_or_else(|| panic!("watch never probed {what} up: the password was not used"));
    seen += &again;
    seen += &run(&["status", objectives.to_str().expect("utf-8")], state);
    seen += &run(&["assess", objectives.to_str().expect("utf-8")], state);
    seen
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
    seen += &watch_status_assess(&objectives, &state, tmp.path(), "the store");

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
    leaks.extend(holders(&tmp.path().join("watch.log")));
    leaks.extend(holders(&tmp.path().join("watch.err")));
    leaks.retain(|p| p != &bad);
    assert!(leaks.is_empty(), "the password is in {leaks:?}");
    // Negative control: the search finds the canary where it was put.
    assert_eq!(holders(tmp.path()), vec![bad.clone()]);
}

const REDIS_LAB: &str = r#"
[lab]
name = "canary-redis"
kind = "redis-sentinel"
dir = "@DIR@"
standbys = 1
[lab.redis]
down_after = "1s"
"#;

/// `redis-cli` on one port, authenticated through `REDISCLI_AUTH` (never
/// an argument: ps would show it); its trimmed stdout.
fn redis_cli(port: u64, auth: Option<&str>, args: &[&str]) -> String {
    let mut c = Command::new("redis-cli");
    c.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .env_remove("REDISCLI_AUTH");
    if let Some(a) = auth {
        c.env("REDISCLI_AUTH", a);
    }
    let out = c.output().expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Makes every data node of the lab need the canary (`requirepass`, and
/// `masterauth` so replication keeps working) and gives the sentinels
/// `auth-pass`, the way an operator turns AUTH on in a running group.
fn require_redis_password(st: &serde_json::Value) -> Vec<u64> {
    let ports: Vec<u64> = ["n1", "n2"].iter().map(|n| port_of(st, n)).collect();
    for &p in &ports {
        assert_eq!(
            redis_cli(p, None, &["CONFIG", "SET", "masterauth", CANARY]),
            "OK"
        );
    }
    for &p in &ports {
        assert_eq!(
            redis_cli(p, None, &["CONFIG", "SET", "requirepass", CANARY]),
            "OK"
        );
    }
    let sentinels: Vec<u64> = st["sentinels"]
        .as_array()
        .expect("sentinels")
        .iter()
        .map(|s| s["port"].as_u64().expect("sentinel port"))
        .collect();
    for &s in &sentinels {
        let r = redis_cli(
            s,
            None,
            &["SENTINEL", "SET", "firedrill", "auth-pass", CANARY],
        );
        assert_eq!(r, "OK", "sentinel {s}");
    }
    // The password is now needed.
    assert!(redis_cli(ports[0], None, &["PING"]).contains("NOAUTH"));
    assert_eq!(redis_cli(ports[0], Some(CANARY), &["PING"]), "PONG");
    ports
}

/// A pid file for a node the lab recorded, as an init system writes one.
fn pid_file(dir: &Path, st: &serde_json::Value, node: &str) -> String {
    let pid = st["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["name"] == node)
        .and_then(|n| n["proc"]["pid"].as_i64())
        .expect("the lab recorded a pid");
    let path = dir.join(format!("{node}.pid"));
    std::fs::write(&path, format!("{pid}\n")).expect("pid file");
    path.display().to_string()
}

/// The same canary for Redis `requirepass`: a drill whose master is killed
/// (the clients AUTH again on every reconnect, to the promoted replica), watch, status and assess, and a spec that puts
/// the password in an address. Sentinel's own config file is left out of
/// the search: Sentinel itself rewrites `auth-pass` into it, as it would on
/// the user's machine, and so does a promoted replica's redis.conf.
#[test]
fn no_command_leaks_the_redis_password() {
    if !redis_available() {
        return;
    }
    let _g = serial();
    let lab = Lab::up(REDIS_LAB);
    let st = lab.state();
    let ports = require_redis_password(&st);
    let sentinels: Vec<String> = st["sentinels"]
        .as_array()
        .expect("sentinels")
        .iter()
        .map(|s| format!("\"127.0.0.1:{}\"", s["port"]))
        .collect();
    let tmp = tempdir();
    let state = tmp.path().join("state");
    let mut seen = String::new();
    let spec = tmp.path().join("drill.toml");
    std::fs::write(
        &spec,
        format!(
            r#"[drill]
name = "canary-redis"
[drill.target]
kind = "redis-sentinel"
password_env = "{ENV}"
redis_master_name = "firedrill"
redis_sentinels = [{s}]
nodes = [
  {{ name = "r1", conninfo = "127.0.0.1:{p1}", pid_file = "{f1}" }},
  {{ name = "r2", conninfo = "127.0.0.1:{p2}", pid_file = "{f2}" }},
]
[drill.workload]
clients = 2
warmup = "1s"
duration = "4s"
[[drill.faults]]
at = "1s"
action = "kill"
node = "primary"
[drill.recovery]
automatic = true
[drill.slo]
stable_for = "1s"
recovery_timeout = "20s"
[drill.objectives]
rpo = "5s"
rto = "20s"
"#,
            s = sentinels.join(", "),
            p1 = ports[0],
            p2 = ports[1],
            f1 = pid_file(tmp.path(), &st, "n1"),
            f2 = pid_file(tmp.path(), &st, "n2"),
        ),
    )
    .expect("spec");
    let run_dir = tmp.path().join("run");
    let out = run(
        &[
            "drill",
            spec.to_str().expect("utf-8"),
            "--out",
            run_dir.to_str().expect("utf-8"),
        ],
        &state,
    );
    seen += &out;
    let run_json = std::fs::read_to_string(run_dir.join("run.json"))
        .unwrap_or_else(|e| panic!("run.json: {e}\n{out}"));
    let v: serde_json::Value = serde_json::from_str(&run_json).expect("run.json");
    let ok = v["trials"][0]["ops"]["ok"].as_u64().unwrap_or(0);
    assert!(
        ok > 100,
        "the drill wrote {ok}: the password was not used\n{out}"
    );

    // Negative control: a drill that is made to log the canary (it is the
    // drill's description, which firedrill prints and records) is caught
    // by the same checks, in its output and in its run directory.
    let control = tmp.path().join("control.toml");
    let text = std::fs::read_to_string(&spec).expect("spec");
    let faults = text.find("[[drill.faults]]").expect("faults");
    let recovery = text.find("[drill.recovery]").expect("recovery");
    let text = format!(
        "{}[[drill.faults]]\nat = \"1s\"\naction = \"command\"\ncommand = [\"true\"]\nheal = \"none\"\n{}",
        &text[..faults],
        &text[recovery..]
    )
    .replacen("[drill]\n", &format!("[drill]\ndescription = \"{CANARY}\"\n"), 1);
    std::fs::write(&control, text).expect("control spec");
    let control_dir = tmp.path().join("control-run");
    let printed = run(
        &[
            "drill",
            control.to_str().expect("utf-8"),
            "--out",
            control_dir.to_str().expect("utf-8"),
        ],
        &state,
    );
    assert!(
        printed.contains(CANARY),
        "the control did not print its canary: {printed}"
    );
    assert!(
        !holders(&control_dir).is_empty(),
        "the control's run directory has no canary"
    );
    std::fs::remove_dir_all(&control_dir).expect("remove the control run");
    std::fs::remove_file(&control).expect("remove the control spec");

    let objectives = tmp.path().join("objectives.toml");
    std::fs::write(
        &objectives,
        format!(
            r#"version = 2
[watch]
interval = "500ms"
[[domain]]
name = "sessions"
[domain.store]
kind = "redis"
password_env = "{ENV}"
[[domain.store.nodes]]
name = "n1"
addr = "127.0.0.1:{p1}"
[[domain.store.nodes]]
name = "n2"
addr = "127.0.0.1:{p2}"
[domain.replication]
mode = "async"
[domain.objectives.node]
rpo = "5s"
sources = ["replication_lag"]
"#,
            p1 = ports[0],
            p2 = ports[1],
        ),
    )
    .expect("objectives");
    seen += &watch_status_assess(&objectives, &state, tmp.path(), "Redis");

    // A password in an address is refused, and the refusal does not repeat it.
    let bad = tmp.path().join("bad.toml");
    let addr = format!("127.0.0.1:{}", ports[0]);
    std::fs::write(
        &bad,
        std::fs::read_to_string(&spec).expect("spec").replacen(
            &addr,
            &format!("redis://:{CANARY}@{addr}"),
            1,
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
    leaks.extend(holders(&tmp.path().join("watch.log")));
    leaks.extend(holders(&tmp.path().join("watch.err")));
    // Redis's own config files are the servers' doing: Sentinel rewrites
    // sentinel.conf with auth-pass, and sends CONFIG REWRITE to the replica
    // it promotes, which writes requirepass into its redis.conf.
    leaks.retain(|p| {
        p != &bad
            && p.file_name()
                .is_none_or(|n| n != "sentinel.conf" && n != "redis.conf")
    });
    assert!(leaks.is_empty(), "the password is in {leaks:?}");
    // Negative control: the search finds the canary where it was put.
    assert_eq!(holders(tmp.path()), vec![bad.clone()]);
}
