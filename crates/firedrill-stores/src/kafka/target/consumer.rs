//! The drill's consumer group (DESIGN.md, "Streams"): it reads the run's
//! drill topic for the whole trial, committing its offsets as a service's
//! consumers would, and records what it delivers. On a mirror, when the
//! producers fail over to region B, it moves too: it reads MM2's
//! checkpoints for its group on B (`A.checkpoints.internal`, the records
//! `RemoteClusterUtils.translateOffsets` reads), resumes B's copy of the
//! topic at the translated offsets, and B's own topic from its start.

use super::meta;
use firedrill_targets::StreamConsumer;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the group commits its offsets (librdkafka's auto commit).
pub const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// Where the group reads in one region.
#[derive(Debug, Clone)]
pub struct RegionRead {
    pub bootstrap: String,
    /// The topic the producers write to in this region.
    pub topic: String,
    /// A mirrored copy to resume at MM2's translated offsets: (the copy's
    /// name, MM2's checkpoints topic in this region).
    pub mirrored: Option<(String, String)>,
}

/// The group, following the region the producers write to.
pub struct GroupConsumer {
    group: String,
    settings: String,
    regions: Vec<RegionRead>,
    active: Arc<AtomicUsize>,
    reading: Option<usize>,
    c: Option<Arc<BaseConsumer>>,
    notes: Vec<String>,
}

impl GroupConsumer {
    pub fn new(
        group: String,
        settings: String,
        regions: Vec<RegionRead>,
        active: Arc<AtomicUsize>,
    ) -> GroupConsumer {
        GroupConsumer {
            group,
            settings,
            regions,
            active,
            reading: None,
            c: None,
            notes: Vec::new(),
        }
    }

    fn config(&self, bootstrap: &str) -> rdkafka::ClientConfig {
        let mut c = meta::base_config(bootstrap);
        c.set("group.id", &self.group)
            .set("enable.auto.commit", "true")
            .set(
                "auto.commit.interval.ms",
                COMMIT_INTERVAL.as_millis().to_string(),
            )
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "50")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500");
        c
    }

    /// The consumer for region `i`: the first region subscribes as a
    /// service's consumer would; a region failed over to is assigned its
    /// partitions at the translated offsets.
    fn open(&mut self, i: usize) -> Result<BaseConsumer, String> {
        let r = self.regions[i].clone();
        let c: BaseConsumer = self.config(&r.bootstrap).create().map_err(|e| e.to_string())?;
        if self.reading.is_none() {
            c.subscribe(&[&r.topic]).map_err(|e| e.to_string())?;
            return Ok(c);
        }
        let m = meta::fetch(&c, None, Duration::from_secs(5))?;
        let parts = |t: &str| -> Vec<i32> {
            m.topics
                .get(t)
                .map(|ps| ps.iter().map(|p| p.id).collect())
                .unwrap_or_default()
        };
        let mut tpl = TopicPartitionList::new();
        let mut said = Vec::new();
        if let Some((copy, checkpoints)) = &r.mirrored {
            let translated = read_checkpoints(&r.bootstrap, checkpoints, &self.group, copy)?;
            for p in parts(copy) {
                let at = translated.get(&p).map(|&o| Offset::Offset(o));
                said.push(match at {
                    Some(Offset::Offset(o)) => format!("{copy}-{p} at {o}"),
                    _ => format!("{copy}-{p} from its start (no checkpoint)"),
                });
                tpl.add_partition_offset(copy, p, at.unwrap_or(Offset::Beginning))
                    .map_err(|e| e.to_string())?;
            }
        }
        for p in parts(&r.topic) {
            tpl.add_partition_offset(&r.topic, p, Offset::Beginning)
                .map_err(|e| e.to_string())?;
        }
        c.assign(&tpl).map_err(|e| e.to_string())?;
        self.notes.push(format!(
            "moved to {} with the producers: {}; {} from its start",
            r.bootstrap,
            if said.is_empty() { "no mirrored copy".into() } else { said.join(", ") },
            r.topic
        ));
        Ok(c)
    }
}

/// Drops a reference to the group's consumer on the reaper thread, never
/// where it was used: the last one closes the consumer, which commits and
/// leaves the group, and with the coordinator's broker dead librdkafka has
/// been seen to block there for good. On a runtime thread that hung the
/// drill's exit (the runtime waits for its blocking tasks); the reaper is
/// a detached thread, which the exit does not wait for.
fn release(c: Arc<BaseConsumer>) {
    static REAPER: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Arc<BaseConsumer>>>> =
        std::sync::OnceLock::new();
    let tx = REAPER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Arc<BaseConsumer>>();
        std::thread::spawn(move || {
            for c in rx {
                drop(c);
            }
        });
        std::sync::Mutex::new(tx)
    });
    let sent = tx.lock().map(|t| t.send(c));
    if let Ok(Err(std::sync::mpsc::SendError(c))) = sent {
        std::mem::forget(c); // no reaper: leak it rather than block here
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        if let Some(c) = self.c.take() {
            release(c);
        }
    }
}

/// The group of a single cluster (`kind = "kafka"`): the cluster's own
/// leader elections move its partitions, so it never switches. Its
/// group is `firedrill-c-<run>`, from the drill topic `firedrill-<run>`.
pub fn one_cluster(topic: &str, bootstrap: String) -> GroupConsumer {
    let run = topic.strip_prefix("firedrill-").unwrap_or(topic);
    GroupConsumer::new(
        format!("firedrill-c-{run}"),
        format!(
            "commits every {} s; one cluster: leader elections move its partitions",
            COMMIT_INTERVAL.as_secs()
        ),
        vec![RegionRead {
            bootstrap,
            topic: topic.to_string(),
            mirrored: None,
        }],
        Arc::new(AtomicUsize::new(0)),
    )
}

/// The newest checkpoint of `group` for each partition of `copy`, read
/// from MM2's checkpoints topic on this cluster: partition → the
/// translated (downstream) offset.
fn read_checkpoints(
    bootstrap: &str,
    topic: &str,
    group: &str,
    copy: &str,
) -> Result<BTreeMap<i32, i64>, String> {
    let c: BaseConsumer = meta::base_config(bootstrap)
        .set("group.id", "firedrill-checkpoints")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| e.to_string())?;
    let (lo, hi) = match c.fetch_watermarks(topic, 0, Duration::from_secs(5)) {
        Ok(w) => w,
        Err(_) => return Ok(BTreeMap::new()), // no checkpoint ever
    };
    let mut out = BTreeMap::new();
    if hi <= lo {
        return Ok(out);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(lo))
        .map_err(|e| e.to_string())?;
    c.assign(&tpl).map_err(|e| e.to_string())?;
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        let Some(Ok(m)) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        if let (Some(k), Some(v)) = (m.key(), m.payload()) {
            if let Some(cp) = Checkpoint::decode(k, v) {
                if cp.group == group && cp.topic == copy {
                    out.insert(cp.partition, cp.downstream);
                }
            }
        }
        if m.offset() + 1 >= hi {
            return Ok(out);
        }
    }
    Err(format!("{topic} not read to its end in 10 s"))
}

/// One MM2 checkpoint record: key (group STRING, topic STRING, partition
/// INT32), value (version INT16, upstreamOffset INT64, offset INT64,
/// metadata STRING), in Kafka's protocol encoding (big-endian, strings
/// with an INT16 length).
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub upstream: i64,
    pub downstream: i64,
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<String> {
        let n = usize::try_from(self.i16()?).ok()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

impl Checkpoint {
    pub fn decode(key: &[u8], value: &[u8]) -> Option<Checkpoint> {
        let mut k = Reader(key);
        let (group, topic, partition) = (k.string()?, k.string()?, k.i32()?);
        let mut v = Reader(value);
        if v.i16()? != 0 {
            return None; // a version this reader does not know
        }
        Some(Checkpoint {
            group,
            topic,
            partition,
            upstream: v.i64()?,
            downstream: v.i64()?,
        })
    }
}

#[async_trait::async_trait]
impl StreamConsumer for GroupConsumer {
    fn describe(&self) -> (String, String) {
        (self.group.clone(), self.settings.clone())
    }

    async fn poll(&mut self, limit: Duration) -> Vec<u64> {
        let want = self.active.load(Ordering::SeqCst).min(self.regions.len() - 1);
        if self.reading != Some(want) {
            if let Some(old) = self.c.take() {
                release(old);
            }
            match self.open(want) {
                Ok(c) => {
                    self.c = Some(Arc::new(c));
                    self.reading = Some(want);
                }
                Err(e) => {
                    self.notes.push(format!("could not read region {want}: {e}"));
                    tokio::time::sleep(limit).await;
                    return Vec::new();
                }
            }
        }
        let Some(c) = self.c.clone() else {
            return Vec::new();
        };
        tokio::task::spawn_blocking(move || {
            let end = Instant::now() + limit;
            let mut out = Vec::new();
            while out.len() < 2_000 {
                let left = end.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match c.poll(left) {
                    Some(Ok(m)) => {
                        if let Some(s) = m
                            .key()
                            .and_then(|k| std::str::from_utf8(k).ok())
                            .and_then(|k| k.parse::<u64>().ok())
                        {
                            out.push(s);
                        }
                    }
                    Some(Err(_)) => {} // a dead broker's news; keep polling
                    None => break,
                }
            }
            release(c);
            out
        })
        .await
        .unwrap_or_default()
    }

    fn notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(b: &mut Vec<u8>, x: &str) {
        b.extend((x.len() as i16).to_be_bytes());
        b.extend(x.as_bytes());
    }

    #[test]
    fn decodes_a_checkpoint() {
        let mut k = Vec::new();
        s(&mut k, "firedrill-c-1");
        s(&mut k, "A.firedrill-1");
        k.extend(2i32.to_be_bytes());
        let mut v = Vec::new();
        v.extend(0i16.to_be_bytes());
        v.extend(130i64.to_be_bytes());
        v.extend(123i64.to_be_bytes());
        s(&mut v, "");
        let c = Checkpoint::decode(&k, &v).expect("decodes");
        assert_eq!(
            c,
            Checkpoint {
                group: "firedrill-c-1".into(),
                topic: "A.firedrill-1".into(),
                partition: 2,
                upstream: 130,
                downstream: 123
            }
        );
        // Torn, or a version not known: refused, never misread.
        assert!(Checkpoint::decode(&k[..k.len() - 1], &v).is_none());
        assert!(Checkpoint::decode(&k, &v[..10]).is_none());
        let mut v1 = v.clone();
        v1[1] = 1;
        assert!(Checkpoint::decode(&k, &v1).is_none());
    }
}
