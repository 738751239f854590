//! Kafka for `firedrill assess`: the KRaft controller as its failover
//! mechanism (the broker session timeout bounds RTO; an unclean election
//! may lose acknowledged records), the settings in force read with
//! DescribeConfigs (each watched topic's `min.insync.replicas` and
//! `unclean.leader.election.enable`, a broker's `broker.session.timeout.ms`),
//! how they can disagree with the declaration, and a lab like the domain.

use super::probe::KafkaWatchStore;
use super::target::meta;
use firedrill_assess::derive::{secs, Bound};
use firedrill_assess::kind::{
    spec_dur, AssessKind, FailoverKind, LabSketch, Mismatch, Moves, Params, SettingDef, SettingType,
};
use firedrill_assess::model::{Domain, Replication};
use firedrill_watch::board::Extras;
use firedrill_watch::plan::WatchedDomain;
use rdkafka::admin::{AdminClient, AdminOptions, OwnedResourceSpecifier, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::BaseConsumer;
use std::collections::BTreeMap;
use std::time::Duration;

pub struct KafkaAssess;

const UNCLEAN: &str = "unclean.leader.election.enable";
const MIN_ISR: &str = "min.insync.replicas";
const SESSION: &str = "broker.session.timeout.ms";

#[async_trait::async_trait]
impl AssessKind for KafkaAssess {
    fn kind(&self) -> &'static str {
        "kafka"
    }
    fn sync_setting(&self, quorum: u32, _standbys: &[String]) -> Option<String> {
        Some(format!(
            "acks=all with min.insync.replicas = {} on the topic",
            quorum + 1
        ))
    }
    async fn read_settings(
        &self,
        _d: &Domain,
        w: &WatchedDomain,
        _extras: &Extras,
        limit: Duration,
    ) -> Result<BTreeMap<String, String>, String> {
        let Some(store) = w.store.as_any().downcast_ref::<KafkaWatchStore>() else {
            return Ok(BTreeMap::new());
        };
        let bootstrap = store
            .nodes
            .iter()
            .map(|n| n.addr.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let topics = store.topics.clone();
        tokio::time::timeout(limit * 3, describe(bootstrap, topics, limit))
            .await
            .map_err(|_| format!("Kafka DescribeConfigs: no answer within {:?}", limit * 3))?
    }
    fn mismatches(&self, d: &Domain, s: &BTreeMap<String, String>) -> Vec<Mismatch> {
        let mut out = Vec::new();
        let per_topic = |key: &str| -> Vec<(String, String)> {
            s.iter()
                .filter_map(|(k, v)| {
                    let t = k.strip_prefix("topic.")?.strip_suffix(&format!(".{key}"))?;
                    Some((t.to_string(), v.clone()))
                })
                .collect()
        };
        if let Some((m, p)) = d.failover.automatic() {
            if m.name() == KafkaFailover.name() {
                let declared = p.flag("unclean_leader_election");
                for (t, v) in per_topic(UNCLEAN) {
                    if (v == "true") != declared {
                        out.push(Mismatch {
                            what: format!("declared unclean_leader_election = {declared}, but topic {t} has {UNCLEAN}={v}"),
                            fix: format!("kafka-configs.sh --alter --entity-type topics --entity-name {t} --add-config {UNCLEAN}={declared} (or correct [domain.failover])"),
                            moves: Moves::Rpo,
                            restore: false,
                        });
                    }
                }
                if let Some(ms) = s.get(SESSION).and_then(|v| v.parse::<f64>().ok()) {
                    let want = p.secs("session_timeout");
                    if (ms / 1000.0 - want).abs() > 1e-6 {
                        out.push(Mismatch {
                            what: format!(
                                "declared session_timeout = {}, but the brokers have {SESSION}={ms}",
                                secs(want)
                            ),
                            fix: format!("set {SESSION}={} in the controllers' server.properties and restart them (or correct [domain.failover])", (want * 1000.0).round()),
                            moves: Moves::Rto,
                            restore: false,
                        });
                    }
                }
            }
        }
        if let Replication::Sync { quorum, .. } = &d.replication {
            for (t, v) in per_topic(MIN_ISR) {
                let n: u32 = v.parse().unwrap_or(0);
                if n < quorum + 1 {
                    out.push(Mismatch {
                        what: format!("declared sync with quorum {quorum} (min.insync.replicas {}), but topic {t} has {MIN_ISR}={n}", quorum + 1),
                        fix: format!("kafka-configs.sh --alter --entity-type topics --entity-name {t} --add-config {MIN_ISR}={} (or correct [domain.replication])", quorum + 1),
                        moves: Moves::Rpo,
                        restore: false,
                    });
                }
            }
        }
        out
    }
    fn lab(&self, d: &Domain) -> LabSketch {
        let p = match d.failover.automatic() {
            Some((m, p)) if m.name() == KafkaFailover.name() => p.clone(),
            _ => firedrill_assess::kind::defaults(&KafkaFailover),
        };
        let sync = match &d.replication {
            Replication::Sync { quorum, .. } => Some(*quorum),
            _ => None,
        };
        let n = d.nodes.len().max(3);
        LabSketch {
            table: format!(
                "kind = \"kafka\"\nnodes = {n}\n\n[lab.kafka]\nreplication_factor = {}\nmin_insync_replicas = {}\nunclean_leader_election = {}\nsession_timeout = \"{}\"",
                n.min(3),
                sync.map_or(1, |k| k + 1),
                p.flag("unclean_leader_election"),
                spec_dur(p.dur("session_timeout"))
            ),
            automatic: true,
            corruption: None,
        }
    }
}

/// One Metadata request, then DescribeConfigs of the topics (the listed
/// ones, else every one not starting with `__`) and of one broker.
async fn describe(
    bootstrap: String,
    topics: Option<Vec<String>>,
    limit: Duration,
) -> Result<BTreeMap<String, String>, String> {
    let mut c = meta::base_config(&bootstrap);
    c.set("socket.timeout.ms", limit.as_millis().clamp(10, 300_000).to_string());
    let consumer: BaseConsumer = c.create().map_err(|e| e.to_string())?;
    let admin: AdminClient<DefaultClientContext> = c.create().map_err(|e| e.to_string())?;
    let m = tokio::task::spawn_blocking(move || meta::fetch(&consumer, None, limit))
        .await
        .map_err(|e| format!("metadata task: {e}"))?
        .map_err(|e| format!("metadata from {bootstrap}: {e}"))?;
    let names: Vec<String> = topics.unwrap_or_else(|| {
        m.topics
            .keys()
            .filter(|t| !t.starts_with("__"))
            .cloned()
            .collect()
    });
    let mut specs: Vec<ResourceSpecifier> = names
        .iter()
        .map(|t| ResourceSpecifier::Topic(t.as_str()))
        .collect();
    if let Some(b) = m.brokers.first() {
        specs.push(ResourceSpecifier::Broker(*b));
    }
    let opts = AdminOptions::new().request_timeout(Some(limit));
    let res = admin
        .describe_configs(specs.iter(), &opts)
        .await
        .map_err(|e| format!("DescribeConfigs: {e}"))?;
    let mut out = BTreeMap::new();
    for r in res.into_iter().flatten() {
        match &r.specifier {
            OwnedResourceSpecifier::Topic(t) => {
                for key in [MIN_ISR, UNCLEAN] {
                    if let Some(v) = r.get(key).and_then(|e| e.value.clone()) {
                        out.insert(format!("topic.{t}.{key}"), v);
                    }
                }
            }
            OwnedResourceSpecifier::Broker(_) => {
                if let Some(v) = r.get(SESSION).and_then(|e| e.value.clone()) {
                    out.insert(SESSION.to_string(), v);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

pub struct KafkaFailover;

const SETTINGS: &[SettingDef] = &[
    // KRaft's broker.session.timeout.ms default.
    SettingDef {
        key: "session_timeout",
        ty: SettingType::Duration,
        default: Some("9s"),
    },
    SettingDef {
        key: "unclean_leader_election",
        ty: SettingType::Bool,
        default: Some("false"),
    },
];

impl FailoverKind for KafkaFailover {
    fn name(&self) -> &'static str {
        "kafka"
    }
    fn title(&self) -> &'static str {
        "the KRaft controller"
    }
    fn stores(&self) -> &'static [&'static str] {
        &["kafka"]
    }
    fn settings(&self) -> &'static [SettingDef] {
        SETTINGS
    }
    fn rto(&self, p: &Params) -> Bound {
        let st = p.secs("session_timeout");
        Bound::range(
            st,
            None,
            format!(
                "Kafka broker session_timeout {} → a dead leader is fenced and replaced after ≥ {}",
                secs(st),
                secs(st)
            ),
        )
    }
    fn loses_acknowledged(&self, p: &Params) -> Option<String> {
        p.flag("unclean_leader_election").then(|| {
            "unclean.leader.election → an out-of-sync replica may lead: acknowledged records can be lost".to_string()
        })
    }
    fn lossless(&self, p: &Params) -> Option<(Params, String)> {
        let mut q = p.clone();
        q.0.insert(
            "unclean_leader_election".into(),
            firedrill_assess::kind::Param::Bool(false),
        );
        Some((
            q,
            format!("turn {UNCLEAN} off (only an in-sync replica may lead; with acks=all and min.insync.replicas ≥ 2 an acknowledged record survives one broker's loss)"),
        ))
    }
    fn tune(&self, p: &Params, t: f64) -> Option<(Params, String)> {
        let st = (t / 2.0).max(1.0);
        let mut q = p.clone();
        q.set_secs("session_timeout", st);
        Some((
            q,
            format!("lower broker.session.timeout.ms to {}", secs(st)),
        ))
    }
}
