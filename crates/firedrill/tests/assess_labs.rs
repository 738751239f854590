//! `firedrill assess examples/checkout.toml` against real labs of its three
//! domains (Patroni, Redis + Sentinel, Kafka), with the example's ports
//! pointed at them: every verdict kind shows up, and the settings in force
//! (Patroni's /config, Sentinel's master, the topic and broker configs) are
//! read and compared with the declaration. Each mismatch is made by
//! changing the declaration, never the lab, and the unchanged file is the
//! negative control.

mod common;
use common::browser::*;
use common::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const PATRONI: &str = r#"
[lab]
name = "assess-orders"
kind = "patroni"
dir = "@DIR@"
standbys = 1
[lab.patroni]
ttl = "30s"
loop_wait = "10s"
retry_timeout = "10s"
synchronous_mode = true
"#;

const REDIS: &str = r#"
[lab]
name = "assess-session"
kind = "redis-sentinel"
dir = "@DIR@"
standbys = 1
[lab.redis]
down_after = "5s"
failover_timeout = "30s"
"#;

const KAFKA: &str = r#"
[lab]
name = "assess-events"
kind = "kafka"
dir = "@DIR@"
nodes = 3
[lab.kafka]
replication_factor = 3
min_insync_replicas = 2
unclean_leader_election = false
session_timeout = "6s"
"#;

fn nodes(state: &Value, key: &str) -> Vec<Value> {
    state[key].as_array().cloned().unwrap_or_default()
}

fn port(state: &Value, key: &str, name: &str, field: &str) -> u64 {
    nodes(state, key)
        .iter()
        .find(|n| n["name"] == name)
        .and_then(|n| n[field].as_u64())
        .unwrap_or_else(|| panic!("no {field} for {name} in {key}"))
}

/// The example with its ports and addresses pointed at the labs.
fn checkout_for(pg: &Value, redis: &Value, kafka: &Value) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/checkout.toml"
    ))
    .expect("example");
    let sentinel = nodes(redis, "sentinels")[0]["port"]
        .as_u64()
        .expect("sentinel port");
    text.replace(
        "port=15432",
        &format!("port={}", port(pg, "nodes", "n1", "port")),
    )
    .replace(
        "port=15433",
        &format!("port={}", port(pg, "nodes", "n2", "port")),
    )
    .replace(
        "127.0.0.1:18008",
        &format!("127.0.0.1:{}", port(pg, "nodes", "n1", "api_port")),
    )
    .replace("127.0.0.1:26379", &format!("127.0.0.1:{sentinel}"))
    .replace(
        "127.0.0.1:16379",
        &format!("127.0.0.1:{}", port(redis, "nodes", "n1", "port")),
    )
    .replace(
        "127.0.0.1:16380",
        &format!("127.0.0.1:{}", port(redis, "nodes", "n2", "port")),
    )
    .replace(
        "127.0.0.1:19092",
        &format!("127.0.0.1:{}", port(kafka, "nodes", "k1", "port")),
    )
    .replace(
        "127.0.0.1:19093",
        &format!("127.0.0.1:{}", port(kafka, "nodes", "k2", "port")),
    )
    .replace(
        "127.0.0.1:19094",
        &format!("127.0.0.1:{}", port(kafka, "nodes", "k3", "port")),
    )
}

/// The example's topic, RF 3, on the Kafka lab.
fn create_topic(kafka: &Value) {
    let bootstrap = format!("127.0.0.1:{}", port(kafka, "nodes", "k1", "port"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin");
    let t = NewTopic::new("checkout-events", 3, TopicReplication::Fixed(3));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    let res = rt
        .block_on(admin.create_topics([&t], &opts))
        .expect("create topic");
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
}

fn assess(file: &Path, state: &Path) -> (i32, Value) {
    let out = Command::new(BIN)
        .args(["assess", "--json"])
        .arg(file)
        .env_remove("FIREDRILL_LOG")
        .env("FIREDRILL_STATE_DIR", state)
        .output()
        .expect("assess");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (out.status.code().unwrap_or(-1), v)
}

fn rows(v: &Value) -> Vec<Value> {
    v["rows"].as_array().cloned().expect("rows")
}

/// `subject objective measure: verdict`, for the assertion messages.
fn table(v: &Value) -> String {
    rows(v)
        .iter()
        .map(|r| {
            format!(
                "{} {} {}: {} {}\n",
                r["subject"], r["objective"], r["measure"], r["verdict"], r["live"]["mismatches"]
            )
        })
        .collect()
}

fn mismatches(v: &Value, subject: &str) -> Vec<String> {
    let mut out: Vec<String> = rows(v)
        .iter()
        .filter(|r| r["subject"] == subject)
        .flat_map(|r| {
            r["live"]["mismatches"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|m| m.as_str().map(str::to_string))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The advice's drill for a row, run with its own lab and recorded.
fn run_advised(v: &Value, subject: &str, objective: &str, tmp: &Path, state: &Path) {
    let r = rows(v)
        .into_iter()
        .find(|r| r["subject"] == subject && r["objective"] == objective && r["advice"].is_object())
        .unwrap_or_else(|| panic!("no advice for {subject} {objective}"));
    let spec = tmp.join("advised.toml");
    let text = r["advice"]["drill"].as_str().expect("drill").replacen(
        "\n[lab]\n",
        &format!("\n[lab]\ndir = \"{}\"\n", tmp.join("advised-lab").display()),
        1,
    );
    std::fs::write(&spec, text).expect("write");
    let out = Command::new(BIN)
        .args(["drill", "--lab"])
        .arg(&spec)
        .arg("--out")
        .arg(tmp.join("advised-run"))
        .env_remove("FIREDRILL_LOG")
        .env("FIREDRILL_STATE_DIR", state)
        .output()
        .expect("drill");
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The same assessment as `--html`, opened in headless Chromium: no
/// console message, every verdict's count as in the JSON, each row's
/// verdict and mismatch on the page; a screenshot in target/tmp.
fn html_in_a_browser(file: &Path, state: &Path, json: &Value, tmp: &Path) {
    let Some(bin) = chromium() else { return };
    let html = tmp.join("assess.html");
    let out = Command::new(BIN)
        .args(["assess", "--html"])
        .arg(&html)
        .arg(file)
        .env_remove("FIREDRILL_LOG")
        .env("FIREDRILL_STATE_DIR", state)
        .output()
        .expect("assess --html");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let page = load(&bin, &html);
    assert!(page.console.is_empty(), "console: {:?}", page.console);
    for (verdict, class) in [
        ("meets", "meets"),
        ("unproven", "unproven"),
        ("at risk", "atrisk"),
        ("cannot meet", "cannot"),
    ] {
        let n = json["counts"][verdict].as_u64().expect("count");
        assert!(n > 0, "{verdict}");
        assert!(
            page.dom
                .contains(&format!("id=\"count-{class}\">{verdict} {n}</span>")),
            "no count {verdict} {n} on the page"
        );
    }
    assert!(
        page.dom.contains("but /config has ttl = 30 s"),
        "no mismatch on the page"
    );
    let png = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("assess-checkout.png");
    screenshot(&bin, &html, &png);
    eprintln!("screenshot: {}", png.display());
}

#[test]
fn checkout_against_labs_every_verdict_and_the_settings_in_force() {
    if !pg_available() || !redis_available() || !kafka_available() {
        return;
    }
    let _g = serial();
    let orders = Lab::up(PATRONI);
    let session = Lab::up(REDIS);
    let events = Lab::up(KAFKA);
    create_topic(&events.state());
    let tmp = tempdir();
    let state = tmp.path().join("state");
    let file = tmp.path().join("checkout.toml");
    let text = checkout_for(&orders.state(), &session.state(), &events.state());

    // 1. As declared, which is how the labs run: no mismatch anywhere.
    std::fs::write(&file, &text).expect("write");
    let (_, v) = assess(&file, &state);
    for d in ["orders", "session", "events"] {
        assert!(mismatches(&v, d).is_empty(), "{d}: {}", table(&v));
    }
    assert_eq!(v["probed"], true);

    // 2. The advised drill for session under node loss, recorded: it meets.
    run_advised(&v, "session", "node", tmp.path(), &state);

    // 3. The declaration changed where the labs cannot follow: Patroni's
    // ttl, and the topic's unclean election. Their rows turn at risk; the
    // session's proven rows still meet; every verdict kind is there.
    let changed = text.replacen("ttl = \"30s\"", "ttl = \"20s\"", 1).replacen(
        "session_timeout = \"6s\"",
        "session_timeout = \"6s\"\nunclean_leader_election = true",
        1,
    );
    std::fs::write(&file, &changed).expect("write");
    let (code, v) = assess(&file, &state);
    eprintln!("{}", table(&v));
    assert_eq!(code, 1);
    let m = mismatches(&v, "orders");
    assert!(
        m.iter()
            .any(|x| x.contains("ttl = 20 s, but /config has ttl = 30 s")),
        "{m:?}"
    );
    let m = mismatches(&v, "events");
    assert!(
        m.iter()
            .any(|x| x.contains("unclean.leader.election.enable=false")),
        "{m:?}"
    );
    assert!(mismatches(&v, "session").is_empty(), "{}", table(&v));
    let kinds: Vec<String> = rows(&v)
        .iter()
        .map(|r| r["verdict"].as_str().unwrap_or("").to_string())
        .collect();
    for k in ["meets", "unproven", "at_risk", "cannot_meet"] {
        assert!(kinds.iter().any(|x| x == k), "no {k}:\n{}", table(&v));
    }
    let node = rows(&v)
        .into_iter()
        .find(|r| r["subject"] == "session" && r["objective"] == "node" && r["measure"] == "rpo")
        .expect("session node RPO");
    assert_eq!(node["verdict"], "meets", "{node}");
    // A failover timing moves RTO only: the orders' corruption RPO (a
    // restore's) is not put at risk by Patroni's ttl.
    let r = rows(&v)
        .into_iter()
        .find(|r| {
            r["subject"] == "orders" && r["objective"] == "corruption" && r["measure"] == "rpo"
        })
        .expect("orders corruption RPO");
    assert!(
        r["live"]["mismatches"].as_array().expect("m").is_empty(),
        "{r}"
    );

    html_in_a_browser(&file, &state, &v, tmp.path());

    // 4. Sentinel's down_after declared 7 s against the 5 s in force.
    let changed = text.replacen("down_after = \"5s\"", "down_after = \"7s\"", 1);
    std::fs::write(&file, &changed).expect("write");
    let (_, v) = assess(&file, &state);
    let m = mismatches(&v, "session");
    assert!(
        m.iter()
            .any(|x| x.contains("down_after = 7 s, but Sentinel has down-after-milliseconds 5000")),
        "{m:?}"
    );

    // 5. Patroni ttl 30 s, as in force, against an RTO of 10 s: cannot
    // meet, from the declared mechanism alone, with no mismatch.
    let changed = text.replacen("rto = \"1m\"", "rto = \"10s\"", 1);
    std::fs::write(&file, &changed).expect("write");
    let (_, v) = assess(&file, &state);
    let r = rows(&v)
        .into_iter()
        .find(|r| r["subject"] == "orders" && r["objective"] == "node" && r["measure"] == "rto")
        .expect("orders node RTO");
    assert_eq!(r["verdict"], "cannot_meet", "{r}");
    assert!(mismatches(&v, "orders").is_empty(), "{}", table(&v));
}
