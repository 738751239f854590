//! `lab status` for a mirror lab: the two regions' brokers, MM2, and per
//! mirrored topic the mirroring lag: how many records A's topic has that
//! B's copy (`A.<topic>`) has not yet, from both high watermarks.

use super::lab::MM2;
use super::target::remote;
use crate::kafka::target::meta;
use firedrill_lab::{LabState, NodeStatus};
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(2);

pub(crate) fn status(state: &LabState) -> Vec<NodeStatus> {
    let mut rows: Vec<NodeStatus> = state
        .nodes
        .iter()
        .chain(state.sentinels.iter())
        .map(|n| {
            let alive = n.proc.is_some_and(|p| p.is_alive());
            let region = n.zone.as_deref().unwrap_or("-");
            let role = match (alive, n.name == MM2) {
                (false, _) => "down".to_string(),
                (true, true) => "MirrorMaker 2 (A -> B)".into(),
                (true, false) => format!("region {region} broker"),
            };
            NodeStatus {
                name: n.name.clone(),
                pid: n.proc.map(|p| p.pid),
                alive,
                port: n.port,
                role,
                replication: Some(format!("region {region}")),
                lag_bytes: None,
                lag_s: None,
                timeline: None,
            }
        })
        .collect();
    let (Some(a), Some(b)) = (state.nodes.first(), state.nodes.get(1)) else {
        return rows;
    };
    rows.extend(lag_rows(&a.conninfo, &b.conninfo));
    rows
}

/// Sum of the high watermarks of `topic`'s partitions, or None.
fn end_offsets(c: &BaseConsumer, m: &meta::Meta, topic: &str) -> Option<i64> {
    let parts = m.topics.get(topic)?;
    parts
        .iter()
        .map(|p| c.fetch_watermarks(topic, p.id, LIMIT).ok().map(|(_, hi)| hi))
        .sum()
}

/// One row per firedrill topic on A: records not yet on B.
fn lag_rows(a: &str, b: &str) -> Vec<NodeStatus> {
    let (Ok(ca), Ok(cb)) = (meta::meta_client(a), meta::meta_client(b)) else {
        return Vec::new();
    };
    let Ok(ma) = meta::fetch(&ca, None, LIMIT) else {
        return Vec::new();
    };
    let mb = meta::fetch(&cb, None, LIMIT).unwrap_or_default();
    ma.topics
        .keys()
        .filter(|t| t.starts_with("firedrill-"))
        .map(|t| {
            let src = end_offsets(&ca, &ma, t);
            let dst = end_offsets(&cb, &mb, &remote(t));
            let text = match (src, dst) {
                (Some(s), Some(d)) => format!(
                    "mirroring lag {} records ({s} on A, {d} in B's {})",
                    (s - d).max(0),
                    remote(t)
                ),
                (Some(s), None) => format!("{s} records on A; B has no {} yet", remote(t)),
                _ => "no answer from A".into(),
            };
            NodeStatus {
                name: t.clone(),
                pid: None,
                alive: dst.is_some(),
                port: 0,
                role: "mirrored topic".into(),
                replication: Some(text),
                lag_bytes: None,
                lag_s: None,
                timeline: None,
            }
        })
        .collect()
}
