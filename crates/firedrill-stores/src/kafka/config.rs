//! `[lab]` options of a Kafka (KRaft) lab and the `kafka_*` options of
//! `[drill.target]`. Every one of them moves a measured figure (RPO, RTO or
//! both), so each is explicit in the spec and in the run's settings line.

use firedrill_spec::{Diagnostic, Dur, LabSpec, LoadedSpec, Spanned, TargetSpec};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// What a Kafka lab adds to `[lab]`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct KafkaLab {
    /// Brokers: 3 or 5 (k1, k2, …). Without `controllers` each is also a
    /// KRaft controller (combined mode).
    pub nodes: Option<Spanned<u32>>,
    /// Separate KRaft controllers (c1, c2, c3): 3, or absent for combined
    /// mode.
    pub controllers: Option<Spanned<u32>>,
    /// Zones: one rack per zone (`broker.rack`), node i (from 0) in zone
    /// `z{(i mod zones) + 1}`, so replicas spread over zones.
    pub zones: Option<Spanned<u32>>,
    /// Where the Kafka jars are; default `FIREDRILL_KAFKA_LIBS`, then
    /// `~/.cache/firedrill/kafka-4.3.1/libs` (scripts/install-deps.sh).
    pub libs_dir: Option<PathBuf>,
    /// The `java` to run; default `JAVA`, `JAVA_HOME/bin/java`, PATH.
    pub java: Option<PathBuf>,
    /// `[lab.kafka]`.
    pub kafka: Option<KafkaLabSpec>,
    /// A Kafka Connect worker running Debezium's PostgreSQL connector on
    /// another member's outbox table (outbox capability drills).
    pub cdc: Option<CdcSpec>,
}

/// `cdc = { source = "orders" }` in a Kafka `[[lab.member]]`: the lab also
/// runs Kafka Connect (standalone) with Debezium's PostgreSQL connector
/// and its outbox EventRouter, capturing the `firedrill_outbox` table of
/// the PostgreSQL member `source` into the topic `outbox.<aggregatetype>`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CdcSpec {
    /// The PostgreSQL member (its domain) whose outbox Debezium reads. It
    /// is listed before this member (it must be up first) and sets
    /// `wal_level = "logical"` in its settings.
    pub source: Spanned<String>,
    /// Connect's `offset.flush.interval.ms` (default 5 s): how often the
    /// worker records how far it has published. A worker killed between
    /// two flushes publishes the rows since the last one again: at most
    /// this much of the outbox is delivered twice.
    pub offset_flush: Option<Spanned<Dur>>,
}

impl CdcSpec {
    pub fn offset_flush(&self) -> Duration {
        self.offset_flush
            .as_ref()
            .map(|d| d.get_ref().0)
            .unwrap_or(Duration::from_secs(5))
    }
}

impl KafkaLab {
    /// The options of a lab that passed validation.
    pub fn of(lab: &LabSpec) -> KafkaLab {
        lab.options().unwrap_or_default()
    }
    pub fn settings(&self) -> KafkaLabSpec {
        self.kafka.clone().unwrap_or_default()
    }
    pub fn brokers(&self) -> u32 {
        self.nodes.as_ref().map(|n| *n.get_ref()).unwrap_or(3)
    }
    pub fn controller_count(&self) -> u32 {
        self.controllers.as_ref().map(|n| *n.get_ref()).unwrap_or(0)
    }
    pub fn zone_count(&self) -> u32 {
        self.zones.as_ref().map(|n| *n.get_ref()).unwrap_or(0)
    }
    /// Brokers k1…kN first, then the separate controllers c1…cM. The index
    /// in this list is the node's `node.id` minus one.
    pub fn node_names(&self) -> Vec<String> {
        (1..=self.brokers())
            .map(|i| format!("k{i}"))
            .chain((1..=self.controller_count()).map(|i| format!("c{i}")))
            .collect()
    }
    /// The zone of node `i` (0-based), when the lab has zones.
    pub fn zone_of(&self, i: usize) -> Option<String> {
        let z = self.zone_count() as usize;
        (z > 0).then(|| format!("z{}", (i % z) + 1))
    }
}

/// `[lab.kafka]`: the broker and topic settings that decide what an
/// acknowledged record survives (replication factor, min ISR, unclean
/// election) and how fast a dead leader is replaced (session timeout).
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct KafkaLabSpec {
    /// The drill topic's (and internal topics') replication factor
    /// (default 3, at most the brokers).
    pub replication_factor: Option<Spanned<u32>>,
    /// `min.insync.replicas` (default 2): with acks=all a leader refuses a
    /// record when fewer replicas are in sync.
    pub min_insync_replicas: Option<Spanned<u32>>,
    /// `unclean.leader.election.enable` (default false): elect an
    /// out-of-sync replica rather than stay offline, losing what it lacks.
    #[serde(default)]
    pub unclean_leader_election: bool,
    /// `replica.lag.time.max.ms` (default 10s here, 30 s in Kafka): how
    /// long a follower may fall behind before the leader drops it from the
    /// ISR.
    pub replica_lag_time_max: Option<Spanned<Dur>>,
    /// `broker.session.timeout.ms` (default 6s here, 9 s in Kafka): how
    /// long the controller waits for a broker's heartbeat before fencing it
    /// and moving its leaderships. The heartbeat interval is a third of it,
    /// at most 1 s.
    pub session_timeout: Option<Spanned<Dur>>,
    /// The drill topic's partitions (default 3).
    pub partitions: Option<Spanned<u32>>,
}

impl KafkaLabSpec {
    pub fn replication_factor(&self) -> u32 {
        self.replication_factor
            .as_ref()
            .map(|v| *v.get_ref())
            .unwrap_or(3)
    }
    pub fn min_insync(&self) -> u32 {
        self.min_insync_replicas
            .as_ref()
            .map(|v| *v.get_ref())
            .unwrap_or(2)
    }
    pub fn replica_lag_time_max(&self) -> Duration {
        self.replica_lag_time_max
            .as_ref()
            .map(|d| d.get_ref().0)
            .unwrap_or(Duration::from_secs(10))
    }
    pub fn session_timeout(&self) -> Duration {
        self.session_timeout
            .as_ref()
            .map(|d| d.get_ref().0)
            .unwrap_or(Duration::from_secs(6))
    }
    /// A third of the session timeout, at most 1 s: three missed beats
    /// before the controller fences.
    pub fn heartbeat_interval(&self) -> Duration {
        (self.session_timeout() / 3).min(Duration::from_secs(1))
    }
    pub fn partitions(&self) -> u32 {
        self.partitions.as_ref().map(|v| *v.get_ref()).unwrap_or(3)
    }
}

/// What a Kafka target adds to `[drill.target]`. The `kafka_` prefix keeps
/// the keys apart from every other store's.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct KafkaTarget {
    /// `acks`: "0", "1" or "all" (default "all").
    pub kafka_acks: Option<Spanned<toml::Value>>,
    /// `enable.idempotence` (default false: librdkafka's default, so
    /// retries can duplicate).
    pub kafka_enable_idempotence: Option<bool>,
    /// `linger.ms` (default 0: each record is sent at once).
    pub kafka_linger: Option<Spanned<Dur>>,
    /// `max.in.flight.requests.per.connection` (default 5).
    pub kafka_max_in_flight: Option<Spanned<u32>>,
    /// `delivery.timeout.ms` (default the workload's op_timeout): how long
    /// librdkafka retries a record before reporting it failed.
    pub kafka_delivery_timeout: Option<Spanned<Dur>>,
    /// `retries` (default librdkafka's, retry until the delivery timeout).
    /// 0 reports a broker's rejection (`NOT_ENOUGH_REPLICAS`) as it is,
    /// which the ledger records as `fail`; retried until the timeout it is
    /// `MSG_TIMED_OUT`, an `unknown`.
    pub kafka_retries: Option<Spanned<u32>>,
}

/// The acks a producer asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Acks {
    Zero,
    One,
    #[default]
    All,
}

impl Acks {
    pub fn as_conf(self) -> &'static str {
        match self {
            Acks::Zero => "0",
            Acks::One => "1",
            Acks::All => "all",
        }
    }
    fn parse(v: &toml::Value) -> Option<Acks> {
        match v {
            toml::Value::String(s) if s == "all" || s == "-1" => Some(Acks::All),
            toml::Value::String(s) if s == "1" => Some(Acks::One),
            toml::Value::String(s) if s == "0" => Some(Acks::Zero),
            toml::Value::Integer(-1) => Some(Acks::All),
            toml::Value::Integer(1) => Some(Acks::One),
            toml::Value::Integer(0) => Some(Acks::Zero),
            _ => None,
        }
    }
}

/// The producer settings in force for a drill.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Producer {
    pub acks: Acks,
    pub idempotence: bool,
    pub linger: Duration,
    pub max_in_flight: u32,
    pub delivery_timeout: Duration,
    /// None: librdkafka's default.
    pub retries: Option<u32>,
}

impl KafkaTarget {
    pub fn of(t: Option<&TargetSpec>) -> KafkaTarget {
        t.and_then(|t| t.options().ok()).unwrap_or_default()
    }
    pub fn producer(&self, op_timeout: Duration) -> Producer {
        Producer {
            acks: self
                .kafka_acks
                .as_ref()
                .and_then(|a| Acks::parse(a.get_ref()))
                .unwrap_or_default(),
            idempotence: self.kafka_enable_idempotence.unwrap_or(false),
            linger: self
                .kafka_linger
                .as_ref()
                .map(|d| d.get_ref().0)
                .unwrap_or(Duration::ZERO),
            max_in_flight: self
                .kafka_max_in_flight
                .as_ref()
                .map(|v| *v.get_ref())
                .unwrap_or(5),
            delivery_timeout: self
                .kafka_delivery_timeout
                .as_ref()
                .map(|d| d.get_ref().0)
                .unwrap_or(op_timeout),
            retries: self.kafka_retries.as_ref().map(|r| *r.get_ref()),
        }
    }
}

/// What Kafka would refuse or could not place.
pub fn check_lab(spec: &LoadedSpec, o: &KafkaLab, out: &mut Vec<Diagnostic>) {
    if let Some(f) = o.cdc.as_ref().and_then(|c| c.offset_flush.as_ref()) {
        if f.get_ref().0 < Duration::from_millis(100) {
            out.push(spec.at(f.span(), "offset_flush must be at least 100ms"));
        }
    }
    if let Some(n) = &o.nodes {
        if ![3, 5].contains(n.get_ref()) {
            out.push(spec.at(n.span(), "a Kafka lab has 3 or 5 nodes (brokers)"));
        }
    }
    if let Some(c) = &o.controllers {
        if *c.get_ref() != 3 {
            out.push(spec.at(
                c.span(),
                "controllers = 3 runs separate KRaft controllers; leave it out for combined broker+controller nodes",
            ));
        }
    }
    if let Some(z) = &o.zones {
        if !(1..=o.brokers()).contains(z.get_ref()) {
            out.push(spec.at(
                z.span(),
                format!("zones must be 1 to the number of nodes ({})", o.brokers()),
            ));
        }
    }
    let k = o.settings();
    let rf = k.replication_factor();
    if let Some(r) = &k.replication_factor {
        if rf == 0 || rf > o.brokers() {
            out.push(spec.at(
                r.span(),
                format!(
                    "replication_factor must be 1 to the number of brokers ({})",
                    o.brokers()
                ),
            ));
        }
    }
    if let Some(m) = &k.min_insync_replicas {
        let v = *m.get_ref();
        if v == 0 || v > rf {
            out.push(spec.at(
                m.span(),
                format!("min_insync_replicas must be 1 to replication_factor ({rf}): with more, no acks=all write could ever succeed"),
            ));
        }
    }
    for (d, what, min) in [
        (&k.replica_lag_time_max, "replica_lag_time_max", 500),
        (&k.session_timeout, "session_timeout", 1000),
    ] {
        if let Some(d) = d {
            if d.get_ref().0.as_millis() < min {
                out.push(spec.at(d.span(), format!("{what} must be at least {min}ms")));
            }
        }
    }
    if let Some(p) = &k.partitions {
        if !(1..=64).contains(p.get_ref()) {
            out.push(spec.at(p.span(), "partitions must be 1 to 64"));
        }
    }
}

/// The producer options: acks is "0", "1" or "all"; the rest in range.
pub fn check_target(spec: &LoadedSpec, o: &KafkaTarget, out: &mut Vec<Diagnostic>) {
    if let Some(a) = &o.kafka_acks {
        match Acks::parse(a.get_ref()) {
            None => out.push(spec.at(
                a.span(),
                format!(
                    "kafka_acks must be \"0\", \"1\" or \"all\", not {}",
                    a.get_ref()
                ),
            )),
            // librdkafka refuses to create such a producer: say so here,
            // before a lab is touched, not at the preflight.
            Some(Acks::Zero | Acks::One) if o.kafka_enable_idempotence == Some(true) => {
                out.push(spec.at(
                    a.span(),
                    format!(
                        "kafka_acks = {} with kafka_enable_idempotence = true: an idempotent producer needs acks = \"all\" (set kafka_enable_idempotence = false)",
                        a.get_ref()
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    if let Some(m) = &o.kafka_max_in_flight {
        if !(1..=1_000_000).contains(m.get_ref()) {
            out.push(spec.at(m.span(), "kafka_max_in_flight must be at least 1"));
        }
    }
    if let Some(d) = &o.kafka_delivery_timeout {
        if d.get_ref().0 < Duration::from_millis(10) {
            out.push(spec.at(d.span(), "kafka_delivery_timeout must be at least 10ms"));
        }
    }
    if let Some(r) = &o.kafka_retries {
        if *r.get_ref() == 0 && o.kafka_enable_idempotence == Some(true) {
            out.push(spec.at(
                r.span(),
                "kafka_retries = 0 with kafka_enable_idempotence = true: an idempotent producer must retry",
            ));
        }
    }
    if let Some(d) = &o.kafka_linger {
        if d.get_ref().0 > Duration::from_secs(900) {
            out.push(spec.at(d.span(), "kafka_linger must be at most 900s"));
        }
    }
}
