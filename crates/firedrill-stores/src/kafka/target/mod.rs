//! Kafka target: one record per ledger write (key = the seq in decimal,
//! the workload's payload as value) to the run's drill topic,
//! `firedrill-<run>`, which the target creates with P partitions and the
//! lab's replication factor, `min.insync.replicas` and unclean-election
//! setting. Records are spread by key over the partitions.
//!
//! Outcomes (DESIGN, "Streams"):
//! - `ok`: a delivery report without error, i.e. the leader's answer with
//!   the record's offset, given as the acks setting asks (acks=all: every
//!   ISR member has it and the ISR had at least min.insync.replicas;
//!   acks=1: the leader's log has it). With acks=0 no broker ever answers;
//!   librdkafka reports the record delivered once it is written to the
//!   socket, which is what an acks=0 producer trusts, so it is `ok` too:
//!   the drill measures what that trust costs.
//! - `fail`: the record is definitely not in the log: the leader rejected
//!   it before appending (NOT_ENOUGH_REPLICAS, too large, unknown topic
//!   or partition), or librdkafka says it never reached a broker
//!   (`rd_kafka_message_status` NOT_PERSISTED: never sent, the local
//!   queue was full) and the error is not one that can follow an append.
//! - `unknown`: everything else: NOT_ENOUGH_REPLICAS_AFTER_APPEND (the
//!   leader appended it, then the ISR shrank below min.insync.replicas
//!   before it was replicated; a later leader may or may not have it),
//!   request or delivery timeouts after the send, a lost connection, no
//!   report by the operation's deadline.
//!
//! Roles: the leader of partition 0 of the drill topic is the primary,
//! the other live brokers (and separate controllers) standbys; a broker
//! the metadata does not list (dead, fenced) is unreachable.
//!
//! Predicted RPO: the heartbeat is a counter produced with acks=all to
//! `firedrill-hb-<run>`, one partition placed on the same replicas as the
//! drill topic's partition 0 (same preferred leader, same followers). After
//! each acknowledged beat the target reads that partition's ISR and
//! credits the beat to every ISR member: a node "has" a heartbeat when it
//! was in the ISR when the beat was acknowledged. So a node's lag is the
//! time since it left the ISR while beats kept being acknowledged, which is
//! the fallback DESIGN's predicted RPO allows ("the time since the ISR
//! shrank"): the window of records acknowledged without that replica.
//! Offsets are not turned into time: librdkafka has no DescribeLogDirs.

pub(crate) mod audit;
pub(crate) mod client;
pub(crate) mod consumer;
pub(crate) mod meta;

pub use client::outcome_of;
pub use meta::{Meta, Part};

use super::config::Producer;
use async_trait::async_trait;
use firedrill_ledger::Outcome;
use firedrill_targets::{
    FailoverSignal, FailoverWatch, Heartbeat, HeartbeatReader, LiveRole, Target, TargetError,
    TargetNode, WorkloadClient,
};
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::ThreadedProducer;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The drill topic's settings, from the lab (or Kafka's defaults for
/// endpoints).
#[derive(Debug, Clone)]
pub struct TopicSettings {
    pub partitions: u32,
    pub replication_factor: u32,
    pub min_insync: u32,
    pub unclean: bool,
}

/// What a lab adds: where each node keeps its data and log (the audit of
/// an offline partition reads the last ISR member's log from disk, and
/// the active controller is read from the voters' quorum-state), and the
/// Java to run Kafka's DumpLogSegments with.
#[derive(Debug, Clone)]
pub struct LabInfo {
    /// (name, data dir, log file), index + 1 = node.id.
    pub nodes: Vec<(String, PathBuf, PathBuf)>,
    pub java: PathBuf,
    pub classpath: String,
    pub run_as: Option<firedrill_proc::RunAs>,
    /// The KRaft voters' controller listeners (name, host:port).
    pub voters: Vec<(String, String)>,
    /// The lab's directory: a restart reads its state.
    pub dir: PathBuf,
}

/// How many of `voters` accept a connection on their controller listener
/// within `limit` each. A voter that refuses cannot vote, so fewer than a
/// majority means no controller can be active.
async fn voters_up(voters: &[(String, String)], limit: Duration) -> usize {
    let tries = voters.iter().map(|(_, a)| accepts(a, limit));
    futures_util::future::join_all(tries)
        .await
        .into_iter()
        .filter(|up| *up)
        .count()
}

/// Whether `addr` accepts a TCP connection within `limit`: a killed
/// broker or voter refuses at once.
async fn accepts(addr: &str, limit: Duration) -> bool {
    matches!(
        tokio::time::timeout(limit, tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

/// The warning for a lab whose KRaft quorum lost its majority, or None
/// while a majority of the voters is up.
pub async fn quorum_warning(voters: &[(String, String)]) -> Option<String> {
    if voters.is_empty() {
        return None;
    }
    let up = voters_up(voters, Duration::from_millis(200)).await;
    (up <= voters.len() / 2).then(|| {
        format!(
            "no active controller: the KRaft quorum lost its majority ({up} of {} voters left); no broker can be fenced and no leader elected until a majority is back",
            voters.len()
        )
    })
}

fn err(node: &str, msg: impl std::fmt::Display) -> TargetError {
    TargetError::Node {
        node: node.into(),
        msg: msg.to_string(),
    }
}

/// The target for one trial.
pub struct KafkaTarget {
    run_id: String,
    nodes: Vec<TargetNode>,
    topic: String,
    hb_topic: String,
    settings: TopicSettings,
    producer: Producer,
    lab: Option<LabInfo>,
    meta: Arc<BaseConsumer>,
    /// Node id → the last heartbeat acknowledged while it was in the ISR.
    beats: Arc<Mutex<HashMap<i32, i64>>>,
}

impl KafkaTarget {
    pub fn new(
        nodes: &[TargetNode],
        run_id: &str,
        settings: TopicSettings,
        producer: Producer,
        lab: Option<LabInfo>,
    ) -> Result<KafkaTarget, TargetError> {
        let safe: String = run_id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
            .collect();
        let bootstrap = control_bootstrap(nodes);
        let meta = meta::meta_client(&bootstrap).map_err(TargetError::Other)?;
        Ok(KafkaTarget {
            run_id: run_id.into(),
            nodes: nodes.to_vec(),
            topic: format!("firedrill-{safe}"),
            hb_topic: format!("firedrill-hb-{safe}"),
            settings,
            producer,
            lab,
            meta: Arc::new(meta),
            beats: Arc::default(),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// A lab node's `node.id`: its place in the lab (brokers, then
    /// controllers); for endpoints, the broker whose advertised address is
    /// the node's control address.
    fn id_of(&self, name: &str) -> Option<i32> {
        let i = self.nodes.iter().position(|n| n.name == name)?;
        Some(i as i32 + 1)
    }

    fn name_of(&self, id: i32) -> Option<String> {
        let i = usize::try_from(id).ok()?.checked_sub(1)?;
        self.nodes.get(i).map(|n| n.name.clone())
    }

    fn is_broker(&self, name: &str) -> bool {
        !super::lab::is_controller_only(name)
    }

    async fn fetch(&self, topic: Option<&str>, limit: Duration) -> Result<Meta, TargetError> {
        let c = self.meta.clone();
        let topic = topic.map(str::to_string);
        tokio::task::spawn_blocking(move || meta::fetch(&c, topic.as_deref(), limit))
            .await
            .map_err(|e| TargetError::Other(e.to_string()))?
            .map_err(TargetError::Other)
    }

    /// Creates the drill topic and the heartbeat topic if missing, and
    /// waits until every partition has a leader.
    async fn ensure_topics(&self) -> Result<(), TargetError> {
        let m = self.fetch(None, Duration::from_secs(3)).await?;
        let admin = meta::admin_client(&control_bootstrap(&self.nodes)).map_err(TargetError::Other)?;
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let misr = self.settings.min_insync.to_string();
        let unclean = self.settings.unclean.to_string();
        if !m.topics.contains_key(&self.topic) {
            let t = NewTopic::new(
                &self.topic,
                self.settings.partitions as i32,
                TopicReplication::Fixed(self.settings.replication_factor as i32),
            )
            .set("min.insync.replicas", &misr)
            .set("unclean.leader.election.enable", &unclean);
            create(&admin, &t, &opts).await?;
        }
        let p0 = self.wait_leaders(&self.topic).await?;
        let m = self.fetch(None, Duration::from_secs(3)).await?;
        if !m.topics.contains_key(&self.hb_topic) {
            let replicas = [p0.replicas.as_slice()];
            let t = NewTopic::new(&self.hb_topic, 1, TopicReplication::Variable(&replicas))
                .set("min.insync.replicas", &misr)
                .set("unclean.leader.election.enable", &unclean);
            create(&admin, &t, &opts).await?;
        }
        self.wait_leaders(&self.hb_topic).await?;
        Ok(())
    }

    /// Partition 0 once every partition of `topic` has a leader.
    async fn wait_leaders(&self, topic: &str) -> Result<Part, TargetError> {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(m) = self.fetch(Some(topic), Duration::from_secs(2)).await {
                if let Some(parts) = m.topics.get(topic) {
                    if !parts.is_empty() && parts.iter().all(|p| p.leader >= 0) {
                        return Ok(parts[0].clone());
                    }
                }
            }
            if Instant::now() > end {
                return Err(TargetError::Other(format!(
                    "topic {topic} has partitions without a leader after 20 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn create(
    admin: &rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>,
    t: &NewTopic<'_>,
    opts: &AdminOptions,
) -> Result<(), TargetError> {
    let res = admin
        .create_topics([t], opts)
        .await
        .map_err(|e| TargetError::Other(format!("create topic {}: {e}", t.name)))?;
    for r in res {
        if let Err((name, code)) = r {
            if code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                return Err(TargetError::Other(format!("create topic {name}: {code}")));
            }
        }
    }
    Ok(())
}

/// The brokers' control addresses (the direct `FIREDRILL` listener).
/// The brokers whose direct listener accepts a connection. Without a
/// controller quorum nothing fences a dead broker, so the metadata still
/// names it leader of its partitions: those are read from disk like an
/// offline partition, not waited for, and are not anybody's primary.
pub(super) async fn reachable_brokers(nodes: &[TargetNode]) -> Vec<i32> {
    let probes = nodes.iter().enumerate().map(|(i, n)| async move {
        accepts(&n.control, Duration::from_secs(1))
            .await
            .then_some(i as i32 + 1)
    });
    futures_util::future::join_all(probes)
        .await
        .into_iter()
        .flatten()
        .collect()
}

fn control_bootstrap(nodes: &[TargetNode]) -> String {
    nodes
        .iter()
        .filter(|n| !super::lab::is_controller_only(&n.name))
        .map(|n| n.control.clone())
        .collect::<Vec<_>>()
        .join(",")
}

#[async_trait]
impl Target for KafkaTarget {
    fn kind(&self) -> &'static str {
        "kafka"
    }
    fn run_id(&self) -> &str {
        &self.run_id
    }
    fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// The lab's `cdc` worker (`connect`), started again on its offsets.
    async fn restart(&self, node: &str) -> Result<(), TargetError> {
        super::connect::restart_in(self.lab.as_ref().map(|l| l.dir.clone()), node).await
    }

    /// The node names a role names: `leader` (of `partition`, default 0)
    /// or `controller` (the active KRaft controller).
    async fn resolve_role(
        &self,
        role: &str,
        partition: Option<u32>,
    ) -> Result<Vec<String>, TargetError> {
        match role {
            "leader" => {
                let p = partition.unwrap_or(0) as i32;
                let m = self.fetch(Some(&self.topic), Duration::from_secs(2)).await?;
                let part = m
                    .partition(&self.topic, p)
                    .ok_or_else(|| TargetError::Other(format!("{} has no partition {p}", self.topic)))?;
                self.name_of(part.leader)
                    .map(|n| vec![n])
                    .ok_or_else(|| TargetError::Other(format!("partition {p} has no leader")))
            }
            "controller" => {
                let lab = self.lab.as_ref().ok_or(TargetError::Unsupported {
                    kind: "kafka",
                    what: "find the active controller of endpoints (only a lab's quorum-state files tell it)",
                })?;
                let dirs: Vec<(String, PathBuf)> =
                    lab.nodes.iter().map(|(n, d, _)| (n.clone(), d.clone())).collect();
                super::status::active_controller(&dirs)
                    .map(|(n, _)| vec![n])
                    .ok_or_else(|| TargetError::Other("no voter names a quorum leader".into()))
            }
            other => Err(TargetError::Other(format!(
                "a Kafka target resolves the roles leader and controller, not {other:?}"
            ))),
        }
    }

    /// The first call creates the run's topics, so that the primary the
    /// preflight sees is already the leader of partition 0.
    async fn roles(&self, limit: Duration) -> Vec<(String, LiveRole)> {
        let m = match self.fetch(Some(&self.topic), limit).await {
            Ok(m) if m.topics.contains_key(&self.topic) => Ok(m),
            Ok(_) => match self.ensure_topics().await {
                Ok(()) => self.fetch(Some(&self.topic), limit).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = &m {
            tracing::debug!("kafka roles: {e}");
        }
        let leader = m
            .as_ref()
            .ok()
            .and_then(|m| m.partition(&self.topic, 0))
            .map(|p| p.leader);
        let live = reachable_brokers(&self.nodes).await;
        self.nodes
            .iter()
            .map(|n| {
                let id = self.id_of(&n.name).unwrap_or(-1);
                let role = match &m {
                    Err(_) => LiveRole::Unreachable,
                    Ok(_) if !self.is_broker(&n.name) => LiveRole::Standby,
                    Ok(m) if !m.brokers.contains(&id) || !live.contains(&id) => {
                        LiveRole::Unreachable
                    }
                    Ok(_) if leader == Some(id) => LiveRole::Primary,
                    Ok(_) => LiveRole::Standby,
                };
                (n.name.clone(), role)
            })
            .collect()
    }

    async fn setup(&self, _primary: &str) -> Result<(), TargetError> {
        self.ensure_topics().await
    }

    /// Until `node` is in the ISR of both topics' partition 0 (or holds no
    /// replica of them).
    async fn wait_replicated(&self, node: &str, limit: Duration) -> Result<(), TargetError> {
        let Some(id) = self.id_of(node).filter(|_| self.is_broker(node)) else {
            return Ok(());
        };
        let end = Instant::now() + limit;
        loop {
            let m = self.fetch(None, Duration::from_secs(2)).await?;
            let ok = [&self.topic, &self.hb_topic].iter().all(|t| {
                m.topics.get(*t).is_some_and(|ps| {
                    ps.iter()
                        .all(|p| !p.replicas.contains(&id) || p.isr.contains(&id))
                })
            });
            if ok {
                return Ok(());
            }
            if Instant::now() > end {
                return Err(err(node, "not in the ISR of the drill topic"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn client(
        &self,
        primary: &str,
        id: u64,
        payload_bytes: usize,
        _op_timeout: Duration,
    ) -> Result<Box<dyn WorkloadClient>, TargetError> {
        let mut addrs: Vec<&TargetNode> = self
            .nodes
            .iter()
            .filter(|n| self.is_broker(&n.name))
            .collect();
        addrs.sort_by_key(|n| n.name != primary);
        let bootstrap: Vec<String> = addrs.iter().map(|n| n.client.clone()).collect();
        let prod = client::producer(&bootstrap.join(","), &self.producer)
            .map_err(|e| err(primary, e))?;
        Ok(Box::new(KafkaClient {
            prod,
            topic: self.topic.clone(),
            payload: firedrill_targets::payload(id, payload_bytes),
        }))
    }

    fn heartbeat(&self, primary: &str) -> Result<Option<Box<dyn Heartbeat>>, TargetError> {
        let p = Producer {
            acks: super::config::Acks::All,
            idempotence: false,
            linger: Duration::ZERO,
            max_in_flight: 1,
            delivery_timeout: Duration::from_secs(1),
            retries: None,
        };
        let prod = client::producer(&control_bootstrap(&self.nodes), &p)
            .map_err(|e| err(primary, e))?;
        Ok(Some(Box::new(KafkaHeartbeat {
            prod,
            topic: self.hb_topic.clone(),
            meta: self.meta.clone(),
            beats: self.beats.clone(),
        })))
    }

    /// A consumer group on the drill topic, for consumer_rto and the rest.
    fn consumer(&self) -> Result<Option<Box<dyn firedrill_targets::StreamConsumer>>, TargetError> {
        let boot: Vec<String> = (self.nodes.iter())
            .filter(|n| self.is_broker(&n.name))
            .map(|n| n.client.clone())
            .collect();
        Ok(Some(Box::new(consumer::one_cluster(&self.topic, boot.join(",")))))
    }

    fn heartbeat_reader(
        &self,
        node: &str,
    ) -> Result<Option<Box<dyn HeartbeatReader>>, TargetError> {
        if !self.is_broker(node) {
            return Ok(None);
        }
        Ok(self.id_of(node).map(|id| {
            Box::new(BeatReader {
                id,
                beats: self.beats.clone(),
            }) as Box<dyn HeartbeatReader>
        }))
    }

    /// Every live broker is as good a place to audit from as any other:
    /// the audit reads the whole topic through the cluster.
    async fn position(&self, node: &str) -> Option<u64> {
        let id = self.id_of(node)?;
        let m = self.fetch(None, Duration::from_secs(2)).await.ok()?;
        m.brokers.contains(&id).then_some(1)
    }

    async fn audit(&self, _node: &str) -> Result<Vec<u64>, TargetError> {
        audit::audit(self).await
    }

    async fn cleanup(&self, _node: &str) -> Result<(), TargetError> {
        let admin = meta::admin_client(&control_bootstrap(&self.nodes)).map_err(TargetError::Other)?;
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
        admin
            .delete_topics(&[&self.topic, &self.hb_topic], &opts)
            .await
            .map_err(|e| TargetError::Other(e.to_string()))?;
        Ok(())
    }

    /// From the broker's own startup line ("Kafka version: 4.3.1") in a
    /// lab's log; librdkafka's ApiVersions gives API ranges, not a version.
    async fn server_version(&self, node: &str) -> Result<String, TargetError> {
        let from_log = self.lab.as_ref().and_then(|l| {
            let (_, _, log) = l.nodes.iter().find(|(n, _, _)| n == node)?;
            let text = std::fs::read_to_string(log).ok()?;
            let v = text.split("Kafka version: ").nth(1)?;
            Some(v.split_whitespace().next()?.to_string())
        });
        Ok(match from_log {
            Some(v) => format!("Apache Kafka {v} (KRaft)"),
            None => "Apache Kafka (version not known to the client)".into(),
        })
    }

    async fn unrecovered_reason(&self) -> Option<String> {
        quorum_warning(&self.lab.as_ref()?.voters).await
    }

    async fn failover_watch(&self) -> Option<Box<dyn FailoverWatch>> {
        let m = self.fetch(Some(&self.topic), Duration::from_secs(2)).await.ok()?;
        let leaders = m
            .topics
            .get(&self.topic)?
            .iter()
            .map(|p| (p.id, p.leader))
            .collect();
        Some(Box::new(LeaderWatch {
            meta: self.meta.clone(),
            topic: self.topic.clone(),
            names: self.nodes.iter().map(|n| n.name.clone()).collect(),
            leaders,
            voters: self.lab.as_ref().map(|l| l.voters.clone()).unwrap_or_default(),
            polls: 0,
            warned: false,
        }))
    }
}

/// One workload client: its own librdkafka producer (its own connections
/// to every broker), one record per write.
struct KafkaClient {
    prod: ThreadedProducer<client::Reports>,
    topic: String,
    payload: Vec<u8>,
}

#[async_trait]
impl WorkloadClient for KafkaClient {
    /// librdkafka reconnects and finds new leaders by itself.
    async fn ready(&mut self) {}

    async fn write(&mut self, seq: u64, deadline: Instant) -> Outcome {
        let limit = deadline.saturating_duration_since(Instant::now());
        let key = seq.to_string();
        client::send(&self.prod, &self.topic, None, key.as_bytes(), &self.payload, limit)
            .await
            .outcome
    }
}

struct KafkaHeartbeat {
    prod: ThreadedProducer<client::Reports>,
    topic: String,
    meta: Arc<BaseConsumer>,
    beats: Arc<Mutex<HashMap<i32, i64>>>,
}

#[async_trait]
impl Heartbeat for KafkaHeartbeat {
    async fn beat(&mut self, n: i64, limit: Duration) -> bool {
        let v = n.to_string();
        let d = client::send(&self.prod, &self.topic, Some(0), b"hb", v.as_bytes(), limit).await;
        if d.outcome != Outcome::Ok {
            return false;
        }
        let c = self.meta.clone();
        let topic = self.topic.clone();
        let m = tokio::task::spawn_blocking(move || {
            meta::fetch(&c, Some(&topic), Duration::from_millis(500))
        })
        .await;
        if let Ok(Ok(m)) = m {
            if let Some(p) = m.partition(&self.topic, 0) {
                let mut b = self.beats.lock().unwrap_or_else(|e| e.into_inner());
                for id in &p.isr {
                    b.insert(*id, n);
                }
            }
        }
        true
    }
}

struct BeatReader {
    id: i32,
    beats: Arc<Mutex<HashMap<i32, i64>>>,
}

#[async_trait]
impl HeartbeatReader for BeatReader {
    async fn read(&mut self, _limit: Duration) -> Option<i64> {
        self.beats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&self.id)
            .copied()
    }
}

/// Polls the drill topic's metadata every 100 ms; a new leader of any of
/// its partitions is the `detected` phase (a zone loss may spare the
/// leader of partition 0 and move the others').
struct LeaderWatch {
    meta: Arc<BaseConsumer>,
    topic: String,
    names: Vec<String>,
    /// partition → its leader when last seen (-1: none).
    leaders: BTreeMap<i32, i32>,
    /// A lab's voters: every second the watch checks that a majority is
    /// up, and warns once when it is not (the drill then cannot recover).
    voters: Vec<(String, String)>,
    polls: u64,
    warned: bool,
}

impl LeaderWatch {
    fn name(&self, id: i32) -> String {
        usize::try_from(id - 1)
            .ok()
            .and_then(|i| self.names.get(i).cloned())
            .unwrap_or_else(|| format!("broker {id}"))
    }
}

#[async_trait]
impl FailoverWatch for LeaderWatch {
    async fn next(&mut self) -> Option<FailoverSignal> {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.polls += 1;
            if !self.warned && self.polls.is_multiple_of(10) {
                if let Some(w) = quorum_warning(&self.voters).await {
                    tracing::warn!("{w}");
                    self.warned = true;
                }
            }
            let c = self.meta.clone();
            let topic = self.topic.clone();
            let Ok(Ok(m)) = tokio::task::spawn_blocking(move || {
                meta::fetch(&c, Some(&topic), Duration::from_millis(500))
            })
            .await
            else {
                continue;
            };
            let parts = m.topics.get(&self.topic).cloned().unwrap_or_default();
            let Some(p) = parts.into_iter().find(|p| {
                p.leader >= 0 && self.leaders.get(&p.id).is_some_and(|l| *l != p.leader)
            }) else {
                continue;
            };
            let old = self.leaders.insert(p.id, p.leader).unwrap_or(-1);
            let isr: Vec<String> = p.isr.iter().map(|i| self.name(*i)).collect();
            let how = format!(
                "partition {} leader {} -> {} (ISR [{}])",
                p.id,
                if old >= 0 { self.name(old) } else { "none".into() },
                self.name(p.leader),
                isr.join(", ")
            );
            return Some(FailoverSignal {
                how,
                new_primary: (p.id == 0).then(|| self.name(p.leader)),
            });
        }
    }
}

/// Metadata of every topic from `bootstrap`, for `lab status` (blocking).
pub fn fetch_blocking(bootstrap: &str, limit: Duration) -> Result<Meta, String> {
    let c = meta::meta_client(bootstrap)?;
    meta::fetch(&c, None, limit)
}
