//! What each node is doing now, asked of the servers themselves: a drill
//! may have killed, paused or promoted nodes since `up`, so the recorded
//! roles are only where the lab started.

use crate::LabState;

#[derive(Debug, Clone, PartialEq)]
pub struct NodeStatus {
    pub name: String,
    pub pid: Option<i32>,
    /// The recorded postmaster is running.
    pub alive: bool,
    pub port: u16,
    /// "primary" | "standby" | "down" | "unreachable"
    pub role: String,
    /// Primary: one "<app> <state> <sync_state>" per standby; standby: the
    /// walreceiver status, e.g. "streaming from n1 (:P)", or "not receiving".
    pub replication: Option<String>,
    /// Standby: bytes the primary has sent beyond this node's replay
    /// position (or, if the primary is unreachable, received but unreplayed).
    pub lag_bytes: Option<u64>,
    /// Standby: age of the last replayed transaction, 0 when caught up.
    pub lag_s: Option<f64>,
    pub timeline: Option<u32>,
}

impl NodeStatus {
    /// A node's row with only a role (and a note): stores whose nodes have
    /// no timeline or byte lag.
    pub fn of(n: &crate::NodeState, role: String, replication: Option<String>) -> NodeStatus {
        NodeStatus {
            name: n.name.clone(),
            pid: n.proc.map(|p| p.pid),
            alive: n.proc.is_some_and(|p| p.is_alive()),
            port: n.port,
            role,
            replication,
            lag_bytes: None,
            lag_s: None,
            timeline: None,
        }
    }
}

/// A plain-text table, one row per node.
pub fn render_status(state: &LabState, st: &[NodeStatus]) -> String {
    let header = ["NODE", "PID", "PORT", "ROLE", "TL", "LAG", "REPLICATION"];
    let rows: Vec<[String; 7]> = st
        .iter()
        .map(|s| {
            let lag = match (s.lag_bytes, s.lag_s) {
                (Some(b), Some(t)) => format!("{b} B / {t:.1} s"),
                (Some(b), None) => format!("{b} B"),
                (None, Some(t)) => format!("{t:.1} s"),
                (None, None) => "-".into(),
            };
            [
                s.name.clone(),
                match (s.pid, s.alive) {
                    (Some(p), true) => p.to_string(),
                    (Some(p), false) => format!("{p} (dead)"),
                    (None, _) => "-".into(),
                },
                s.port.to_string(),
                s.role.clone(),
                s.timeline.map_or("-".into(), |t| t.to_string()),
                lag,
                s.replication.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: &[String]| {
        let s: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        s.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = format!("lab {} ({})\n", state.name, state.dir.display());
    out += &line(&header.map(String::from));
    for r in &rows {
        out += &line(r);
    }
    out += &render_links(state);
    out += &render_netns(state);
    out
}

/// A netns lab: each node's namespace, address and host veth, and whether
/// that link is up (down = the node is partitioned).
fn render_netns(state: &LabState) -> String {
    let Some(net) = &state.netns else {
        return String::new();
    };
    let mut out = format!(
        "network namespaces (bridge {} {}, {})\n",
        net.bridge, net.bridge_ip, net.subnet
    );
    for n in &state.nodes {
        let Some(nn) = &n.net else { continue };
        let link = match crate::netns::link_up(&nn.veth) {
            Some(true) => "link up",
            Some(false) => "link DOWN (partitioned)",
            None => "link missing",
        };
        out += &format!(
            "  {:<4} netns {:<12} {:<14} veth {:<12} {}\n",
            n.name, nn.netns, nn.ip, nn.veth, link
        );
    }
    out
}

/// The proxied links and the toxics (faults) on each right now.
fn render_links(state: &LabState) -> String {
    let Some(proxy) = &state.proxy else {
        return String::new();
    };
    let api = firedrill_faults::proxy::ProxyApi::new(proxy.api);
    let alive = proxy.proc.is_some_and(|p| p.is_alive());
    let mut out = format!(
        "links (fault proxy {}{})\n",
        proxy.api,
        if alive { "" } else { ", not running" }
    );
    for l in &state.links {
        let what = match (&l.kind, &l.peer) {
            (crate::links::LinkKind::Clients, _) => format!("clients -> {}", l.node),
            (crate::links::LinkKind::Replication, Some(p)) => {
                format!("{} -> {p} (replication)", l.node)
            }
            (crate::links::LinkKind::Replication, None) => format!("{} replication", l.node),
            (crate::links::LinkKind::Peers, _) => format!("peers -> {}", l.node),
        };
        let toxics = if alive {
            match api.get_proxy(&l.name) {
                Ok(v) => {
                    let t: Vec<String> = v["toxics"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|t| {
                                    format!(
                                        "{} {}",
                                        t["type"].as_str().unwrap_or("?"),
                                        t["stream"].as_str().unwrap_or("")
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    if t.is_empty() {
                        "ok".to_string()
                    } else {
                        t.join(", ")
                    }
                }
                Err(_) => "unknown".into(),
            }
        } else {
            "-".into()
        };
        out += &format!(
            "  {:<16} :{:<5} -> :{:<5}  {:<28} {}\n",
            l.name, l.listen_port, l.upstream_port, what, toxics
        );
    }
    out
}
