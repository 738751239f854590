//! The audit: every record of the drill topic on the recovered cluster.
//!
//! It first waits for the ISR to settle (two metadata reads 500 ms apart
//! agree, every partition either led or offline), so it does not read a
//! partition whose leader is about to change. Then each led partition is
//! read from its earliest offset to its high watermark (what a consumer
//! can see). A partition that is offline (no leader: its last ISR member
//! is dead and unclean election is off) is read from the log segments of
//! its last ISR member on disk, with Kafka's own DumpLogSegments: that log
//! is exactly what the partition has when that broker comes back and
//! leads it again; nothing was lost, it is unavailable (the RTO says so).

use super::{KafkaTarget, Meta, Part};
use firedrill_targets::TargetError;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::process::Stdio;
use std::time::{Duration, Instant};

const SETTLE_LIMIT: Duration = Duration::from_secs(20);
const READ_LIMIT: Duration = Duration::from_secs(60);

pub(super) async fn audit(t: &KafkaTarget) -> Result<Vec<u64>, TargetError> {
    let m = settle(t).await?;
    let parts = m.topics.get(&t.topic).cloned().unwrap_or_default();
    if parts.is_empty() {
        return Err(TargetError::Other(format!("topic {} not found", t.topic)));
    }
    let live = super::reachable_brokers(&t.nodes).await;
    let (online, offline): (Vec<Part>, Vec<Part>) = parts
        .into_iter()
        .partition(|p| p.leader >= 0 && live.contains(&p.leader));
    let bootstrap = super::control_bootstrap(&t.nodes);
    let topic = t.topic.clone();
    let ids: Vec<i32> = online.iter().map(|p| p.id).collect();
    let mut seqs = tokio::task::spawn_blocking(move || read_partitions(&bootstrap, &topic, &ids))
        .await
        .map_err(|e| TargetError::Other(e.to_string()))??;
    for p in &offline {
        tracing::warn!(
            "partition {} of {} is offline (leader {}, ISR {:?}): audited from the last ISR member's log on disk",
            p.id,
            t.topic,
            if p.leader < 0 { "none".to_string() } else { format!("{} unreachable", p.leader) },
            p.isr
        );
        seqs.extend(read_offline(t, p).await?);
    }
    Ok(seqs)
}

/// Waits until two metadata reads 500 ms apart agree and every partition
/// is led or has no live ISR member left to lead it.
async fn settle(t: &KafkaTarget) -> Result<Meta, TargetError> {
    let end = tokio::time::Instant::now() + SETTLE_LIMIT;
    let mut last: Option<Meta> = None;
    loop {
        if let Ok(m) = t.fetch(Some(&t.topic), Duration::from_secs(2)).await {
            let stable = m.topics.get(&t.topic).is_some_and(|ps| {
                ps.iter()
                    .all(|p| p.leader >= 0 || !p.isr.iter().any(|i| m.brokers.contains(i)))
            });
            let same = last
                .as_ref()
                .is_some_and(|l| l.topics == m.topics && l.brokers == m.brokers);
            if stable && same {
                return Ok(m);
            }
            if tokio::time::Instant::now() > end {
                return Ok(m);
            }
            last = Some(m);
        } else if tokio::time::Instant::now() > end {
            return Err(TargetError::Other("no metadata for the audit".into()));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Reads the partitions from the earliest offset to the high watermark.
pub(crate) fn read_partitions(bootstrap: &str, topic: &str, parts: &[i32]) -> Result<Vec<u64>, TargetError> {
    let c: BaseConsumer = super::meta::base_config(bootstrap)
        // assign() needs a group id; nothing is ever committed to it.
        .set("group.id", "firedrill-audit")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.max.bytes", "52428800")
        .create()
        .map_err(|e| TargetError::Other(e.to_string()))?;
    let mut ends = std::collections::HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for &p in parts {
        let (lo, hi) = c
            .fetch_watermarks(topic, p, Duration::from_secs(5))
            .map_err(|e| TargetError::Other(format!("watermarks of {topic}-{p}: {e}")))?;
        if hi > lo {
            ends.insert(p, hi);
            tpl.add_partition_offset(topic, p, Offset::Offset(lo))
                .map_err(|e| TargetError::Other(e.to_string()))?;
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return Ok(out);
    }
    c.assign(&tpl).map_err(|e| TargetError::Other(e.to_string()))?;
    let end = Instant::now() + READ_LIMIT;
    while !ends.is_empty() {
        if Instant::now() > end {
            return Err(TargetError::Other(format!(
                "audit: partitions {:?} not read to their high watermark in {} s",
                ends.keys().collect::<Vec<_>>(),
                READ_LIMIT.as_secs()
            )));
        }
        let Some(r) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        // Errors here are the client's news about a dead broker (transport
        // failures), not about the partitions it reads: keep reading until
        // every partition reaches its high watermark or the limit passes.
        let Ok(msg) = r else {
            continue;
        };
        if let Some(seq) = msg
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(|k| k.parse::<u64>().ok())
        {
            out.push(seq);
        }
        let p = msg.partition();
        if ends.get(&p).is_some_and(|hi| msg.offset() + 1 >= *hi) {
            ends.remove(&p);
        }
    }
    Ok(out)
}

/// The seqs in an offline partition's log segments on its last ISR
/// member's disk.
async fn read_offline(t: &KafkaTarget, p: &Part) -> Result<Vec<u64>, TargetError> {
    let lab = t.lab.as_ref().ok_or_else(|| {
        TargetError::Other(format!(
            "partition {} is offline and its log is not on this machine",
            p.id
        ))
    })?;
    // The ISR of a partition whose last member is fenced can be empty
    // (Kafka 4 keeps it in the ELR, which the metadata does not show), so
    // the holder is the ISR member, else the replica, with the longest log
    // on disk: the last leader, whose log the others' are a prefix of.
    let candidates: Vec<i32> = if p.isr.is_empty() {
        p.replicas.clone()
    } else {
        p.isr.clone()
    };
    let mut best: Option<(u64, Vec<String>)> = None;
    for id in candidates {
        let Some(node) = usize::try_from(id - 1).ok().and_then(|i| lab.nodes.get(i)) else {
            continue;
        };
        let dir = node.1.join(format!("{}-{}", t.topic, p.id));
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut size = 0;
        let mut files = Vec::new();
        for e in rd.flatten() {
            let f = e.path();
            if f.extension().is_some_and(|x| x == "log") {
                size += e.metadata().map(|m| m.len()).unwrap_or(0);
                files.push(f.display().to_string());
            }
        }
        if best.as_ref().is_none_or(|(s, _)| size > *s) {
            best = Some((size, files));
        }
    }
    let (_, mut files) = best
        .ok_or_else(|| TargetError::Other(format!("partition {} has no replica log on disk", p.id)))?;
    files.sort();
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let mut cmd = tokio::process::Command::new(&lab.java);
    cmd.args(["-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp"])
        .arg(&lab.classpath)
        .args(["org.apache.kafka.tools.DumpLogSegments", "--print-data-log", "--files"])
        .arg(files.join(","))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .map_err(|_| TargetError::Other("DumpLogSegments took over 60 s".into()))?
        .map_err(|e| TargetError::Other(format!("DumpLogSegments: {e}")))?;
    if !out.status.success() {
        return Err(TargetError::Other(format!(
            "DumpLogSegments failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(parse_dump(&String::from_utf8_lossy(&out.stdout)))
}

/// `... key: 42 payload: ...` lines of DumpLogSegments.
pub fn parse_dump(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| {
            let rest = l.split(" key: ").nth(1)?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_dump_lines() {
        let t = "| offset: 0 CreateTime: 1 keySize: 2 valueSize: 3 sequence: -1 headerKeys: [] key: 17 payload: xx\n\
                 baseOffset: 0 lastOffset: 1 count: 2\n\
                 | offset: 1 CreateTime: 1 keySize: 2 valueSize: 3 sequence: -1 headerKeys: [] key: hb payload: 3\n";
        assert_eq!(super::parse_dump(t), vec![17]);
    }
}
