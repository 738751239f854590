//! PostgreSQL nodes as they report themselves: role, walreceiver, lag.

use firedrill_lab::{LabState, NodeStatus};
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Bounds a node whose postmaster accepts the connection but then hangs
/// (e.g. SIGSTOPped backends), so `status` always returns promptly.
const NODE_TIMEOUT: Duration = Duration::from_secs(3);

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
pub async fn pg_status(state: &LabState) -> Vec<NodeStatus> {
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
