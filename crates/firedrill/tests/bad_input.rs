//! Bad input: exit 2, a message with file:line:column, and nothing started.

mod common;
use common::*;

const GOOD: &str = r#"[lab]
name = "bad-input"
dir = "@DIR@"
standbys = 1

[drill]
name = "bad-input"

[drill.workload]
clients = 2
duration = "5s"

[[drill.faults]]
at = "1s"
action = "kill"
node = "primary"

[drill.objectives]
rpo = "1s"
"#;

fn check(text: &str, expect_loc: &str, expect_msg: &str) {
    let tmp = tempdir();
    let spec = tmp.path().join("spec.toml");
    std::fs::write(
        &spec,
        text.replace("@DIR@", &tmp.path().join("lab").display().to_string()),
    )
    .unwrap();
    let run = tmp.path().join("run");
    for args in [
        vec![
            "drill",
            spec.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
        ],
        vec!["lab", "up", spec.to_str().unwrap()],
    ] {
        let out = firedrill(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(&format!("{}:{expect_loc}", spec.display())),
            "{args:?}: expected {expect_loc} in: {err}"
        );
        assert!(
            err.contains(expect_msg),
            "{args:?}: expected {expect_msg:?} in: {err}"
        );
        assert!(!tmp.path().join("lab").exists(), "nothing may be started");
        assert!(!run.exists(), "no run directory for invalid input");
    }
}

#[test]
fn unknown_key() {
    check(
        &GOOD.replace("clients = 2", "clients = 2\nclinets = 3"),
        "11:1:",
        "unknown field `clinets`",
    );
}

#[test]
fn bad_duration() {
    check(
        &GOOD.replace("duration = \"5s\"", "duration = \"5 seconds-ish\""),
        "11:12:",
        "bad duration",
    );
}

#[test]
fn node_that_does_not_exist() {
    let tmp = tempdir();
    let spec = tmp.path().join("spec.toml");
    let text = GOOD
        .replace("node = \"primary\"", "node = \"n7\"")
        .replace("@DIR@", &tmp.path().join("lab").display().to_string());
    std::fs::write(&spec, text).unwrap();
    let out = firedrill(&["drill", spec.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{}:16:8: no node named \"n7\"", spec.display())),
        "{err}"
    );
    assert!(!tmp.path().join("lab").exists());
}

/// `failover` names a region, a zone of the lab: a lab without zones has
/// none to fail over to; and it is one recovery among the others. (A
/// drill's recovery is checked by `drill`; `lab up` reads only `[lab]`.)
#[test]
fn failover_without_regions() {
    let tmp = tempdir();
    let good = GOOD.replace("@DIR@", &tmp.path().join("lab").display().to_string());
    let text = good.clone() + "\n[drill.recovery]\nfailover = \"B\"\n";
    check_bad_drill(
        &text,
        "bad.toml:22:12: failover names a region (a zone of the lab), and this lab has none: use promote",
        &[],
    );
    let text = good + "\n[drill.recovery]\nfailover = \"B\"\npromote = \"n2\"\n";
    check_bad_drill(
        &text,
        "give one of promote, failover, command, automatic, restart or restore",
        &[],
    );
    assert!(!tmp.path().join("lab").exists(), "nothing may be started");
}

#[test]
fn missing_file() {
    let out = firedrill(&["drill", "/nonexistent/drill.toml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("/nonexistent/drill.toml"), "{err}");
    let out = firedrill(&["lab", "up", "/nonexistent/lab.toml"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_cli_usage_is_exit_2() {
    let out = firedrill(&["drill"]);
    assert_eq!(out.status.code(), Some(2));
    let out = firedrill(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_explains_each_command() {
    for args in [
        vec!["--help"],
        vec!["drill", "--help"],
        vec!["lab", "up", "--help"],
        vec!["lab", "down", "--help"],
        vec!["lab", "status", "--help"],
        vec!["report", "--help"],
    ] {
        let out = firedrill(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(out.stdout.len() > 100, "{args:?} help is too thin");
    }
}

/// `lab up` of a spec whose [lab] is invalid: exit 2 at the place, nothing started.
fn check_lab(text: &str, expect_loc: &str, expect_msg: &str) {
    let tmp = tempdir();
    let spec = tmp.path().join("spec.toml");
    std::fs::write(
        &spec,
        text.replace("@DIR@", &tmp.path().join("lab").display().to_string()),
    )
    .unwrap();
    let out = firedrill(&["lab", "up", spec.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{}:{expect_loc}", spec.display())),
        "expected {expect_loc} in: {err}"
    );
    assert!(
        err.contains(expect_msg),
        "expected {expect_msg:?} in: {err}"
    );
    assert!(!tmp.path().join("lab").exists(), "nothing may be started");
}

const ETCD: &str = r#"[lab]
name = "bad-etcd"
kind = "etcd"
dir = "@DIR@"

[lab.etcd]
members = 3
heartbeat = "100ms"
election = "1s"
"#;

const PATRONI: &str = r#"[lab]
name = "bad-patroni"
kind = "patroni"
dir = "@DIR@"

[lab.patroni]
ttl = "10s"
loop_wait = "2s"
retry_timeout = "3s"
synchronous_mode = true
"#;

#[test]
fn etcd_election_shorter_than_five_heartbeats() {
    check_lab(
        &ETCD.replace("election = \"1s\"", "election = \"300ms\""),
        "9:12:",
        "at least 5 × heartbeat",
    );
}

#[test]
fn etcd_even_member_count() {
    check_lab(
        &ETCD.replace("members = 3", "members = 4"),
        "7:11:",
        "3 or 5 members",
    );
}

#[test]
fn etcd_unknown_key() {
    check_lab(
        &ETCD.replace("members = 3", "members = 3\nhearbeat = \"1s\""),
        "8:1:",
        "unknown field `hearbeat`",
    );
}

#[test]
fn patroni_timing_rule() {
    check_lab(
        &PATRONI.replace("retry_timeout = \"3s\"", "retry_timeout = \"5s\""),
        "7:7:",
        "loop_wait + 2 × retry_timeout <= ttl",
    );
}

#[test]
fn patroni_fractional_ttl() {
    check_lab(
        &PATRONI.replace("ttl = \"10s\"", "ttl = \"10500ms\""),
        "7:7:",
        "whole number of seconds",
    );
}

#[test]
fn patroni_table_on_an_etcd_lab() {
    check_lab(
        &format!("{ETCD}\n[lab.patroni]\nttl = \"10s\"\n"),
        "11:6:",
        "`patroni` is for a patroni lab (kind = \"patroni\"); this is an etcd lab",
    );
}

#[test]
fn kill_process_outside_patroni() {
    // A drill-only problem: `lab up` of this file is valid (and would start
    // the lab), so only `drill` is checked.
    let tmp = tempdir();
    let spec = tmp.path().join("spec.toml");
    let text = GOOD
        .replace(
            "node = \"primary\"",
            "node = \"primary\"\nkill_process = \"postgres\"",
        )
        .replace("@DIR@", &tmp.path().join("lab").display().to_string());
    std::fs::write(&spec, text).unwrap();
    let out = firedrill(&["drill", spec.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{}:17:16:", spec.display()))
            && err.contains("kill_process is for Patroni nodes"),
        "{err}"
    );
    assert!(!tmp.path().join("lab").exists());
}

#[test]
fn cut_replication_on_etcd() {
    let text = format!(
        "{ETCD}\n[drill]\nname = \"x\"\n[drill.workload]\nduration = \"5s\"\n[[drill.faults]]\nat = \"1s\"\naction = \"cut_replication\"\nnode = \"e2\"\n[drill.objectives]\nrpo = \"0s\"\n"
    );
    let tmp = tempdir();
    let spec = tmp.path().join("spec.toml");
    std::fs::write(
        &spec,
        text.replace("@DIR@", &tmp.path().join("lab").display().to_string()),
    )
    .unwrap();
    let out = firedrill(&["drill", spec.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{}:17:10:", spec.display()))
            && err.contains("cut_replication is for PostgreSQL standbys"),
        "{err}"
    );
    assert!(!tmp.path().join("lab").exists());
}

const REDIS: &str = r#"[lab]
name = "bad-redis"
dir = "@DIR@"
kind = "redis-sentinel"
standbys = 2

[lab.redis]
down_after = "1s"

[drill]
name = "bad-redis"

[drill.target]
redis_write = "set"

[drill.workload]
clients = 2
duration = "5s"

[[drill.faults]]
at = "1s"
action = "kill"
node = "primary"

[drill.recovery]
automatic = true

[drill.objectives]
rpo = "1s"
"#;

/// One command on a spec: exit 2, the location and message, nothing started.
fn check_cmd(cmd: &[&str], text: &str, expect_loc: &str, expect_msg: &str) {
    let tmp = tempdir();
    let spec = tmp.path().join("spec.toml");
    std::fs::write(
        &spec,
        text.replace("@DIR@", &tmp.path().join("lab").display().to_string()),
    )
    .unwrap();
    let mut args: Vec<&str> = cmd.to_vec();
    args.push(spec.to_str().unwrap());
    let out = firedrill(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(
        err.contains(&format!("{}:{expect_loc}", spec.display())),
        "{args:?}: expected {expect_loc} in: {err}"
    );
    assert!(
        err.contains(expect_msg),
        "{args:?}: expected {expect_msg:?} in: {err}"
    );
    assert!(!tmp.path().join("lab").exists(), "nothing may be started");
}

#[test]
fn redis_unknown_key_in_lab_redis() {
    check(
        &REDIS.replace("down_after = \"1s\"", "down_afer = \"1s\""),
        "8:1:",
        "unknown field `down_afer`",
    );
}

#[test]
fn redis_bad_write_command() {
    check(
        &REDIS.replace("redis_write = \"set\"", "redis_write = \"lpush\""),
        "14:15:",
        "unknown variant `lpush`",
    );
}

#[test]
fn redis_lab_settings_are_checked() {
    check_cmd(
        &["lab", "up"],
        &REDIS.replace("down_after = \"1s\"", "min_replicas_max_lag = \"500ms\""),
        "8:24:",
        "min_replicas_max_lag is whole seconds",
    );
}

#[test]
fn redis_drill_options_are_checked() {
    check_cmd(
        &["drill"],
        &REDIS.replace("redis_write = \"set\"", "redis_wait_timeout = \"1s\""),
        "14:22:",
        "redis_wait_timeout needs redis_wait",
    );
    check_cmd(
        &["drill"],
        &REDIS.replace("action = \"kill\"", "action = \"cut_replication\""),
        "22:10:",
        "cut_replication is a PostgreSQL fault",
    );
}

const ETCD_ENDPOINTS: &str = r#"[drill]
name = "etcd-endpoints"
[drill.target]
kind = "etcd"
nodes = [
  { name = "etcd1", conninfo = "http://127.0.0.1:2379", data_dir = "/var/lib/etcd" },
  { name = "etcd2", conninfo = "http://127.0.0.1:22379" },
]
[drill.workload]
duration = "4s"
[[drill.faults]]
at = "1s"
action = "kill"
node = "etcd2"
[drill.recovery]
automatic = true
"#;

/// A data directory gives a pid through PostgreSQL's postmaster.pid only:
/// other stores' endpoints name a pid file.
#[test]
fn non_postgres_endpoints_need_a_pid_file() {
    check_cmd(
        &["drill"],
        ETCD_ENDPOINTS,
        "6:12:",
        "data_dir is for PostgreSQL endpoints (its postmaster.pid): give pid_file for \"etcd1\"",
    );
    check_cmd(
        &["drill"],
        ETCD_ENDPOINTS,
        "14:8:",
        "kill needs the pid of \"etcd2\": give pid_file for that endpoint",
    );
}
