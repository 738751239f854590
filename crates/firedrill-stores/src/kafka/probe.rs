//! Kafka as `firedrill watch` sees it (`kind = "kafka"`: brokers by the
//! `addr` of a listener the watcher can reach, used as bootstrap servers;
//! an optional `topics` list) and its probe: a Metadata request (leader,
//! replicas and ISR of every partition) each round, and every topic's
//! effective `min.insync.replicas` by DescribeConfigs (the topic's own
//! setting, else the broker default), refreshed every [`CONFIG_EVERY`].
//!
//! The `isr` exposure: 0 while every partition of the watched topics has at
//! least `min.insync.replicas` replicas in sync and a leader; otherwise the
//! time since the worst such partition was first seen below it. Below it, a
//! record lives on fewer replicas than the objective assumes (acks=1
//! records on the leader alone; acks=all producers are refused), and the
//! next node lost can take it: that window is what the figure measures.
//! A leaderless (offline) partition counts as below, whatever its ISR says.
//!
//! Without `topics`, every topic whose name does not start with `__` is
//! watched: an SRE's data topics, not the brokers' bookkeeping
//! (`__consumer_offsets`, `__transaction_state`), which have their own
//! replication settings and alerts. A topic named in `topics` that the
//! cluster does not have fails the round: it cannot be assessed, so it is a
//! breach, not a zero.

use super::target::meta::{self, Part};
use crate::watch::{addr_store, AddrNode};
use async_trait::async_trait;
use firedrill_spec::Diagnostic;
use firedrill_watch::board::Extras;
use firedrill_watch::config::Loaded;
use firedrill_watch::plan::{Settings, Source, WatchedDomain};
use firedrill_watch::{labels, store_view, Probe, Round, SourceResult, WatchKind, WatchStore};
use rdkafka::admin::{AdminClient, AdminOptions, OwnedResourceSpecifier, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use toml::Spanned;

/// How often the topics' `min.insync.replicas` is read again: it changes
/// only when an operator alters it, and one DescribeConfigs a second per
/// domain would be load for nothing. A topic not yet described is read at
/// once.
pub const CONFIG_EVERY: Duration = Duration::from_secs(60);

/// `kind = "kafka"` in an objectives file.
pub struct KafkaWatch;

/// The Kafka keys of `[domain.store]`, and the generic ones Kafka refuses.
#[derive(Deserialize)]
struct KafkaView {
    topics: Option<Spanned<Vec<Spanned<String>>>>,
    user: Option<Spanned<IgnoredAny>>,
    password_env: Option<Spanned<IgnoredAny>>,
    password_file: Option<Spanned<IgnoredAny>>,
}

impl WatchKind for KafkaWatch {
    fn kind(&self) -> &'static str {
        "kafka"
    }
    fn sources(&self) -> &'static [Source] {
        &[Source::Isr]
    }
    fn store_keys(&self) -> &'static [&'static str] {
        &["topics"]
    }
    fn node_keys(&self) -> &'static [&'static str] {
        &["addr"]
    }
    fn plan(
        &self,
        file: &Loaded,
        domain: usize,
        out: &mut Vec<Diagnostic>,
    ) -> Option<Arc<dyn WatchStore>> {
        let (nodes, _user) = addr_store(file, domain, out)?;
        let v = match store_view::<KafkaView>(file, domain) {
            Ok(v) => v,
            Err(d) => {
                out.push(d);
                return None;
            }
        };
        refuse_credentials(
            file,
            "kafka",
            [&v.user, &v.password_env, &v.password_file],
            out,
        );
        let topics = v.topics.map(|t| check_topics(file, &t, out));
        Some(Arc::new(KafkaWatchStore { nodes, topics }))
    }
}

/// The generic credential keys (`user`, `password_env`, `password_file`,
/// in that order), each refused at its place: the Kafka probes connect in
/// PLAINTEXT, without SASL.
pub(crate) fn refuse_credentials(
    file: &Loaded,
    kind: &str,
    keys: [&Option<Spanned<IgnoredAny>>; 3],
    out: &mut Vec<Diagnostic>,
) {
    for (key, v) in ["user", "password_env", "password_file"].into_iter().zip(keys) {
        if let Some(v) = v {
            out.push(file.at(
                v.span(),
                format!("{key} is not used by a {kind} store: the probe connects in PLAINTEXT, without SASL"),
            ));
        }
    }
}

/// The topic list: not empty, legal Kafka names, each once.
fn check_topics(
    file: &Loaded,
    t: &Spanned<Vec<Spanned<String>>>,
    out: &mut Vec<Diagnostic>,
) -> Vec<String> {
    if t.get_ref().is_empty() {
        out.push(file.at(
            t.span(),
            "topics must name at least one topic; leave it out to watch every topic not starting with \"__\"",
        ));
    }
    let mut seen = BTreeSet::new();
    for name in t.get_ref() {
        let n = name.get_ref();
        if !valid_topic(n) {
            out.push(file.at(
                name.span(),
                "a Kafka topic name is 1-249 letters, digits, '.', '_' or '-'",
            ));
        } else if !seen.insert(n.clone()) {
            out.push(file.at(name.span(), format!("topic {n:?} is listed twice")));
        }
    }
    seen.into_iter().collect()
}

/// The names Kafka accepts for a topic.
fn valid_topic(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 249
        && s != "."
        && s != ".."
        && s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A validated Kafka store.
#[derive(Debug, Clone)]
pub struct KafkaWatchStore {
    /// The bootstrap servers.
    pub nodes: Vec<AddrNode>,
    /// None: every topic not starting with `__`.
    pub topics: Option<Vec<String>>,
}

impl WatchStore for KafkaWatchStore {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn prober(&self, _dom: &WatchedDomain, settings: &Settings) -> Box<dyn Probe> {
        Box::new(KafkaProber {
            bootstrap: self
                .nodes
                .iter()
                .map(|n| n.addr.as_str())
                .collect::<Vec<_>>()
                .join(","),
            topics: self.topics.clone(),
            timeout: settings.timeout,
            clients: None,
            min_isr: HashMap::new(),
            described_at: None,
            below_since: HashMap::new(),
        })
    }
}

/// The librdkafka handles, kept between rounds (each owns threads and
/// connections; librdkafka reconnects by itself).
struct Clients {
    meta: Arc<BaseConsumer>,
    admin: Arc<AdminClient<DefaultClientContext>>,
}

pub struct KafkaProber {
    bootstrap: String,
    topics: Option<Vec<String>>,
    timeout: Duration,
    clients: Option<Clients>,
    /// Effective `min.insync.replicas` per topic, as last described.
    min_isr: HashMap<String, u32>,
    described_at: Option<Instant>,
    /// (topic, partition) → the round that first saw it below its
    /// `min.insync.replicas` (or leaderless), kept across rounds and
    /// failed rounds until a round sees it healthy again.
    below_since: HashMap<(String, i32), Instant>,
}

/// One watched partition and its topic's `min.insync.replicas`.
#[derive(Debug, Clone)]
pub struct Watched {
    pub topic: String,
    pub part: Part,
    pub min_isr: u32,
}

/// What one round found.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// Seconds since the worst partition was first seen below its
    /// `min.insync.replicas`; 0 when none is.
    pub exposure: f64,
    pub offline: usize,
    pub under_replicated: usize,
    pub under_min_isr: usize,
}

/// Assesses one round's partitions at `now` and updates `below_since`.
///
/// A partition is first seen below at the first round that observes it so:
/// that is the earliest the probe can know, so the exposure is a lower
/// bound, short by at most one interval (the ISR shrank somewhere between
/// the last round that saw it healthy and this one), and reads 0 on that
/// first round.
pub fn assess(
    parts: &[Watched],
    below_since: &mut HashMap<(String, i32), Instant>,
    now: Instant,
) -> Assessment {
    let mut a = Assessment {
        exposure: 0.0,
        offline: 0,
        under_replicated: 0,
        under_min_isr: 0,
    };
    let mut below = BTreeSet::new();
    for w in parts {
        let offline = w.part.leader < 0;
        let short = w.part.isr.len() < w.min_isr as usize;
        a.offline += usize::from(offline);
        a.under_replicated += usize::from(w.part.isr.len() < w.part.replicas.len());
        a.under_min_isr += usize::from(short);
        if offline || short {
            let key = (w.topic.clone(), w.part.id);
            let since = *below_since.entry(key.clone()).or_insert(now);
            a.exposure = a
                .exposure
                .max(now.saturating_duration_since(since).as_secs_f64());
            below.insert(key);
        }
    }
    // Healthy again, or gone (a deleted topic loses nothing more).
    below_since.retain(|k, _| below.contains(k));
    a
}

impl KafkaProber {
    /// The control path's client settings, with librdkafka's request
    /// timeout at the probe's own: a broker that hangs (SIGSTOP, a dead
    /// host without RST) is then dropped by the next round, and the next
    /// request goes to a live one, instead of failing rounds for 2 s.
    fn config(&self) -> ClientConfig {
        let ms = self.timeout.as_millis().clamp(10, 300_000).to_string();
        let mut c = meta::base_config(&self.bootstrap);
        c.set("socket.timeout.ms", &ms);
        c
    }

    fn clients(&mut self) -> Result<&Clients, String> {
        if self.clients.is_none() {
            let meta: BaseConsumer = self
                .config()
                .set("enable.auto.commit", "false")
                .create()
                .map_err(|e| e.to_string())?;
            let admin: AdminClient<DefaultClientContext> =
                self.config().create().map_err(|e| e.to_string())?;
            self.clients = Some(Clients {
                meta: Arc::new(meta),
                admin: Arc::new(admin),
            });
        }
        self.clients
            .as_ref()
            .ok_or_else(|| "no Kafka client".to_string())
    }

    /// The watched partitions, from one Metadata request (blocking in
    /// librdkafka, so on a blocking thread) and the topics' configs.
    async fn observe(&mut self) -> Result<Vec<Watched>, String> {
        let limit = self.timeout;
        let c = self.clients()?;
        let (mc, admin) = (c.meta.clone(), c.admin.clone());
        let m = tokio::task::spawn_blocking(move || meta::fetch(&mc, None, limit))
            .await
            .map_err(|e| format!("metadata task: {e}"))?
            .map_err(|e| format!("metadata from {}: {e}", self.bootstrap))?;
        let names: Vec<String> = match &self.topics {
            Some(want) => {
                let absent: Vec<&str> = want
                    .iter()
                    .filter(|t| !m.topics.contains_key(*t))
                    .map(String::as_str)
                    .collect();
                if !absent.is_empty() {
                    return Err(format!(
                        "the cluster has no topic {}",
                        absent.join(", ")
                    ));
                }
                want.clone()
            }
            None => m
                .topics
                .keys()
                .filter(|t| !t.starts_with("__"))
                .cloned()
                .collect(),
        };
        self.refresh_min_isr(&admin, &names).await?;
        let mut out = Vec::new();
        for t in &names {
            let min_isr = *self
                .min_isr
                .get(t)
                .ok_or_else(|| format!("no min.insync.replicas known for topic {t}"))?;
            for p in m.topics.get(t).into_iter().flatten() {
                out.push(Watched {
                    topic: t.clone(),
                    part: p.clone(),
                    min_isr,
                });
            }
        }
        Ok(out)
    }

    /// Describes the topics' configs when one is not known yet or the last
    /// reading is older than [`CONFIG_EVERY`]. A failed refresh keeps the
    /// values read before; it fails the round only for a topic never read.
    async fn refresh_min_isr(
        &mut self,
        admin: &AdminClient<DefaultClientContext>,
        names: &[String],
    ) -> Result<(), String> {
        let unknown = names.iter().any(|t| !self.min_isr.contains_key(t));
        let stale = self
            .described_at
            .is_none_or(|t| t.elapsed() >= CONFIG_EVERY);
        if names.is_empty() || !(unknown || stale) {
            return Ok(());
        }
        match describe_min_isr(admin, names, self.timeout).await {
            Ok(v) => {
                self.min_isr = v;
                self.described_at = Some(Instant::now());
                Ok(())
            }
            Err(e) if unknown => Err(e),
            Err(e) => {
                tracing::debug!("kafka probe: keeping the min.insync.replicas read before: {e}");
                Ok(())
            }
        }
    }
}

/// Every topic's effective `min.insync.replicas` (DescribeConfigs reports
/// the broker default for a topic without its own).
async fn describe_min_isr(
    admin: &AdminClient<DefaultClientContext>,
    names: &[String],
    limit: Duration,
) -> Result<HashMap<String, u32>, String> {
    let specs: Vec<ResourceSpecifier> = names
        .iter()
        .map(|t| ResourceSpecifier::Topic(t.as_str()))
        .collect();
    let opts = AdminOptions::new().request_timeout(Some(limit));
    let res = tokio::time::timeout(limit, admin.describe_configs(specs.iter(), &opts))
        .await
        .map_err(|_| format!("DescribeConfigs took over {limit:?}"))?
        .map_err(|e| format!("DescribeConfigs: {e}"))?;
    let mut out = HashMap::new();
    for r in res {
        let r = r.map_err(|code| format!("DescribeConfigs: {code}"))?;
        let OwnedResourceSpecifier::Topic(name) = &r.specifier else {
            continue;
        };
        let v = r
            .get("min.insync.replicas")
            .and_then(|e| e.value.as_deref())
            .and_then(|v| v.parse::<u32>().ok())
            .ok_or_else(|| format!("topic {name}: no min.insync.replicas in its config"))?;
        out.insert(name.clone(), v);
    }
    Ok(out)
}

#[async_trait]
impl Probe for KafkaProber {
    async fn round(&mut self, dom: &WatchedDomain) -> Round {
        let parts = match self.observe().await {
            Ok(p) => p,
            Err(e) => {
                return Round {
                    results: vec![SourceResult::failed(Source::Isr, e)],
                    extras: None,
                    extra_updates: Extras::new(),
                }
            }
        };
        let a = assess(&parts, &mut self.below_since, Instant::now());
        let mut extras = Extras::new();
        for (name, v) in [
            ("firedrill_kafka_offline_partitions", a.offline),
            ("firedrill_kafka_under_replicated_partitions", a.under_replicated),
            ("firedrill_kafka_under_min_isr_partitions", a.under_min_isr),
        ] {
            extras.insert((name.into(), labels(dom, &[])), v as f64);
        }
        Round {
            results: vec![SourceResult {
                source: Source::Isr,
                observed: vec![(String::new(), a.exposure)],
                missing: Vec::new(),
                error: None,
                ages: false,
            }],
            extras: Some(extras),
            extra_updates: Extras::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(topic: &str, id: i32, leader: i32, isr: &[i32]) -> Watched {
        Watched {
            topic: topic.into(),
            part: Part {
                id,
                leader,
                replicas: vec![1, 2, 3],
                isr: isr.to_vec(),
            },
            min_isr: 2,
        }
    }

    #[test]
    fn healthy_partitions_expose_nothing() {
        let mut since = HashMap::new();
        let a = assess(
            &[w("t", 0, 1, &[1, 2, 3]), w("t", 1, 2, &[2, 3])],
            &mut since,
            Instant::now(),
        );
        assert_eq!(a.exposure, 0.0);
        assert_eq!((a.offline, a.under_replicated, a.under_min_isr), (0, 1, 0));
        assert!(since.is_empty());
    }

    #[test]
    fn below_min_isr_grows_from_the_first_round_that_saw_it() {
        let mut since = HashMap::new();
        let t0 = Instant::now();
        let a = assess(&[w("t", 0, 1, &[1])], &mut since, t0);
        assert_eq!(a.exposure, 0.0, "the first sighting is the earliest known");
        assert_eq!(a.under_min_isr, 1);
        let t1 = t0 + Duration::from_secs(3);
        // The worst partition wins: p0 since t0, p1 since t1.
        let a = assess(&[w("t", 0, 1, &[1]), w("t", 1, 1, &[1])], &mut since, t1);
        assert!((a.exposure - 3.0).abs() < 1e-9, "{}", a.exposure);
        // Back in sync: forgotten, so a later shrink counts afresh.
        let t2 = t1 + Duration::from_secs(1);
        let a = assess(
            &[w("t", 0, 1, &[1, 2]), w("t", 1, 1, &[1])],
            &mut since,
            t2,
        );
        assert!((a.exposure - 1.0).abs() < 1e-9, "{}", a.exposure);
        assert_eq!(since.len(), 1);
    }

    #[test]
    fn a_leaderless_partition_is_below_whatever_its_isr() {
        let mut since = HashMap::new();
        let t0 = Instant::now();
        assess(&[w("t", 0, -1, &[1, 2])], &mut since, t0);
        let a = assess(
            &[w("t", 0, -1, &[1, 2])],
            &mut since,
            t0 + Duration::from_secs(2),
        );
        assert_eq!(a.offline, 1);
        assert!((a.exposure - 2.0).abs() < 1e-9);
    }

    #[test]
    fn topic_names() {
        assert!(valid_topic("orders.v2_a-b"));
        assert!(!valid_topic(""));
        assert!(!valid_topic(".."));
        assert!(!valid_topic("a b"));
        assert!(!valid_topic(&"x".repeat(250)));
    }
}
