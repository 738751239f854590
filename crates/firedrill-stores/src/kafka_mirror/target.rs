//! The mirror target: the workload produces to region A's drill topic
//! `firedrill-<run>`; MM2 copies it to B as `A.firedrill-<run>` (its
//! default replication policy).
//!
//! - Roles: the region the producers write to is the primary (A until a
//!   failover), the other one a standby while its broker answers.
//! - Failover (`failover = "B"` or `promote = "b1"`): the producers
//!   switch to B and write to B's own `firedrill-<run>`, never into the
//!   mirrored `A.firedrill-<run>` (MM2 owns that topic; a consumer reads
//!   both, as MM2's docs advise for active-passive).
//! - Predicted RPO: firedrill's heartbeat, a counter produced to A's
//!   `firedrill-hb-<run>` every 50 ms; the reader on B follows
//!   `A.firedrill-hb-<run>`. The engine turns the newest counter seen on
//!   B into the mirroring lag: the time since the first beat B lacks was
//!   acknowledged by A, so what a region loss now would lose.
//! - Audit: B's `A.firedrill-<run>` plus B's own `firedrill-<run>` (A's
//!   topic when the drill never failed over).

use crate::kafka::config::{Acks, Producer};
use crate::kafka::target::{audit::read_partitions, meta, Meta};
use crate::kafka::target::client as kclient;
use async_trait::async_trait;
use firedrill_ledger::Outcome;
use firedrill_targets::{
    Heartbeat, HeartbeatReader, LiveRole, ReportedLag, StreamConsumer, Target, TargetError, TargetNode, TargetOpener,
    WorkloadClient,
};
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::ThreadedProducer;
use rdkafka::{Offset, TopicPartitionList};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// MM2 finds a new topic on its refresh interval and then restarts its
/// source task: on 2 loaded cores that is well past the engine's 15 s.
const MIRROR_WAIT: Duration = Duration::from_secs(90);

/// Opens a [`MirrorTarget`] per trial.
#[derive(Debug, Clone)]
pub struct MirrorOpener {
    pub partitions: u32,
    pub producer: Producer,
    /// (node, log file): the brokers' logs, for the server version.
    pub logs: Vec<(String, PathBuf)>,
    /// MM2's emit.checkpoints.interval, for the consumer's settings line.
    pub checkpoint_interval: Duration,
    /// Active-active: half the clients write from region B all along.
    pub mirror: super::config::Mirror,
}

impl TargetOpener for MirrorOpener {
    fn kind(&self) -> &'static str {
        "kafka-mirror"
    }
    fn open(
        &self,
        nodes: &[TargetNode],
        _password: Option<&str>,
        run_id: &str,
    ) -> Result<Box<dyn Target>, TargetError> {
        Ok(Box::new(MirrorTarget::new(nodes, run_id, self.clone())?))
    }
}

pub struct MirrorTarget {
    run_id: String,
    nodes: Vec<TargetNode>,
    topic: String,
    hb_topic: String,
    o: MirrorOpener,
    /// The region (index into `nodes`) the producers write to.
    active: Arc<AtomicUsize>,
    meta: Vec<Arc<BaseConsumer>>,
}

fn err(node: &str, msg: impl std::fmt::Display) -> TargetError {
    TargetError::Node {
        node: node.into(),
        msg: msg.to_string(),
    }
}

/// The name MM2's default replication policy gives A's `topic` on B.
pub fn remote(topic: &str) -> String {
    format!("{}.{topic}", super::lab::REGIONS[0])
}

impl MirrorTarget {
    fn new(nodes: &[TargetNode], run_id: &str, o: MirrorOpener) -> Result<Self, TargetError> {
        let safe: String = run_id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
            .collect();
        if nodes.len() != 2 {
            return Err(TargetError::Other(format!(
                "a mirror target has the brokers of regions A and B, got {} nodes",
                nodes.len()
            )));
        }
        let meta = nodes
            .iter()
            .map(|n| meta::meta_client(&n.control).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(TargetError::Other)?;
        Ok(MirrorTarget {
            run_id: run_id.into(),
            nodes: nodes.to_vec(),
            topic: format!("firedrill-{safe}"),
            hb_topic: format!("firedrill-hb-{safe}"),
            o,
            active: Arc::new(AtomicUsize::new(0)),
            meta,
        })
    }

    fn index(&self, node: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == node)
    }

    async fn fetch(&self, i: usize, topic: Option<&str>) -> Result<Meta, TargetError> {
        let c = self.meta[i].clone();
        let topic = topic.map(str::to_string);
        tokio::task::spawn_blocking(move || meta::fetch(&c, topic.as_deref(), Duration::from_secs(2)))
            .await
            .map_err(|e| TargetError::Other(e.to_string()))?
            .map_err(TargetError::Other)
    }

    async fn create(&self, i: usize, topic: &str, partitions: u32) -> Result<(), TargetError> {
        let admin = meta::admin_client(&self.nodes[i].control).map_err(TargetError::Other)?;
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let t = NewTopic::new(topic, partitions as i32, TopicReplication::Fixed(1));
        let res = admin
            .create_topics([&t], &opts)
            .await
            .map_err(|e| err(&self.nodes[i].name, format!("create topic {topic}: {e}")))?;
        for r in res {
            if let Err((name, code)) = r {
                if code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                    return Err(err(&self.nodes[i].name, format!("create topic {name}: {code}")));
                }
            }
        }
        Ok(())
    }

    /// Until every partition of `topic` on region `i` has a leader.
    async fn wait_topic(&self, i: usize, topic: &str, limit: Duration) -> Result<Meta, TargetError> {
        let end = Instant::now() + limit;
        loop {
            if let Ok(m) = self.fetch(i, Some(topic)).await {
                if m.topics.get(topic).is_some_and(|ps| !ps.is_empty() && ps.iter().all(|p| p.leader >= 0)) {
                    return Ok(m);
                }
            }
            if Instant::now() > end {
                return Err(err(
                    &self.nodes[i].name,
                    format!("topic {topic} not there (with leaders) after {} s", limit.as_secs()),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The seqs of `topic` on region `i`, every partition from the start.
    async fn read_topic(&self, i: usize, topic: &str) -> Result<Vec<u64>, TargetError> {
        let m = self.wait_topic(i, topic, Duration::from_secs(10)).await?;
        let parts: Vec<i32> = m.topics.get(topic).map(|ps| ps.iter().map(|p| p.id).collect()).unwrap_or_default();
        let boot = self.nodes[i].control.clone();
        let topic = topic.to_string();
        tokio::task::spawn_blocking(move || read_partitions(&boot, &topic, &parts))
            .await
            .map_err(|e| TargetError::Other(e.to_string()))?
    }
}

/// Whether `addr` accepts a TCP connection within `limit`.
async fn accepts(addr: &str, limit: Duration) -> bool {
    matches!(
        tokio::time::timeout(limit, tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

#[async_trait]
impl Target for MirrorTarget {
    fn kind(&self) -> &'static str {
        "kafka-mirror"
    }
    fn run_id(&self) -> &str {
        &self.run_id
    }
    fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    async fn roles(&self, limit: Duration) -> Vec<(String, LiveRole)> {
        let active = self.active.load(Ordering::SeqCst);
        let probes = self.nodes.iter().map(|n| accepts(&n.control, limit.min(Duration::from_secs(1))));
        let up = futures_util::future::join_all(probes).await;
        self.nodes
            .iter()
            .zip(up)
            .enumerate()
            .map(|(i, (n, up))| {
                let role = match (up, i == active) {
                    (false, _) => LiveRole::Unreachable,
                    (true, true) => LiveRole::Primary,
                    (true, false) => LiveRole::Standby,
                };
                (n.name.clone(), role)
            })
            .collect()
    }

    /// A's drill and heartbeat topics, B's own drill topic (for after a
    /// failover), and a first beat (0) for `wait_replicated` to look for.
    async fn setup(&self, _primary: &str) -> Result<(), TargetError> {
        let p = self.o.partitions;
        self.create(0, &self.topic, p).await?;
        self.create(0, &self.hb_topic, 1).await?;
        self.create(1, &self.topic, p).await?;
        for (i, t) in [(0, &self.topic), (0, &self.hb_topic), (1, &self.topic)] {
            self.wait_topic(i, t, Duration::from_secs(20)).await?;
        }
        let prod = kclient::producer(&self.nodes[0].control, &beat_producer())
            .map_err(|e| err(&self.nodes[0].name, e))?;
        let d = kclient::send(&prod, &self.hb_topic, Some(0), b"hb", b"0", Duration::from_secs(5)).await;
        if d.outcome != Outcome::Ok {
            return Err(err(&self.nodes[0].name, format!("first heartbeat: {:?}", d.error)));
        }
        Ok(())
    }

    /// Until MM2 has mirrored both topics to B and B has the first beat.
    async fn wait_replicated(&self, node: &str, limit: Duration) -> Result<(), TargetError> {
        let Some(i) = self.index(node).filter(|&i| i == 1) else {
            return Ok(());
        };
        let limit = limit.max(MIRROR_WAIT);
        let end = Instant::now() + limit;
        let hb = remote(&self.hb_topic);
        self.wait_topic(i, &remote(&self.topic), limit).await?;
        self.wait_topic(i, &hb, end.saturating_duration_since(Instant::now())).await?;
        let c = self.meta[i].clone();
        loop {
            let (c2, t) = (c.clone(), hb.clone());
            let w = tokio::task::spawn_blocking(move || c2.fetch_watermarks(&t, 0, Duration::from_secs(2)))
                .await
                .map_err(|e| TargetError::Other(e.to_string()))?;
            if matches!(w, Ok((_, hi)) if hi > 0) {
                return Ok(());
            }
            if Instant::now() > end {
                return Err(err(node, format!("MM2 did not mirror {} to {hb} within {} s", self.hb_topic, limit.as_secs())));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn client(
        &self,
        primary: &str,
        id: u64,
        payload_bytes: usize,
        _op_timeout: Duration,
    ) -> Result<Box<dyn WorkloadClient>, TargetError> {
        let first = self.index(primary).unwrap_or(0);
        let prod = kclient::producer(&self.nodes[first].client, &self.o.producer)
            .map_err(|e| err(primary, e))?;
        let mut prods: Vec<Option<ThreadedProducer<kclient::Reports>>> =
            self.nodes.iter().map(|_| None).collect();
        prods[first] = Some(prod);
        // Active-active: every other client is one of B's own producers.
        let home = (self.o.mirror == super::config::Mirror::ActiveActive)
            .then(|| (id.saturating_sub(1) % 2) as usize);
        Ok(Box::new(MirrorClient {
            home,
            prods,
            boots: self.nodes.iter().map(|n| n.client.clone()).collect(),
            settings: self.o.producer.clone(),
            active: self.active.clone(),
            topic: self.topic.clone(),
            payload: firedrill_targets::payload(id, payload_bytes),
        }))
    }

    fn heartbeat(&self, _primary: &str) -> Result<Option<Box<dyn Heartbeat>>, TargetError> {
        let prod = kclient::producer(&self.nodes[0].control, &beat_producer())
            .map_err(|e| err(&self.nodes[0].name, e))?;
        Ok(Some(Box::new(MirrorBeat {
            prod,
            topic: self.hb_topic.clone(),
        })))
    }

    /// The group `firedrill-c-<run>` reads A's drill topic, committing
    /// every second; at the failover it moves to B with the producers.
    fn consumer(&self) -> Result<Option<Box<dyn StreamConsumer>>, TargetError> {
        use crate::kafka::target::consumer::{GroupConsumer, RegionRead, COMMIT_INTERVAL};
        let a = super::lab::REGIONS[0];
        let regions = vec![
            RegionRead {
                bootstrap: self.nodes[0].client.clone(),
                topic: self.topic.clone(),
                mirrored: None,
            },
            RegionRead {
                bootstrap: self.nodes[1].client.clone(),
                topic: self.topic.clone(),
                mirrored: Some((remote(&self.topic), format!("{a}.checkpoints.internal"))),
            },
        ];
        let settings = format!(
            "commits every {} s; MM2 emit.checkpoints.interval {} s; after a failover, {} on B from MM2's translated offsets",
            COMMIT_INTERVAL.as_secs(),
            self.o.checkpoint_interval.as_secs(),
            remote(&self.topic)
        );
        Ok(Some(Box::new(GroupConsumer::new(
            format!("firedrill-c-{}", &self.topic["firedrill-".len()..]),
            settings,
            regions,
            self.active.clone(),
        ))))
    }

    /// MM2's own lag on B: the age of its newest mirrored heartbeat.
    fn reported_lag(&self, node: &str) -> Result<Option<Box<dyn ReportedLag>>, TargetError> {
        if self.index(node) != Some(1) {
            return Ok(None);
        }
        let r = super::mm2::Mm2Lag::new(&self.nodes[1].control, super::lab::REGIONS[0])
            .map_err(|e| err(node, e))?;
        Ok(Some(Box::new(r)))
    }

    fn heartbeat_reader(&self, node: &str) -> Result<Option<Box<dyn HeartbeatReader>>, TargetError> {
        if self.index(node) != Some(1) {
            return Ok(None);
        }
        let c: BaseConsumer = meta::base_config(&self.nodes[1].control)
            .set("group.id", "firedrill-heartbeat")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "20")
            .create()
            .map_err(|e| err(node, e))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&remote(&self.hb_topic), 0, Offset::Beginning)
            .map_err(|e| err(node, e))?;
        c.assign(&tpl).map_err(|e| err(node, e))?;
        Ok(Some(Box::new(MirrorBeatReader {
            c: Arc::new(c),
            max: None,
        })))
    }

    async fn position(&self, node: &str) -> Option<u64> {
        let i = self.index(node)?;
        accepts(&self.nodes[i].control, Duration::from_secs(1)).await.then_some(1)
    }

    /// The producers switch to B: from now on every write goes to B's own
    /// drill topic, created at setup.
    async fn promote(&self, node: &str) -> Result<(), TargetError> {
        let i = self
            .index(node)
            .filter(|&i| i == 1)
            .ok_or_else(|| err(node, "a mirror lab fails over to region B's broker, b1"))?;
        self.wait_topic(i, &self.topic, Duration::from_secs(10)).await?;
        self.active.store(i, Ordering::SeqCst);
        Ok(())
    }

    async fn audit(&self, node: &str) -> Result<Vec<u64>, TargetError> {
        match self.index(node) {
            Some(0) => self.read_topic(0, &self.topic).await,
            Some(i) => {
                let mut seqs = self.read_topic(i, &remote(&self.topic)).await?;
                seqs.extend(self.read_topic(i, &self.topic).await?);
                Ok(seqs)
            }
            None => Err(err(node, "not a node of this mirror lab")),
        }
    }

    async fn cleanup(&self, _node: &str) -> Result<(), TargetError> {
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
        for (i, n) in self.nodes.iter().enumerate() {
            let Ok(admin) = meta::admin_client(&n.control) else { continue };
            let mirrored = [remote(&self.topic), remote(&self.hb_topic)];
            let back = format!("{}.{}", super::lab::REGIONS[1], self.topic);
            let names: Vec<&str> = if i == 0 {
                vec![&self.topic, &self.hb_topic, &back]
            } else {
                vec![&self.topic, &mirrored[0], &mirrored[1]]
            };
            let _ = admin.delete_topics(&names, &opts).await;
        }
        Ok(())
    }

    async fn server_version(&self, node: &str) -> Result<String, TargetError> {
        let v = self.o.logs.iter().find(|(n, _)| n == node).and_then(|(_, log)| {
            let text = std::fs::read_to_string(log).ok()?;
            let v = text.split("Kafka version: ").nth(1)?;
            Some(v.split_whitespace().next()?.to_string())
        });
        Ok(match v {
            Some(v) => format!("Apache Kafka {v} (KRaft) + MirrorMaker 2"),
            None => "Apache Kafka + MirrorMaker 2 (version not in the log)".into(),
        })
    }
}

/// The heartbeat's producer: acks=all, one in flight, short timeout.
fn beat_producer() -> Producer {
    Producer {
        acks: Acks::All,
        idempotence: false,
        linger: Duration::ZERO,
        max_in_flight: 1,
        delivery_timeout: Duration::from_secs(1),
        retries: None,
    }
}

/// One workload client: a producer per region, made when the client first
/// writes there; it writes where the target's active region says.
struct MirrorClient {
    /// The region this client writes from, all along (active-active); a
    /// client of A's follows the failover to B.
    home: Option<usize>,
    prods: Vec<Option<ThreadedProducer<kclient::Reports>>>,
    boots: Vec<String>,
    settings: Producer,
    active: Arc<AtomicUsize>,
    topic: String,
    payload: Vec<u8>,
}

#[async_trait]
impl WorkloadClient for MirrorClient {
    async fn ready(&mut self) {}

    fn home(&self) -> Option<String> {
        self.home.map(|h| super::lab::REGIONS[h].to_string())
    }

    async fn write(&mut self, seq: u64, deadline: Instant) -> Outcome {
        let i = match self.home {
            Some(1) => 1,
            _ => self.active.load(Ordering::SeqCst).min(self.prods.len() - 1),
        };
        if self.prods[i].is_none() {
            match kclient::producer(&self.boots[i], &self.settings) {
                Ok(p) => self.prods[i] = Some(p),
                Err(e) => {
                    tracing::warn!("producer for region {i}: {e}");
                    return Outcome::Fail;
                }
            }
        }
        let Some(prod) = &self.prods[i] else {
            return Outcome::Fail;
        };
        let limit = deadline.saturating_duration_since(Instant::now());
        let key = seq.to_string();
        kclient::send(prod, &self.topic, None, key.as_bytes(), &self.payload, limit)
            .await
            .outcome
    }
}

struct MirrorBeat {
    prod: ThreadedProducer<kclient::Reports>,
    topic: String,
}

#[async_trait]
impl Heartbeat for MirrorBeat {
    async fn beat(&mut self, n: i64, limit: Duration) -> bool {
        let v = n.to_string();
        kclient::send(&self.prod, &self.topic, Some(0), b"hb", v.as_bytes(), limit)
            .await
            .outcome
            == Outcome::Ok
    }
}

/// Follows B's copy of the heartbeat topic; the newest counter seen.
struct MirrorBeatReader {
    c: Arc<BaseConsumer>,
    max: Option<i64>,
}

#[async_trait]
impl HeartbeatReader for MirrorBeatReader {
    /// What librdkafka's fetcher (20 ms max wait) has brought so far: no
    /// waiting, so the sample's time is the time of the observation.
    async fn read(&mut self, _limit: Duration) -> Option<i64> {
        let c = self.c.clone();
        let got = tokio::task::spawn_blocking(move || {
            let mut best: Option<i64> = None;
            while let Some(r) = c.poll(Duration::ZERO) {
                if let Ok(m) = r {
                    let v = m.payload().and_then(|p| std::str::from_utf8(p).ok()?.parse().ok());
                    best = best.max(v);
                }
            }
            best
        })
        .await
        .ok()
        .flatten();
        self.max = self.max.max(got);
        self.max
    }
}
