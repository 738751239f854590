//! `lab status` for a mirror lab: the two regions' brokers, MM2, and per
//! mirrored topic the mirroring lag: how many records A's topic has that
//! B's copy (`A.<topic>`) has not yet, from both high watermarks.

use super::lab::MM2;
use crate::kafka::target::meta;
use firedrill_lab::{LabState, NodeStatus};
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(2);

pub(crate) fn status(state: &LabState) -> Vec<NodeStatus> {
    let both = super::config::MirrorLab::of(&state.spec).mirror()
        == super::config::Mirror::ActiveActive;
    let mm2 = if both { "MirrorMaker 2 (A -> B, B -> A)" } else { "MirrorMaker 2 (A -> B)" };
    let mut rows: Vec<NodeStatus> = state
        .nodes
        .iter()
        .chain(state.sentinels.iter())
        .map(|n| {
            let alive = n.proc.is_some_and(|p| p.is_alive());
            let region = n.zone.as_deref().unwrap_or("-");
            let role = match (alive, n.name == MM2) {
                (false, _) => "down".to_string(),
                (true, true) => mm2.into(),
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
    rows.extend(lag_rows(&a.conninfo, &b.conninfo, "A", "B"));
    if both {
        rows.extend(lag_rows(&b.conninfo, &a.conninfo, "B", "A"));
    }
    rows.push(cycle_row(&a.conninfo, &b.conninfo));
    rows
}

/// A topic named with two region prefixes (`B.A.orders`) is a record's
/// way back to where it came from: the cycle MM2's default replication
/// policy exists to prevent. Lists any, on either region.
fn cycle_row(a: &str, b: &str) -> NodeStatus {
    let mut found = Vec::new();
    for (region, boot) in [("A", a), ("B", b)] {
        let Ok(c) = meta::meta_client(boot) else { continue };
        let Ok(m) = meta::fetch(&c, None, LIMIT) else { continue };
        found.extend(
            m.topics
                .keys()
                .filter(|t| t.starts_with("A.B.") || t.starts_with("B.A."))
                .map(|t| format!("{t} on {region}")),
        );
    }
    let text = if found.is_empty() {
        "no cycle: no topic on A or B has two region prefixes (A.B.*, B.A.*)".to_string()
    } else {
        format!("CYCLE: {}", found.join(", "))
    };
    NodeStatus {
        name: "cycles".into(),
        pid: None,
        alive: found.is_empty(),
        port: 0,
        role: "replication policy".into(),
        replication: Some(text),
        lag_bytes: None,
        lag_s: None,
        timeline: None,
    }
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
/// Per topic of `src` (alias `sa`), how far `dst`'s copy `<sa>.<topic>` is behind.
fn lag_rows(a: &str, b: &str, sa: &str, da: &str) -> Vec<NodeStatus> {
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
            let copy = format!("{sa}.{t}");
            let dst = end_offsets(&cb, &mb, &copy);
            let text = match (src, dst) {
                (Some(s), Some(d)) => format!(
                    "mirroring lag {} records ({s} on {sa}, {d} in {da}'s {copy})",
                    (s - d).max(0)
                ),
                (Some(s), None) => format!("{s} records on {sa}; {da} has no {copy} yet"),
                _ => format!("no answer from {sa}"),
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
