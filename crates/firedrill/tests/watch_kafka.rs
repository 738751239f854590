//! `firedrill watch` and `status` against a real Kafka lab (3 brokers
//! beside 3 separate KRaft controllers, so stopping two brokers leaves a
//! controller quorum to shrink their ISRs): the `isr` exposure on a healthy
//! cluster, with two brokers stopped, and against a port nobody listens
//! on. Run with --nocapture to see the measured values.

mod common;
use common::watch::*;
use common::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn node<'a>(state: &'a Value, name: &str) -> &'a Value {
    state["nodes"]
        .as_array()
        .expect("nodes in state.json")
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in state.json"))
}

/// The broker's direct control listener (`NodeState::port`).
fn addr(state: &Value, name: &str) -> String {
    format!(
        "127.0.0.1:{}",
        node(state, name)["port"].as_u64().expect("port")
    )
}

/// SIGSTOPs the pid the lab recorded for a node, and SIGCONTs it when
/// dropped, whatever happens, so the lab can be brought down.
struct Stopped(i64);
impl Stopped {
    fn new(state: &Value, name: &str) -> Stopped {
        let pid = node(state, name)["proc"]["pid"]
            .as_i64()
            .unwrap_or_else(|| panic!("no pid recorded for {name}"));
        let st = Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(st.success(), "kill -STOP {pid}");
        Stopped(pid)
    }
}
impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

fn objectives(bootstrap: &[(&str, String)]) -> String {
    let mut s = String::from(
        "[watch]\ninterval = \"1s\"\nfor = \"2s\"\n\n[[domain]]\nname = \"events\"\n[domain.store]\nkind = \"kafka\"\n",
    );
    for (name, a) in bootstrap {
        s += &format!("[[domain.store.nodes]]\nname = \"{name}\"\naddr = \"{a}\"\n");
    }
    s += "[domain.objectives.node_loss]\nrpo = \"5s\"\nsources = [\"isr\"]\n";
    s
}

/// Creates `orders` (3 partitions, RF 3, the lab's min.insync.replicas 2)
/// and writes 100 records with acks=all; returns how many were acknowledged.
fn topic_with_data(bootstrap: &str) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let t = NewTopic::new("orders", 3, TopicReplication::Fixed(3));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let res = rt
        .block_on(admin.create_topics([&t], &opts))
        .expect("create topic");
    assert!(res.iter().all(|r| r.is_ok()), "create orders: {res:?}");
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("message.timeout.ms", "15000")
        .create()
        .expect("producer");
    for i in 0..100 {
        let key = i.to_string();
        p.send(BaseRecord::to("orders").key(&key).payload("x"))
            .expect("enqueue");
    }
    p.flush(Duration::from_secs(20)).expect("flush");
    100 - p.in_flight_count() as usize
}

/// One scrape: the `isr` exposure, probe_up, and the three partition gauges.
#[derive(Debug, Clone, Copy)]
struct Seen {
    exposure: f64,
    up: f64,
    offline: Option<f64>,
    under_replicated: Option<f64>,
    under_min_isr: Option<f64>,
}

fn seen(port: u16) -> Option<Seen> {
    let m = http_get(port, "/metrics")?;
    let src = "source=\"isr\"";
    Some(Seen {
        exposure: sample(&m, "firedrill_exposure_seconds", &[src])?,
        up: sample(&m, "firedrill_probe_up", &[src])?,
        offline: sample(&m, "firedrill_kafka_offline_partitions", &[]),
        under_replicated: sample(&m, "firedrill_kafka_under_replicated_partitions", &[]),
        under_min_isr: sample(&m, "firedrill_kafka_under_min_isr_partitions", &[]),
    })
}

fn status(file: &Path) -> (i32, String) {
    let out = firedrill(&["status", file.to_str().expect("utf-8")]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("status (exit {:?}):\n{table}", out.status.code());
    (out.status.code().unwrap_or(-1), table)
}

/// Healthy: exposure 0, no offline or under-replicated partition. Two of
/// the three brokers stopped: the ISRs shrink to one, below
/// min.insync.replicas = 2, and the exposure grows from the first round
/// that saw it. Nothing listening: a breach, never a zero.
#[test]
fn kafka_watch_healthy_two_brokers_stopped_and_silence() {
    if !kafka_available() {
        return;
    }
    let _g = serial();
    let t_up = Instant::now();
    let lab = Lab::up(
        r#"
[lab]
name = "watch-kafka"
kind = "kafka"
dir = "@DIR@"
nodes = 3
controllers = 3

[lab.kafka]
replication_factor = 3
min_insync_replicas = 2
replica_lag_time_max = "2s"
session_timeout = "2s"
"#,
    );
    eprintln!("lab up took {:.1} s", t_up.elapsed().as_secs_f64());
    let state = lab.state();
    let brokers: Vec<(&str, String)> = ["k1", "k2", "k3"]
        .into_iter()
        .map(|n| (n, addr(&state, n)))
        .collect();
    let bootstrap = brokers
        .iter()
        .map(|(_, a)| a.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let acked = topic_with_data(&bootstrap);
    assert_eq!(acked, 100, "acks=all records not all acknowledged");
    let file = lab.tmp.path().join("objectives.toml");
    std::fs::write(&file, objectives(&brokers)).expect("write objectives");
    let wport = free_port();
    let _w = start_watch(&file, wport);
    wait_until(Duration::from_secs(20), || {
        seen(wport).and_then(|s| (s.up == 1.0).then_some(()))
    })
    .expect("the Kafka probe never came up");

    // 1. Healthy.
    let end = Instant::now() + Duration::from_secs(3);
    let mut scrapes = 0;
    while Instant::now() < end {
        let s = seen(wport).expect("metrics");
        eprintln!("healthy: {s:?}");
        assert_eq!(s.up, 1.0, "probe down on a healthy cluster");
        assert_eq!(s.exposure, 0.0, "healthy ISRs: exposure 0");
        assert_eq!(s.offline, Some(0.0));
        assert_eq!(s.under_replicated, Some(0.0));
        assert_eq!(s.under_min_isr, Some(0.0));
        scrapes += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(scrapes >= 4, "too few scrapes: {scrapes}");
    let (code, _) = status(&file);
    assert_eq!(code, 0, "healthy Kafka: status must pass");

    // 2. Two brokers stopped: only k1 is left in every ISR.
    let stopped = [Stopped::new(&state, "k2"), Stopped::new(&state, "k3")];
    let t0 = Instant::now();
    let (first, t_first) = wait_until(Duration::from_secs(30), || {
        let s = seen(wport)?;
        eprintln!("{:.1} s after SIGSTOP: {s:?}", t0.elapsed().as_secs_f64());
        (s.up == 1.0 && s.exposure > 0.0).then(|| (s, t0.elapsed().as_secs_f64()))
    })
    .expect("the exposure never rose above 0 with two brokers stopped");
    std::thread::sleep(Duration::from_secs(3));
    let later = seen(wport).expect("metrics");
    let t_later = t0.elapsed().as_secs_f64();
    eprintln!(
        "FIGURES kafka two brokers stopped: exposure {:.2} s at {t_first:.1} s after SIGSTOP, {:.2} s at {t_later:.1} s; under-replicated {:?}, under min ISR {:?}, offline {:?}, probe_up {}",
        first.exposure,
        later.exposure,
        later.under_replicated,
        later.under_min_isr,
        later.offline,
        later.up
    );
    assert!(
        later.exposure >= first.exposure + 2.0,
        "the exposure must grow: {} -> {}",
        first.exposure,
        later.exposure
    );
    assert!(later.under_replicated.is_some_and(|n| n > 0.0));
    assert!(later.under_min_isr.is_some_and(|n| n > 0.0));
    drop(stopped);

    // 3. Nothing listening: silence is a breach.
    let dead = lab.tmp.path().join("dead.toml");
    std::fs::write(
        &dead,
        objectives(&[("k1", format!("127.0.0.1:{}", free_port()))]),
    )
    .expect("write");
    let t = Instant::now();
    let (code, table) = status(&dead);
    eprintln!(
        "FIGURES kafka nothing listening: status exit {code} after {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(code, 1, "an unreachable cluster must fail status");
    assert!(table.contains("BREACH"), "{table}");
    assert!(table.contains("+Inf"), "never observed reads +Inf: {table}");
}

/// Kafka's `[domain.store]` mistakes: exit 2 with file:line:column, every
/// one at once, before anything is probed.
#[test]
fn bad_kafka_objectives_exit_2_with_positions() {
    let tmp = tempdir();
    let f = tmp.path().join("bad.toml");
    std::fs::write(
        &f,
        r#"[[domain]]
name = "events"
[domain.store]
kind = "kafka"
topics = ["orders", "bad topic", "orders"]
user = "alice"
[[domain.store.nodes]]
name = "k1"
addr = "localhost"
[domain.objectives.node_loss]
rpo = "5s"
sources = ["raft"]
"#,
    )
    .expect("write");
    let out = firedrill(&["status", f.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "FIGURES bad kafka objectives: exit {:?}:\n{err}",
        out.status.code()
    );
    assert_eq!(out.status.code(), Some(2), "{err}");
    for want in [
        "bad.toml:5:21: a Kafka topic name",
        "bad.toml:5:34: topic \"orders\" is listed twice",
        "bad.toml:6:8: user is not used by a kafka store",
        "bad.toml:9:8: addr must be host:port",
        "bad.toml:12:12: a kafka store has no raft source",
    ] {
        assert!(err.contains(want), "{want:?} not in {err}");
    }
}
