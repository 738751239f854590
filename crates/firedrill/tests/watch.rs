//! `firedrill watch`, `rules` and `status` against a real PostgreSQL lab
//! and a real Prometheus server: the generated rules pass promtool, the
//! exposure alert fires when replication is cut, the heartbeat exposure
//! stays small on an idle primary, and a stopped store is a breach.

mod common;
use common::watch::*;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LAB: &str = r#"
[lab]
name = "watch"
dir = "@DIR@"
standbys = 1
replication = "async"
"#;

fn port_of(state: &Value, node: &str) -> u64 {
    state["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["name"] == node)
        .expect("node")["port"]
        .as_u64()
        .expect("port")
}

fn psql(state: &Value, node: &str, sql: &str) -> String {
    let bin = Path::new(state["bin_dir"].as_str().expect("bin_dir")).join("psql");
    let out = Command::new(bin)
        .args(["-h", "127.0.0.1", "-p", &port_of(state, node).to_string()])
        .args(["-U", "postgres", "-d", "postgres", "-Atc", sql])
        .output()
        .expect("psql");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn objectives(state: &Value, rpo: &str, for_: &str) -> String {
    format!(
        r#"
[watch]
interval = "1s"
for = "{for_}"

[[domain]]
name = "orders"
[domain.store]
kind = "postgres"
user = "postgres"
[[domain.store.nodes]]
name = "n1"
conninfo = "host=127.0.0.1 port={p1} dbname=postgres"
[[domain.store.nodes]]
name = "n2"
conninfo = "host=127.0.0.1 port={p2} dbname=postgres"
[domain.objectives.node_loss]
rpo = "{rpo}"
sources = ["heartbeat", "replication_lag"]
"#,
        p1 = port_of(state, "n1"),
        p2 = port_of(state, "n2"),
    )
}

#[test]
fn generated_rules_pass_promtool() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let tmp = tempdir();
    let rules = tmp.path().join("rules.yml");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/watch-pg.toml");
    let out = firedrill(&[
        "rules",
        example.to_str().expect("utf-8"),
        "--out",
        rules.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let check = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool");
    let text = String::from_utf8_lossy(&check.stdout).to_string()
        + &String::from_utf8_lossy(&check.stderr);
    eprintln!("{text}");
    assert!(
        check.status.success(),
        "promtool check rules failed:\n{text}"
    );
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn invalid_objectives_exit_2_before_probing() {
    let tmp = tempdir();
    let f = tmp.path().join("bad.toml");
    std::fs::write(&f, "[[domain]]\nname = \"x\"\nstore = 3\n").expect("write");
    for cmd in ["watch", "rules", "status"] {
        let out = firedrill(&[cmd, f.to_str().expect("utf-8")]);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad.toml:3:9:"), "{cmd}: {err}");
    }
}

/// Idle-safe and silence-is-a-breach, on one lab: the heartbeat exposure of
/// an idle primary stays under 2 × interval while the replay-timestamp age
/// grows; `status` passes; then with the standby stopped, the probe is
/// down and the exposure is not zero, and `status` exits 1.
#[test]
fn idle_primary_and_stopped_store() {
    if !pg_available() {
        return;
    }
    let _g = serial();
    let lab = Lab::up(LAB);
    let state = lab.state();
    // The trap: with no writes at all, the replay-timestamp age of a
    // perfectly healthy standby grows without bound.
    psql(
        &state,
        "n1",
        "CREATE TABLE t (x int); INSERT INTO t VALUES (1)",
    );
    std::thread::sleep(Duration::from_millis(500));
    let age = || -> f64 {
        psql(
            &state,
            "n2",
            "SELECT extract(epoch from now() - pg_last_xact_replay_timestamp())",
        )
        .parse()
        .expect("replay timestamp age")
    };
    let before = age();
    std::thread::sleep(Duration::from_secs(5));
    let after = age();
    eprintln!(
        "idle, no watcher: now() - pg_last_xact_replay_timestamp() {before:.3} s -> {after:.3} s over 5 s, on a healthy streaming standby"
    );
    assert!(
        after - before >= 4.5,
        "the naive measure should grow while idle"
    );

    let file = lab.tmp.path().join("objectives.toml");
    std::fs::write(&file, objectives(&state, "5s", "2s")).expect("write");
    let port = free_port();
    let _w = start_watch(&file, port);

    // The lab is idle: nothing but the watcher writes. Sample for 12 s.
    let end = Instant::now() + Duration::from_secs(12);
    let mut max_hb: f64 = 0.0;
    let mut first_replay = None;
    let mut last_replay = None;
    let mut samples = 0;
    std::thread::sleep(Duration::from_secs(3));
    while Instant::now() < end {
        if let Some(m) = http_get(port, "/metrics") {
            let hb = sample(&m, "firedrill_exposure_seconds", &["source=\"heartbeat\""]);
            let replay = sample(&m, "firedrill_pg_replay_timestamp_age_seconds", &[]);
            if let (Some(hb), Some(replay)) = (hb, replay) {
                eprintln!("idle: heartbeat exposure {hb:.3} s, now() - pg_last_xact_replay_timestamp() {replay:.3} s");
                max_hb = max_hb.max(hb);
                first_replay.get_or_insert(replay);
                last_replay = Some(replay);
                samples += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(samples >= 10, "too few samples: {samples}");
    assert!(
        max_hb < 2.0,
        "heartbeat exposure on an idle primary reached {max_hb} s (interval 1 s)"
    );
    // With the watcher running, its heartbeat commits are the only
    // transactions, so they also keep the naive measure fresh.
    eprintln!(
        "idle summary: max heartbeat exposure {max_hb:.3} s; replay-timestamp age {:?} -> {:?}",
        first_replay, last_replay
    );

    let out = firedrill(&["status", file.to_str().expect("utf-8")]);
    let table = String::from_utf8_lossy(&out.stdout);
    eprintln!("status:\n{table}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "healthy lab: status must pass");

    // Stop the standby: silence is a breach.
    let bin = Path::new(state["bin_dir"].as_str().expect("bin_dir")).join("pg_ctl");
    let data = lab.lab_dir().join("data/n2");
    let user = state["run_as"]["user"].as_str().map(String::from);
    let mut cmd = match &user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--"]).arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    let st = cmd
        .args([
            "-D",
            data.to_str().expect("utf-8"),
            "-m",
            "immediate",
            "-w",
            "stop",
        ])
        .status()
        .expect("pg_ctl stop");
    assert!(st.success(), "pg_ctl stop n2");
    let stopped = Instant::now();
    let seen = wait_until(Duration::from_secs(10), || {
        let m = http_get(port, "/metrics")?;
        let up = sample(&m, "firedrill_probe_up", &["source=\"heartbeat\""])?;
        let e = sample(&m, "firedrill_exposure_seconds", &["source=\"heartbeat\""])?;
        (up == 0.0).then_some(e)
    })
    .expect("probe_up went to 0 after the standby stopped");
    let down_after = stopped.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(3));
    let m = http_get(port, "/metrics").expect("metrics");
    let later =
        sample(&m, "firedrill_exposure_seconds", &["source=\"heartbeat\""]).expect("exposure");
    eprintln!(
        "stopped standby: probe_up 0 within {down_after:.1} s, exposure {seen:.2} s then {later:.2} s 3 s later"
    );
    assert!(
        seen > 0.0,
        "a stopped standby must not read as zero exposure"
    );
    assert!(
        later >= seen + 2.0,
        "exposure must keep growing: {seen} -> {later}"
    );
    let out = firedrill(&["status", file.to_str().expect("utf-8")]);
    let table = String::from_utf8_lossy(&out.stdout);
    eprintln!("status:\n{table}");
    assert_eq!(out.status.code(), Some(1), "a stopped store is a breach");
    assert!(table.contains("n2"), "the failing node is named: {table}");
}

/// A real Prometheus scrapes `firedrill watch` and evaluates the generated
/// rules; cutting the standby's replication makes the exposure alert fire.
#[test]
fn exposure_alert_fires_in_prometheus_when_replication_is_cut() {
    if !pg_available() {
        return;
    }
    let Some(prometheus) = tool("prometheus") else {
        return;
    };
    let _g = serial();
    let lab = Lab::up(LAB);
    let state = lab.state();
    let rpo = 3.0;
    let for_ = 2.0;
    let interval = 1.0;
    let file = lab.tmp.path().join("objectives.toml");
    std::fs::write(&file, objectives(&state, "3s", "2s")).expect("write");
    let rules = lab.tmp.path().join("rules.yml");
    let out = firedrill(&[
        "rules",
        file.to_str().unwrap(),
        "--out",
        rules.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let wport = free_port();
    let _w = start_watch(&file, wport);
    let pport = free_port();
    let pdir = lab.tmp.path().join("prometheus");
    std::fs::create_dir_all(&pdir).expect("mkdir");
    let config = pdir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: firedrill\n    static_configs:\n      - targets: ['127.0.0.1:{wport}']\n",
            rules.display()
        ),
    )
    .expect("write config");
    let log = std::fs::File::create(pdir.join("prometheus.log")).expect("log");
    let _p = Killed(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                pdir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{pport}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus"),
    );

    let alerts = |name: &str| -> Option<String> {
        let body = http_get(pport, "/api/v1/alerts")?;
        let v: Value = serde_json::from_str(&body).ok()?;
        let list = v["data"]["alerts"].as_array()?.clone();
        list.iter()
            .find(|a| a["labels"]["alertname"] == name)
            .and_then(|a| a["state"].as_str().map(String::from))
    };
    // Healthy first: the target is scraped and nothing fires.
    let healthy = wait_until(Duration::from_secs(30), || {
        let body = http_get(pport, "/api/v1/query?query=firedrill_probe_up")?;
        let v: Value = serde_json::from_str(&body).ok()?;
        let r = v["data"]["result"].as_array()?;
        (r.len() == 2 && r.iter().all(|s| s["value"][1] == "1")).then_some(())
    });
    assert!(
        healthy.is_some(),
        "Prometheus never saw firedrill_probe_up == 1 for both sources"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        alerts("FiredrillRpoExposureBreach"),
        None,
        "nothing fires on a healthy lab"
    );

    // Cut the standby's replication (the standby stops receiving WAL).
    let cut = Instant::now();
    psql(&state, "n2", "ALTER SYSTEM SET primary_conninfo = ''");
    psql(&state, "n2", "SELECT pg_reload_conf()");
    let receivers = wait_until(Duration::from_secs(10), || {
        (psql(&state, "n2", "SELECT count(*) FROM pg_stat_wal_receiver") == "0").then_some(())
    });
    assert!(
        receivers.is_some(),
        "walreceiver still running after the cut"
    );
    let fired = wait_until(Duration::from_secs(30), || {
        (alerts("FiredrillRpoExposureBreach")? == "firing").then(|| cut.elapsed())
    })
    .expect("FiredrillRpoExposureBreach never fired");
    let t = fired.as_secs_f64();
    // The exposure crosses the objective `rpo` after the cut; from there the
    // alert must fire within 2 × (interval + for).
    let after_crossing = t - rpo;
    eprintln!(
        "alert fired {t:.2} s after the cut; {after_crossing:.2} s after the exposure crossed the {rpo} s objective (bound 2 × (interval + for) = {} s)",
        2.0 * (interval + for_)
    );
    assert!(
        after_crossing <= 2.0 * (interval + for_),
        "alert took {after_crossing:.2} s after the crossing"
    );
    assert!(
        t >= rpo,
        "fired before the exposure could exceed the objective: {t}"
    );
    let m = http_get(wport, "/metrics").expect("metrics");
    eprintln!(
        "at firing: heartbeat exposure {:?}, replication_lag exposure {:?}",
        sample(&m, "firedrill_exposure_seconds", &["source=\"heartbeat\""]),
        sample(
            &m,
            "firedrill_exposure_seconds",
            &["source=\"replication_lag\""]
        )
    );
}
