//! What MirrorMaker 2 publishes about itself: its heartbeats. MM2's
//! heartbeat connector for the flow B → A writes a timestamped record to
//! A's `heartbeats` topic every `emit.heartbeats.interval` (1 s here);
//! the A → B flow mirrors it to B's `A.heartbeats`, as it does every
//! heartbeats topic. So on B, the age of the newest mirrored heartbeat is
//! the lag MM2 itself shows, at one-interval resolution: the figure the
//! MM2 docs point users to, set beside firedrill's own 50 ms heartbeat.

use crate::kafka::target::meta;
use firedrill_targets::ReportedLag;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// MM2's heartbeats as mirrored to the target: `<source>.heartbeats`.
pub fn mirrored_heartbeats(source: &str) -> String {
    format!("{source}.heartbeats")
}

/// One MM2 heartbeat: key (sourceClusterAlias STRING, targetClusterAlias
/// STRING), value (version INT16 = 0, timestamp INT64 ms).
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    pub source: String,
    pub target: String,
    pub timestamp_ms: i64,
}

fn string(b: &[u8]) -> Option<(String, &[u8])> {
    let n = usize::try_from(i16::from_be_bytes(b.get(..2)?.try_into().ok()?)).ok()?;
    let s = String::from_utf8(b.get(2..2 + n)?.to_vec()).ok()?;
    Some((s, &b[2 + n..]))
}

impl Heartbeat {
    pub fn decode(key: &[u8], value: &[u8]) -> Option<Heartbeat> {
        let (source, rest) = string(key)?;
        let (target, _) = string(rest)?;
        if i16::from_be_bytes(value.get(..2)?.try_into().ok()?) != 0 {
            return None;
        }
        let timestamp_ms = i64::from_be_bytes(value.get(2..10)?.try_into().ok()?);
        Some(Heartbeat {
            source,
            target,
            timestamp_ms,
        })
    }
}

/// Follows `<source>.heartbeats` on the target cluster; the lag is the
/// age of the newest heartbeat seen.
pub struct Mm2Lag {
    c: Arc<BaseConsumer>,
    topic: String,
    newest_ms: Option<i64>,
}

impl Mm2Lag {
    pub fn new(bootstrap: &str, source: &str) -> Result<Mm2Lag, String> {
        let c: BaseConsumer = meta::base_config(bootstrap)
            .set("group.id", "firedrill-mm2-heartbeats")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "50")
            .create()
            .map_err(|e| e.to_string())?;
        let topic = mirrored_heartbeats(source);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::OffsetTail(1))
            .map_err(|e| e.to_string())?;
        c.assign(&tpl).map_err(|e| e.to_string())?;
        Ok(Mm2Lag {
            c: Arc::new(c),
            topic,
            newest_ms: None,
        })
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[async_trait::async_trait]
impl ReportedLag for Mm2Lag {
    fn source(&self) -> String {
        format!("MM2's heartbeats ({} on B, 1 s apart)", self.topic)
    }

    async fn read(&mut self, limit: Duration) -> Option<Duration> {
        let c = self.c.clone();
        let got = tokio::task::spawn_blocking(move || {
            let end = Instant::now() + limit;
            let mut best: Option<i64> = None;
            while let Some(r) = c.poll(end.saturating_duration_since(Instant::now())) {
                if let Ok(m) = r {
                    let hb = m.key().zip(m.payload()).and_then(|(k, v)| Heartbeat::decode(k, v));
                    best = best.max(hb.map(|h| h.timestamp_ms));
                }
                if Instant::now() >= end {
                    break;
                }
            }
            best
        })
        .await
        .ok()
        .flatten();
        self.newest_ms = self.newest_ms.max(got);
        let newest = self.newest_ms?;
        Some(Duration::from_millis((now_ms() - newest).max(0) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_heartbeat() {
        let mut k = Vec::new();
        for s in ["B", "A"] {
            k.extend((s.len() as i16).to_be_bytes());
            k.extend(s.as_bytes());
        }
        let mut v = 0i16.to_be_bytes().to_vec();
        v.extend(1_796_000_000_123i64.to_be_bytes());
        assert_eq!(
            Heartbeat::decode(&k, &v),
            Some(Heartbeat {
                source: "B".into(),
                target: "A".into(),
                timestamp_ms: 1_796_000_000_123
            })
        );
        assert_eq!(Heartbeat::decode(&k, &v[..9]), None);
        assert_eq!(Heartbeat::decode(&k[..3], &v), None);
        let mut v1 = v.clone();
        v1[1] = 1;
        assert_eq!(Heartbeat::decode(&k, &v1), None, "unknown version");
    }
}
