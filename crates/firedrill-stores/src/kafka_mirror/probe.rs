//! A MirrorMaker 2 pair as `firedrill watch` sees it (`kind =
//! "kafka-mirror"`): the source cluster's broker, where the probe writes
//! its heartbeat, and the target's, where it reads MM2's copy
//! (`<source_alias>.<topic>`, MM2's default replication policy).
//!
//! The `heartbeat` exposure, for `region_loss`: how long ago the oldest
//! beat on the source that the target lacks was written. Each round writes
//! a beat, reads the timestamp of the target's newest copy (MM2 keeps a
//! record's timestamp), and asks the source for its first beat after that
//! (by time index). That is what losing the source region now would lose
//! at least: a record written after the newest mirrored beat may be lost
//! too, so the figure is short by at most one interval. It is 0, or the
//! trip of the beat just written, while MM2 keeps up.
//!
//! - Idle-safe: the beats are the probe's own, so an idle topic never
//!   reads as a stale age.
//! - Stateless: every round computes it from the two topics, so a watch
//!   that starts (or `status`, once) during a long cut sees all of it,
//!   and two watchers agree.
//! - Silence is a breach: a target the probe cannot read is a failed
//!   round, and so is a source it cannot write while no older beat shows
//!   a window open.
//!
//! MM2 must mirror the heartbeat topic: its name must pass the mirror's
//! `topics` filter (the lab's is `firedrill-.*`, hence the default).

use crate::kafka::config::{Acks, Producer};
use crate::kafka::target::client as kclient;
use crate::kafka::target::meta;
use crate::watch::{addr_store, AddrNode};
use async_trait::async_trait;
use firedrill_ledger::Outcome;
use firedrill_spec::Diagnostic;
use firedrill_watch::board::Extras;
use firedrill_watch::config::Loaded;
use firedrill_watch::plan::{Settings, Source, WatchedDomain};
use firedrill_watch::{labels, store_view, Probe, Round, SourceResult, WatchKind, WatchStore};
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::ThreadedProducer;
use rdkafka::{Offset, TopicPartitionList};
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use toml::Spanned;

/// The heartbeat topic when the file names none: inside the lab's MM2
/// filter (`firedrill-.*`).
pub const DEFAULT_TOPIC: &str = "firedrill-watch-hb";

/// `kind = "kafka-mirror"` in an objectives file.
pub struct MirrorWatch;

#[derive(Deserialize)]
struct MirrorView {
    kind: Option<Spanned<IgnoredAny>>,
    source: Option<Spanned<String>>,
    target: Option<Spanned<String>>,
    source_alias: Option<Spanned<String>>,
    topic: Option<Spanned<String>>,
    user: Option<Spanned<IgnoredAny>>,
    password_env: Option<Spanned<IgnoredAny>>,
    password_file: Option<Spanned<IgnoredAny>>,
}

impl WatchKind for MirrorWatch {
    fn kind(&self) -> &'static str {
        "kafka-mirror"
    }
    fn sources(&self) -> &'static [Source] {
        &[Source::Heartbeat]
    }
    fn store_keys(&self) -> &'static [&'static str] {
        &["source", "target", "source_alias", "topic"]
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
        let v = match store_view::<MirrorView>(file, domain) {
            Ok(v) => v,
            Err(d) => {
                out.push(d);
                return None;
            }
        };
        crate::kafka::probe::refuse_credentials(
            file,
            "kafka-mirror",
            [&v.user, &v.password_env, &v.password_file],
            out,
        );
        let at = v.kind.as_ref().map_or(0..0, |k| k.span());
        let source = pick(file, &nodes, v.source.as_ref(), ("source", &at), out);
        let target = pick(file, &nodes, v.target.as_ref(), ("target", &at), out);
        if let (Some(s), Some(t), Some(span)) = (&source, &target, v.target.as_ref()) {
            if s.name == t.name {
                out.push(file.at(span.span(), "source and target must be two different nodes"));
            }
        }
        let alias = name_or(file, v.source_alias.as_ref(), ("A", false), "source_alias", out);
        let topic = name_or(file, v.topic.as_ref(), (DEFAULT_TOPIC, true), "topic", out);
        // With a problem reported, a placeholder keeps the store, so the
        // objectives are checked too (every problem at once).
        let none = || AddrNode {
            name: String::new(),
            addr: String::new(),
        };
        Some(Arc::new(MirrorWatchStore {
            source: source.unwrap_or_else(none),
            target: target.unwrap_or_else(none),
            remote_topic: format!("{alias}.{topic}"),
            topic,
        }))
    }
}

/// The node `key` names, which must be one of the store's nodes; a
/// missing key is reported at `kind`.
fn pick(
    file: &Loaded,
    nodes: &[AddrNode],
    key: Option<&Spanned<String>>,
    (what, kind_at): (&str, &std::ops::Range<usize>),
    out: &mut Vec<Diagnostic>,
) -> Option<AddrNode> {
    let Some(k) = key else {
        out.push(file.at(
            kind_at.clone(),
            format!("a kafka-mirror store needs {what} = \"NODE\": the node of the {what} cluster"),
        ));
        return None;
    };
    let found = nodes.iter().find(|n| &n.name == k.get_ref()).cloned();
    if found.is_none() {
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        out.push(file.at(
            k.span(),
            format!("{what}: no node named {:?} (nodes: {})", k.get_ref(), names.join(", ")),
        ));
    }
    found
}

/// A topic name or alias from the file, or the default; checked as
/// Kafka checks topic names. An alias has no '.': MM2's default policy
/// joins it to the topic with one.
fn name_or(
    file: &Loaded,
    v: Option<&Spanned<String>>,
    (default, dots): (&str, bool),
    key: &str,
    out: &mut Vec<Diagnostic>,
) -> String {
    let Some(v) = v else {
        return default.to_string();
    };
    let s = v.get_ref();
    let ok = !s.is_empty()
        && s.len() <= 200
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-') || (dots && c == '.'));
    if !ok {
        let chars = if dots { "'.', '_' or '-'" } else { "'_' or '-'" };
        out.push(file.at(
            v.span(),
            format!("{key} must be 1-200 letters, digits, {chars}"),
        ));
    }
    s.clone()
}

/// A validated mirror store.
#[derive(Debug, Clone)]
pub struct MirrorWatchStore {
    pub source: AddrNode,
    pub target: AddrNode,
    pub topic: String,
    pub remote_topic: String,
}

impl WatchStore for MirrorWatchStore {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn prober(&self, _dom: &WatchedDomain, settings: &Settings) -> Box<dyn Probe> {
        Box::new(MirrorProber {
            store: self.clone(),
            timeout: settings.timeout,
            prod: None,
            readers: None,
            created: false,
        })
    }
}

/// The exposure at `now_ms` (Unix ms) given the timestamp of the oldest
/// beat on the source newer than everything on the target: 0 when there
/// is none, never negative (clocks of one host, but a beat may carry a
/// millisecond from the future of a rounding).
pub fn exposure_s(now_ms: i64, first_unmirrored_ms: Option<i64>) -> f64 {
    first_unmirrored_ms.map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

struct MirrorProber {
    store: MirrorWatchStore,
    timeout: Duration,
    prod: Option<ThreadedProducer<kclient::Reports>>,
    /// (source, target) consumers, reassigned each round to the one
    /// record they read.
    readers: Option<(Arc<BaseConsumer>, Arc<BaseConsumer>)>,
    created: bool,
}

impl MirrorProber {
    /// The source's heartbeat topic, made once (brokers may refuse to
    /// auto-create it). A day's retention bounds it: the probe reads only
    /// its tail.
    async fn ensure_topic(&mut self) -> Result<(), String> {
        if self.created {
            return Ok(());
        }
        let admin = meta::admin_client(&self.store.source.addr)?;
        let opts = AdminOptions::new().operation_timeout(Some(self.timeout));
        let t = NewTopic::new(&self.store.topic, 1, TopicReplication::Fixed(1))
            .set("retention.ms", "86400000");
        let res = tokio::time::timeout(self.timeout * 2, admin.create_topics([&t], &opts))
            .await
            .map_err(|_| format!("create topic {}: timed out", self.store.topic))?
            .map_err(|e| format!("create topic {}: {e}", self.store.topic))?;
        for r in res {
            if let Err((name, code)) = r {
                if code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                    return Err(format!("create topic {name}: {code}"));
                }
            }
        }
        self.created = true;
        Ok(())
    }

    /// Writes one beat to the source; its timestamp is its send time.
    async fn beat(&mut self) -> Result<(), String> {
        self.ensure_topic().await?;
        if self.prod.is_none() {
            let p = Producer {
                acks: Acks::All,
                idempotence: false,
                linger: Duration::ZERO,
                max_in_flight: 1,
                delivery_timeout: self.timeout,
                retries: None,
            };
            self.prod = Some(kclient::producer(&self.store.source.addr, &p)?);
        }
        let Some(prod) = &self.prod else {
            return Err("no producer".into());
        };
        let d = kclient::send(prod, &self.store.topic, Some(0), b"hb", b"", self.timeout).await;
        match d.outcome {
            Outcome::Ok => Ok(()),
            _ => Err(d.error.unwrap_or_else(|| "not acknowledged".into())),
        }
    }

    /// The timestamp of the oldest source beat newer than the target's
    /// newest copy; None when the target has them all. Errors name the
    /// side that failed.
    async fn first_unmirrored(&mut self) -> Result<Option<i64>, String> {
        if self.readers.is_none() {
            let consumer = |addr: &str| -> Result<Arc<BaseConsumer>, String> {
                meta::base_config(addr)
                    .set("group.id", "firedrill-watch")
                    .set("enable.auto.commit", "false")
                    .set("fetch.wait.max.ms", "50")
                    .create()
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            };
            self.readers = Some((
                consumer(&self.store.source.addr)?,
                consumer(&self.store.target.addr)?,
            ));
        }
        let Some((src, dst)) = self.readers.clone() else {
            return Ok(None);
        };
        let (topic, remote, limit) = (
            self.store.topic.clone(),
            self.store.remote_topic.clone(),
            self.timeout,
        );
        let (sname, tname) = (self.store.source.name.clone(), self.store.target.name.clone());
        tokio::task::spawn_blocking(move || {
            let newest = newest_ts(&dst, &remote, limit).map_err(|e| format!("{tname} (target): {e}"))?;
            first_after(&src, &topic, newest, limit).map_err(|e| format!("{sname} (source): {e}"))
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

/// The timestamp of the newest record of partition 0 of `topic`; None
/// when the topic is empty or not there yet (MM2 has not made its copy).
/// Blocking.
fn newest_ts(c: &BaseConsumer, topic: &str, limit: Duration) -> Result<Option<i64>, String> {
    let m = meta::fetch(c, Some(topic), limit)?;
    if m.partition(topic, 0).is_none_or(|p| p.leader < 0) {
        return Ok(None);
    }
    let (low, high) = c
        .fetch_watermarks(topic, 0, limit)
        .map_err(|e| e.to_string())?;
    if high <= low {
        return Ok(None);
    }
    read_ts(c, topic, high - 1, limit).map(Some)
}

/// The timestamp of the first record of partition 0 of `topic` newer
/// than `after` (every record's when None); None when there is none.
/// Blocking.
fn first_after(
    c: &BaseConsumer,
    topic: &str,
    after: Option<i64>,
    limit: Duration,
) -> Result<Option<i64>, String> {
    let (low, high) = c
        .fetch_watermarks(topic, 0, limit)
        .map_err(|e| e.to_string())?;
    if high <= low {
        return Ok(None);
    }
    let offset = match after {
        None => low,
        Some(t) => {
            let mut q = TopicPartitionList::new();
            q.add_partition_offset(topic, 0, Offset::Offset(t + 1))
                .map_err(|e| e.to_string())?;
            let r = c.offsets_for_times(q, limit).map_err(|e| e.to_string())?;
            match r.find_partition(topic, 0).map(|e| e.offset()) {
                Some(Offset::Offset(o)) if o < high => o,
                // No record newer than the target's newest.
                _ => return Ok(None),
            }
        }
    };
    read_ts(c, topic, offset, limit).map(Some)
}

/// The timestamp of the record at `offset` of partition 0. Blocking.
fn read_ts(c: &BaseConsumer, topic: &str, offset: i64, limit: Duration) -> Result<i64, String> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .map_err(|e| e.to_string())?;
    c.assign(&tpl).map_err(|e| e.to_string())?;
    let end = Instant::now() + limit;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match c.poll(left) {
            Some(Ok(m)) if m.topic() == topic && m.offset() >= offset => {
                return m
                    .timestamp()
                    .to_millis()
                    .ok_or_else(|| format!("{topic} offset {offset} has no timestamp"));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => break,
        }
    }
    Err(format!("{topic} offset {offset}: no record within {} ms", limit.as_millis()))
}

#[async_trait]
impl Probe for MirrorProber {
    async fn round(&mut self, dom: &WatchedDomain) -> Round {
        // Beat first, so an idle mirror reads its true lag (this beat's
        // trip), not 0 because nothing was written.
        let beat = self.beat().await;
        let found = self.first_unmirrored().await;
        let now = now_ms();
        let (observed, error) = match (found, beat) {
            (Err(e), _) => (Vec::new(), Some(e)),
            (Ok(first), Ok(())) => (
                vec![(self.store.target.name.clone(), exposure_s(now, first))],
                None,
            ),
            // The source refused this beat: what it holds now is unknown,
            // unless an older beat already shows a window open.
            (Ok(first), Err(e)) => {
                let err = Some(format!("heartbeat on {} (source): {e}", self.store.source.name));
                match first {
                    Some(_) => (vec![(self.store.target.name.clone(), exposure_s(now, first))], err),
                    None => (Vec::new(), err),
                }
            }
        };
        let mut extras = Extras::new();
        if let Some((_, e)) = observed.first() {
            extras.insert(
                ("firedrill_kafka_mirror_unmirrored_seconds".into(), labels(dom, &[])),
                *e,
            );
        }
        Round {
            results: vec![SourceResult {
                source: Source::Heartbeat,
                observed,
                missing: Vec::new(),
                error,
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

    #[test]
    fn exposure_is_the_age_of_the_first_unmirrored_beat() {
        assert_eq!(exposure_s(10_000, None), 0.0, "all mirrored");
        assert_eq!(exposure_s(10_000, Some(7_500)), 2.5);
        assert_eq!(exposure_s(10_000, Some(10_001)), 0.0, "never negative");
    }
}
