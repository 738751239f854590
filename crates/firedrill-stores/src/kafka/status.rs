//! `lab status` for a Kafka lab: each node's role (broker, controller,
//! active controller) and zone, asked of the cluster's metadata and the
//! voters' quorum-state; then one line per partition of each drill topic:
//! its leader, ISR and offline replicas.

use super::lab::is_controller_only;
use super::target::{Meta, Part};
use firedrill_lab::{LabState, NodeStatus};
use std::path::PathBuf;
use std::time::Duration;

pub(crate) fn status(state: &LabState) -> Vec<NodeStatus> {
    let bootstrap: Vec<String> = state
        .nodes
        .iter()
        .filter(|n| !is_controller_only(&n.name) && n.proc.is_some_and(|p| p.is_alive()))
        .map(|n| n.conninfo.clone())
        .collect();
    let meta = super::target::fetch_blocking(&bootstrap.join(","), Duration::from_secs(2));
    let dirs: Vec<(String, PathBuf)> = state
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.data_dir.clone()))
        .collect();
    let active = active_controller(&dirs).map(|(n, _)| n);
    let separate = state.nodes.iter().any(|n| is_controller_only(&n.name));
    let name = |id: i32| {
        usize::try_from(id - 1)
            .ok()
            .and_then(|i| state.nodes.get(i))
            .map(|n| n.name.clone())
            .unwrap_or_else(|| format!("broker {id}"))
    };
    let mut rows: Vec<NodeStatus> = state
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let alive = n.proc.is_some_and(|p| p.is_alive());
            let broker = !is_controller_only(&n.name);
            let voter = !separate || !broker;
            let mut role = match (broker, voter) {
                (true, true) => "broker+controller".to_string(),
                (true, false) => "broker".to_string(),
                _ => "controller".to_string(),
            };
            if voter && active.as_deref() == Some(n.name.as_str()) {
                role += " (active controller)";
            }
            let registered = meta
                .as_ref()
                .map(|m| m.brokers.contains(&(i as i32 + 1)))
                .unwrap_or(false);
            if !alive {
                role = "down".into();
            } else if broker && !registered {
                role += " (not registered or fenced)";
            }
            let leads: Vec<String> = meta
                .as_ref()
                .map(|m| {
                    m.topics
                        .iter()
                        .flat_map(|(t, ps)| {
                            ps.iter()
                                .filter(|p| p.leader == i as i32 + 1)
                                .map(move |p| format!("{t}/{}", p.id))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut repl = format!("zone {}", n.zone.as_deref().unwrap_or("-"));
            if !leads.is_empty() {
                repl += &format!("; leads {}", leads.join(", "));
            }
            NodeStatus {
                name: n.name.clone(),
                pid: n.proc.map(|p| p.pid),
                alive,
                port: n.port,
                role,
                replication: Some(repl),
                lag_bytes: None,
                lag_s: None,
                timeline: None,
            }
        })
        .collect();
    if let Ok(m) = &meta {
        rows.extend(partition_rows(m, &name));
    }
    rows
}

/// One row per partition of the drill topics (not the heartbeat's).
fn partition_rows(m: &Meta, name: &dyn Fn(i32) -> String) -> Vec<NodeStatus> {
    let list = |ids: &[i32]| ids.iter().map(|i| name(*i)).collect::<Vec<_>>().join(",");
    m.topics
        .iter()
        .filter(|(t, _)| t.starts_with("firedrill-") && !t.starts_with("firedrill-hb-"))
        .flat_map(|(t, ps)| {
            ps.iter().map(move |p: &Part| {
                let offline: Vec<i32> = p
                    .replicas
                    .iter()
                    .copied()
                    .filter(|r| !m.brokers.contains(r))
                    .collect();
                NodeStatus {
                    name: format!("{t}/{}", p.id),
                    pid: None,
                    alive: p.leader >= 0,
                    port: 0,
                    role: "partition".into(),
                    replication: Some(format!(
                        "leader {}, ISR [{}], offline [{}]",
                        if p.leader >= 0 { name(p.leader) } else { "none".into() },
                        list(&p.isr),
                        list(&offline)
                    )),
                    lag_bytes: None,
                    lag_s: None,
                    timeline: None,
                }
            })
        })
        .collect()
}

/// The KRaft quorum's leader as the voters persisted it: each voter writes
/// `quorum-state` (leader id and epoch) in its metadata log directory at
/// every election, before acting on it; the highest epoch is the newest.
/// Clients cannot ask for it (brokers answer metadata requests with a
/// random broker as "controller"), and the files are on this machine.
pub fn active_controller(state_dirs: &[(String, PathBuf)]) -> Option<(String, u64)> {
    let mut best: Option<(i64, u64)> = None;
    for (_, d) in state_dirs {
        let p = d.join("__cluster_metadata-0").join("quorum-state");
        let Ok(t) = std::fs::read_to_string(&p) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&t) else {
            continue;
        };
        let (Some(leader), Some(epoch)) = (v["leaderId"].as_i64(), v["leaderEpoch"].as_u64())
        else {
            continue;
        };
        if leader >= 0 && best.is_none_or(|(_, e)| epoch > e) {
            best = Some((leader, epoch));
        }
    }
    let (leader, epoch) = best?;
    let name = state_dirs.get(usize::try_from(leader).ok()?.checked_sub(1)?)?.0.clone();
    Some((name, epoch))
}
