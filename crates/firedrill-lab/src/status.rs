//! What each node is doing now, asked of the servers themselves: a drill
//! may have killed, paused or promoted nodes since `up`, so the recorded
//! roles are only where the lab started.

use crate::LabState;
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Bounds a node whose postmaster accepts the connection but then hangs
/// (e.g. SIGSTOPped backends), so `status` always returns promptly.
const NODE_TIMEOUT: Duration = Duration::from_secs(3);

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

/// One standby as its primary sees it.
struct Peer {
    name: String,
    lag_bytes: Option<u64>,
}

struct Probe {
    role: String,
    replication: Option<String>,
    lag_bytes: Option<u64>,
    lag_s: Option<f64>,
    timeline: Option<u32>,
    peers: Vec<Peer>,
}

/// Probes every node concurrently, one short connection each. Never fails:
/// a node whose recorded process is dead is "down", one that is alive but
/// does not answer is "unreachable".
pub async fn status(state: &LabState) -> Vec<NodeStatus> {
    match state.spec.kind {
        firedrill_spec::LabKind::Etcd => {
            let st = state.clone();
            return tokio::task::spawn_blocking(move || etcd_status(&st))
                .await
                .unwrap_or_default();
        }
        firedrill_spec::LabKind::Patroni => {
            let mut out = pg_status(state).await;
            let st = state.clone();
            let view = tokio::task::spawn_blocking(move || crate::patroni::cluster(&st))
                .await
                .ok()
                .flatten();
            // Patroni's own view of each member beside PostgreSQL's.
            for s in out.iter_mut() {
                let m = view.as_ref().and_then(|v| {
                    v["members"]
                        .as_array()?
                        .iter()
                        .find(|m| m["name"].as_str() == Some(s.name.as_str()))
                        .cloned()
                });
                if let Some(m) = m {
                    let r = format!(
                        "patroni {} {}",
                        m["role"].as_str().unwrap_or("?"),
                        m["state"].as_str().unwrap_or("?")
                    );
                    s.replication = Some(match &s.replication {
                        Some(x) => format!("{r}; {x}"),
                        None => r,
                    });
                }
            }
            return out;
        }
        firedrill_spec::LabKind::RedisSentinel => return crate::redis::status(state).await,
        firedrill_spec::LabKind::Postgres => {}
    }
    pg_status(state).await
}

/// etcd members: leader or follower, as each member says.
fn etcd_status(state: &LabState) -> Vec<NodeStatus> {
    state
        .nodes
        .iter()
        .map(|n| {
            let alive = n.proc.is_some_and(|p| p.is_alive());
            let (role, replication) = if !alive {
                ("down".to_string(), None)
            } else {
                match crate::etcd::member_status(n.port) {
                    Ok((id, leader)) if leader != 0 && id == leader => ("leader".into(), None),
                    Ok((_, 0)) => ("follower".into(), Some("no leader".into())),
                    Ok((_, leader)) => ("follower".into(), Some(format!("leader id {leader:x}"))),
                    Err(_) => ("unreachable".into(), None),
                }
            };
            NodeStatus {
                name: n.name.clone(),
                pid: n.proc.map(|p| p.pid),
                alive,
                port: n.port,
                role,
                replication,
                lag_bytes: None,
                lag_s: None,
                timeline: None,
            }
        })
        .collect()
}

async fn pg_status(state: &LabState) -> Vec<NodeStatus> {
    let probes = state.nodes.iter().map(|n| {
        let alive = n.proc.is_some_and(|p| p.is_alive());
        let conninfo = n.conninfo.clone();
        async move {
            if !alive {
                return None;
            }
            tokio::time::timeout(NODE_TIMEOUT, probe(&conninfo, state))
                .await
                .ok()
                .and_then(Result::ok)
        }
    });
    let results = futures_util::future::join_all(probes).await;
    let mut out: Vec<NodeStatus> = state
        .nodes
        .iter()
        .zip(&results)
        .map(|(n, r)| {
            let alive = n.proc.is_some_and(|p| p.is_alive());
            let (role, replication, lag_bytes, lag_s, timeline) = match r {
                Some(p) => (
                    p.role.clone(),
                    p.replication.clone(),
                    p.lag_bytes,
                    p.lag_s,
                    p.timeline,
                ),
                None if alive => ("unreachable".into(), None, None, None, None),
                None => ("down".into(), None, None, None, None),
            };
            NodeStatus {
                name: n.name.clone(),
                pid: n.proc.map(|p| p.pid),
                alive,
                port: n.port,
                role,
                replication,
                lag_bytes,
                lag_s,
                timeline,
            }
        })
        .collect();
    // The primary's view of a standby's lag beats the standby's own.
    let peers: Vec<&Peer> = results.iter().flatten().flat_map(|p| &p.peers).collect();
    for s in out.iter_mut().filter(|s| s.role == "standby") {
        if let Some(l) = peers
            .iter()
            .find(|p| p.name == s.name)
            .and_then(|p| p.lag_bytes)
        {
            s.lag_bytes = Some(l);
        }
    }
    out
}

async fn probe(conninfo: &str, state: &LabState) -> Result<Probe, tokio_postgres::Error> {
    let mut cfg: tokio_postgres::Config = conninfo.parse()?;
    cfg.connect_timeout(CONNECT_TIMEOUT)
        .application_name("firedrill-status");
    let (client, conn) = cfg.connect(NoTls).await?;
    let task = tokio::spawn(conn);
    let r = query(&client, state).await;
    drop(client);
    task.abort();
    r
}

async fn query(c: &Client, state: &LabState) -> Result<Probe, tokio_postgres::Error> {
    let in_recovery: bool = c.query_one("SELECT pg_is_in_recovery()", &[]).await?.get(0);
    if !in_recovery {
        let tl: Option<String> = c
            .query_one(
                "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)",
                &[],
            )
            .await?
            .get(0);
        let rows = c
            .query(
                "SELECT application_name, state, sync_state, \
                 pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 \
                 FROM pg_stat_replication ORDER BY application_name",
                &[],
            )
            .await?;
        let mut parts = Vec::new();
        let mut peers = Vec::new();
        for r in rows {
            let app: Option<String> = r.get(0);
            let st: Option<String> = r.get(1);
            let sync: Option<String> = r.get(2);
            let lag: Option<f64> = r.get(3);
            let app = app.unwrap_or_default();
            parts.push(format!(
                "{app} {} {}",
                st.unwrap_or_else(|| "?".into()),
                sync.unwrap_or_else(|| "?".into())
            ));
            peers.push(Peer {
                name: app,
                lag_bytes: lag.map(|l| l.max(0.0) as u64),
            });
        }
        return Ok(Probe {
            role: "primary".into(),
            replication: Some(if parts.is_empty() {
                "no standbys".into()
            } else {
                parts.join(", ")
            }),
            lag_bytes: None,
            lag_s: None,
            timeline: tl.and_then(|t| u32::from_str_radix(&t, 16).ok()),
            peers,
        });
    }
    let wr = c
        .query_opt(
            "SELECT status, sender_port, received_tli FROM pg_stat_wal_receiver",
            &[],
        )
        .await?;
    let (replication, rx_tli) = match wr {
        Some(r) => {
            let st: Option<String> = r.get(0);
            let port: Option<i32> = r.get(1);
            let tli: Option<i32> = r.get(2);
            let from = port
                .map(
                    |p| match state.nodes.iter().find(|n| i32::from(n.port) == p) {
                        Some(n) => format!(" from {} (:{p})", n.name),
                        // A proxied lab: the sender is the link's proxy.
                        None => match state.links.iter().find(|l| i32::from(l.listen_port) == p) {
                            Some(l) => {
                                let to = state
                                    .nodes
                                    .iter()
                                    .find(|n| n.port == l.upstream_port)
                                    .map(|n| n.name.as_str())
                                    .unwrap_or("?");
                                format!(" from {to} via proxy {} (:{p})", l.name)
                            }
                            None => format!(" from :{p}"),
                        },
                    },
                )
                .unwrap_or_default();
            (format!("{}{from}", st.unwrap_or_else(|| "?".into())), tli)
        }
        None => ("not receiving".into(), None),
    };
    let r = c
        .query_one(
            "SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
             ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END::float8, \
             pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::float8, \
             (SELECT timeline_id FROM pg_control_checkpoint())",
            &[],
        )
        .await?;
    let lag_s: Option<f64> = r.get(0);
    let backlog: Option<f64> = r.get(1);
    let cp_tli: Option<i32> = r.get(2);
    Ok(Probe {
        role: "standby".into(),
        replication: Some(replication),
        lag_bytes: backlog.map(|b| b.max(0.0) as u64),
        lag_s: lag_s.map(|s| s.max(0.0)),
        timeline: rx_tli.or(cp_tli).and_then(|t| u32::try_from(t).ok()),
        peers: Vec::new(),
    })
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
