//! NATS JetStream target: one R3 file stream per run, one message per
//! ledger entry, acknowledged by the stream leader's PubAck (sent after the
//! Raft group committed the message to a quorum).
//!
//! - Stream `FD_<run>`, subjects `fd.<run>.>`; entry `seq` is published on
//!   `fd.<run>.<seq>` with headers `Nats-Msg-Id: <seq>` (deduplication if a
//!   message were ever retried) and `Nats-Expected-Stream: FD_<run>`.
//! - Roles: the stream leader (STREAM.INFO `cluster.leader`) is the
//!   primary, every other reachable node a standby. Before the stream
//!   exists, the JetStream meta leader (monitor `/jsz`) stands in.
//! - Audit: every message by sequence with `STREAM.MSG.GET`, pipelined;
//!   the leader answers it, so it reads the stream as the cluster serves
//!   it, whichever node the request enters through.

mod client;

pub use client::{outcome_of_reply, LeaderWatch, NatsClient};

use crate::nats::proto::{api_error_text, err_code, Conn};
use async_trait::async_trait;
use firedrill_targets::{LiveRole, Target, TargetError, TargetNode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// How often the failover watch asks for the stream's leader.
pub const WATCH_EVERY: Duration = Duration::from_millis(100);

/// JetStream error codes (`err_code`) this target handles by name.
pub mod codes {
    /// JetStream system temporarily unavailable (no meta leader yet).
    pub const JS_UNAVAILABLE: u64 = 10008;
    /// stream name already in use with a different configuration.
    pub const STREAM_NAME_IN_USE: u64 = 10058;
    pub const STREAM_NOT_FOUND: u64 = 10059;
    /// no message found (a deleted sequence).
    pub const NO_MESSAGE: u64 = 10037;
}

fn node_err(node: &str, msg: impl std::fmt::Display) -> TargetError {
    TargetError::Node {
        node: node.into(),
        msg: msg.to_string(),
    }
}

/// Stream and subjects of one run. The run id is cut to the characters a
/// stream name and a subject token both accept.
#[derive(Debug, Clone)]
pub struct Names {
    pub stream: String,
    pub prefix: String,
}

impl Names {
    pub fn new(run_id: &str) -> Names {
        let clean: String = run_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Names {
            stream: format!("FD_{clean}"),
            prefix: format!("fd.{clean}"),
        }
    }
    pub fn entry(&self, seq: u64) -> String {
        format!("{}.{seq}", self.prefix)
    }
    pub fn seq_of(&self, subject: &str) -> Option<u64> {
        subject
            .strip_prefix(&self.prefix)?
            .strip_prefix('.')?
            .parse()
            .ok()
    }
    pub fn api(&self, op: &str) -> String {
        format!("$JS.API.{op}.{}", self.stream)
    }
}

/// One node as this target addresses it.
#[derive(Debug, Clone)]
pub struct NodeAddr {
    pub name: String,
    /// `host:port` of the client port, for firedrill's own requests.
    pub control: String,
    /// The workload's path (`host:port`).
    pub client: String,
    /// `host:port` of the monitor port, if known (meta leader before setup).
    pub monitor: Option<String>,
}

fn hostport(s: &str) -> Result<String, String> {
    let r = s
        .strip_prefix("nats://")
        .unwrap_or(s)
        .trim_end_matches('/')
        .to_string();
    match r.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => Ok(r),
        _ => Err(format!("{s}: expected nats://HOST:PORT")),
    }
}

/// The cluster as one trial sees it.
pub struct NatsStore {
    nodes: Vec<NodeAddr>,
    names: Names,
    run_id: String,
    replicas: usize,
}

/// What one node said about the stream.
enum Seen {
    Unreachable(String),
    /// Reachable (its server_name), and STREAM.INFO's answer through it.
    Answer(String, Result<Value, String>),
}

async fn stream_info_via(addr: &str, names: &Names, deadline: Instant) -> Seen {
    let mut c = match Conn::connect(addr, deadline).await {
        Ok(c) => c,
        Err(e) => return Seen::Unreachable(e),
    };
    let name = c.server_name().to_string();
    let r = match c
        .js_api(&names.api("STREAM.INFO"), &Value::Null, deadline)
        .await
    {
        Ok(r) => r,
        Err(e) => Err(e.to_string()),
    };
    Seen::Answer(name, r)
}

/// The meta leader named by a node's `/jsz`.
async fn meta_leader(monitor: &str, limit: Duration) -> Option<String> {
    match firedrill_targets::http::request_once(monitor, "GET", "/jsz", None, limit).await {
        Ok((200, v)) => v["meta_cluster"]["leader"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        _ => None,
    }
}

impl NatsStore {
    /// `monitors`: (node name, `http://host:port` of its monitor port);
    /// `replicas`: the stream's, default as many as nodes (at most 5).
    pub fn new(
        nodes: &[TargetNode],
        monitors: &[(String, String)],
        replicas: Option<usize>,
        run_id: &str,
    ) -> Result<NatsStore, TargetError> {
        let nodes: Vec<NodeAddr> = nodes
            .iter()
            .map(|n| {
                let bad = |msg| TargetError::Config {
                    node: n.name.clone(),
                    msg,
                };
                let monitor = monitors
                    .iter()
                    .find(|(m, _)| *m == n.name)
                    .map(|(_, u)| firedrill_targets::http::authority(u).map_err(bad))
                    .transpose()?;
                Ok(NodeAddr {
                    name: n.name.clone(),
                    control: hostport(&n.control).map_err(bad)?,
                    client: hostport(&n.client).map_err(bad)?,
                    monitor,
                })
            })
            .collect::<Result<_, TargetError>>()?;
        if nodes.is_empty() {
            return Err(TargetError::Other("no nodes".into()));
        }
        Ok(NatsStore {
            replicas: replicas.unwrap_or(nodes.len()).clamp(1, 5),
            nodes,
            names: Names::new(run_id),
            run_id: run_id.into(),
        })
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    fn node(&self, name: &str) -> Result<&NodeAddr, TargetError> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| TargetError::Other(format!("no node named {name}")))
    }

    /// `first` first, then the others in order.
    fn ordered(&self, first: &str, client: bool) -> Vec<String> {
        let pick = |n: &NodeAddr| {
            if client {
                n.client.clone()
            } else {
                n.control.clone()
            }
        };
        let mut v: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.name == first)
            .map(pick)
            .collect();
        v.extend(self.nodes.iter().filter(|n| n.name != first).map(pick));
        v
    }

    /// A JetStream API request through `node`, on a fresh connection.
    async fn api_once(
        &self,
        node: &str,
        subject: &str,
        body: &Value,
        limit: Duration,
    ) -> Result<Result<Value, String>, String> {
        let n = self.node(node).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + limit;
        let mut c = Conn::connect(&n.control, deadline).await?;
        c.js_api(subject, body, deadline)
            .await
            .map_err(|e| e.to_string())
    }

    /// The stream's config for this run.
    pub fn stream_config(&self) -> Value {
        json!({
            "name": self.names.stream,
            "subjects": [format!("{}.>", self.names.prefix)],
            "retention": "limits",
            "storage": "file",
            "num_replicas": self.replicas,
            "discard": "old",
            "max_msgs": -1, "max_bytes": -1, "max_age": 0,
            "duplicate_window": 120_000_000_000u64,
        })
    }

    /// The stream's leader now, asked through every node.
    pub async fn stream_leader(&self, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        let futs = self
            .nodes
            .iter()
            .map(|n| stream_info_via(&n.control, &self.names, deadline));
        for s in futures_util::future::join_all(futs).await {
            if let Seen::Answer(_, Ok(v)) = s {
                if let Some(l) = v["cluster"]["leader"].as_str().filter(|l| !l.is_empty()) {
                    return Some(l.to_string());
                }
            }
        }
        None
    }
}

#[async_trait]
impl Target for NatsStore {
    fn kind(&self) -> &'static str {
        "nats"
    }
    fn run_id(&self) -> &str {
        &self.run_id
    }
    fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    async fn roles(&self, limit: Duration) -> Vec<(String, LiveRole)> {
        let deadline = Instant::now() + limit;
        let futs = self
            .nodes
            .iter()
            .map(|n| stream_info_via(&n.control, &self.names, deadline));
        let seen = futures_util::future::join_all(futs).await;
        let mut leader: Option<String> = None;
        let mut no_stream = false;
        for s in &seen {
            match s {
                Seen::Answer(_, Ok(v)) => {
                    if let Some(l) = v["cluster"]["leader"].as_str().filter(|l| !l.is_empty()) {
                        leader.get_or_insert_with(|| l.to_string());
                    }
                }
                Seen::Answer(_, Err(e)) if err_code(e) == Some(codes::STREAM_NOT_FOUND) => {
                    no_stream = true
                }
                _ => {}
            }
        }
        if leader.is_none() && no_stream {
            // Before setup: the meta leader, which places the stream.
            let left = deadline.saturating_duration_since(Instant::now());
            for (n, s) in self.nodes.iter().zip(&seen) {
                if let (Some(m), Seen::Answer(..)) = (&n.monitor, s) {
                    if let Some(l) = meta_leader(m, left.max(Duration::from_millis(200))).await {
                        leader = Some(l);
                        break;
                    }
                }
            }
        }
        self.nodes
            .iter()
            .zip(seen)
            .map(|(n, s)| {
                let role = match s {
                    Seen::Unreachable(_) => LiveRole::Unreachable,
                    Seen::Answer(server, _) => {
                        if leader.as_deref() == Some(server.as_str())
                            || (server.is_empty() && leader.as_deref() == Some(n.name.as_str()))
                        {
                            LiveRole::Primary
                        } else {
                            LiveRole::Standby
                        }
                    }
                };
                (n.name.clone(), role)
            })
            .collect()
    }

    /// Creates the stream through `primary` (retrying while JetStream is
    /// still electing its meta leader) and waits until it has a leader.
    async fn setup(&self, primary: &str) -> Result<(), TargetError> {
        let end = Instant::now() + Duration::from_secs(30);
        let cfg = self.stream_config();
        let mut last;
        loop {
            match self
                .api_once(
                    primary,
                    &self.names.api("STREAM.CREATE"),
                    &cfg,
                    Duration::from_secs(5),
                )
                .await
            {
                Ok(Ok(_)) => break,
                Ok(Err(e)) if err_code(&e) == Some(codes::STREAM_NAME_IN_USE) => {
                    return Err(node_err(
                        primary,
                        format!(
                            "stream {} exists with another config: {e}",
                            self.names.stream
                        ),
                    ))
                }
                Ok(Err(e)) => last = e,
                Err(e) => last = e,
            }
            if Instant::now() >= end {
                return Err(node_err(
                    primary,
                    format!("cannot create the stream: {last}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        while Instant::now() < end {
            if self.stream_leader(Duration::from_secs(1)).await.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(node_err(
            primary,
            "stream created but no leader within 30 s",
        ))
    }

    /// `node` is the stream's leader or a current replica.
    async fn wait_replicated(&self, node: &str, limit: Duration) -> Result<(), TargetError> {
        let n = self.node(node)?;
        let end = Instant::now() + limit;
        let mut last = String::from("not reachable");
        while Instant::now() < end {
            match stream_info_via(
                &n.control,
                &self.names,
                Instant::now() + Duration::from_secs(1),
            )
            .await
            {
                Seen::Answer(server, Ok(v)) => {
                    let c = &v["cluster"];
                    let current = c["leader"].as_str() == Some(server.as_str())
                        || c["replicas"].as_array().is_some_and(|rs| {
                            rs.iter().any(|r| {
                                r["name"].as_str() == Some(server.as_str())
                                    && r["current"].as_bool() == Some(true)
                            })
                        });
                    if current {
                        return Ok(());
                    }
                    last = format!("not a current replica yet: {c}");
                }
                Seen::Answer(_, Err(e)) => last = e,
                Seen::Unreachable(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(node_err(
            node,
            format!("replica not current within {limit:?}: {last}"),
        ))
    }

    fn client(
        &self,
        primary: &str,
        id: u64,
        payload_bytes: usize,
        _op_timeout: Duration,
    ) -> Result<Box<dyn firedrill_targets::WorkloadClient>, TargetError> {
        Ok(Box::new(NatsClient::new(
            self.ordered(primary, true),
            self.names.clone(),
            payload_bytes,
            id,
        )))
    }

    fn heartbeat(
        &self,
        _primary: &str,
    ) -> Result<Option<Box<dyn firedrill_targets::Heartbeat>>, TargetError> {
        Ok(None)
    }
    fn heartbeat_reader(
        &self,
        _node: &str,
    ) -> Result<Option<Box<dyn firedrill_targets::HeartbeatReader>>, TargetError> {
        Ok(None)
    }

    async fn audit(&self, node: &str) -> Result<Vec<u64>, TargetError> {
        let n = self.node(node)?;
        audit_stream(&n.control, &self.names, Duration::from_secs(60))
            .await
            .map_err(|e| node_err(node, e))
    }

    /// STREAM.DELETE goes through the meta leader: right after a crash
    /// that also took the meta leader, it times out until the meta group
    /// has elected a new one, so it is retried for up to 30 s.
    async fn cleanup(&self, node: &str) -> Result<(), TargetError> {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let last = match self
                .api_once(
                    node,
                    &self.names.api("STREAM.DELETE"),
                    &Value::Null,
                    Duration::from_secs(5),
                )
                .await
            {
                Ok(Ok(v)) if v["success"].as_bool() == Some(true) => return Ok(()),
                Ok(Ok(v)) => return Err(node_err(node, format!("unexpected answer: {v}"))),
                Ok(Err(e)) if err_code(&e) == Some(codes::STREAM_NOT_FOUND) => return Ok(()),
                Ok(Err(e))
                    if e.starts_with("status 503")
                        || err_code(&e) == Some(codes::JS_UNAVAILABLE) =>
                {
                    e
                }
                Ok(Err(e)) => return Err(node_err(node, e)),
                Err(e) => e,
            };
            if Instant::now() >= end {
                return Err(node_err(
                    node,
                    format!("stream not deleted within 30 s: {last}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn server_version(&self, node: &str) -> Result<String, TargetError> {
        let n = self.node(node)?;
        let c = Conn::connect(&n.control, Instant::now() + Duration::from_secs(2))
            .await
            .map_err(|e| node_err(node, e))?;
        Ok(format!(
            "NATS {}",
            c.info["version"].as_str().unwrap_or("(unknown)")
        ))
    }

    async fn failover_watch(&self) -> Option<Box<dyn firedrill_targets::FailoverWatch>> {
        let nodes = self
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.control.clone()))
            .collect();
        Some(Box::new(
            LeaderWatch::new(nodes, self.names.clone(), WATCH_EVERY).await,
        ))
    }
}

/// Reads every message of the stream through `addr`: STREAM.INFO for the
/// sequence range, then STREAM.MSG.GET for each sequence, up to `WINDOW`
/// requests in flight on one connection. Deleted sequences (404/10037)
/// are skipped; any other error fails the audit.
pub async fn audit_stream(addr: &str, names: &Names, limit: Duration) -> Result<Vec<u64>, String> {
    const WINDOW: usize = 256;
    let deadline = Instant::now() + limit;
    let mut c = Conn::connect(addr, deadline).await?;
    let info = c
        .js_api(&names.api("STREAM.INFO"), &Value::Null, deadline)
        .await
        .map_err(|e| e.to_string())??;
    let st = &info["state"];
    let (first, last) = (
        st["first_seq"].as_u64().unwrap_or(0),
        st["last_seq"].as_u64().unwrap_or(0),
    );
    let mut out = Vec::with_capacity(st["messages"].as_u64().unwrap_or(0) as usize);
    if last == 0 || first > last {
        return Ok(out);
    }
    let get = names.api("STREAM.MSG.GET");
    let mut next = first;
    let mut pending: HashMap<String, u64> = HashMap::new();
    while next <= last || !pending.is_empty() {
        while next <= last && pending.len() < WINDOW {
            let reply = c.reply_subject();
            let body = json!({ "seq": next }).to_string();
            c.publish(&get, Some(&reply), &[], body.as_bytes(), deadline)
                .await
                .map_err(|e| e.to_string())?;
            pending.insert(reply, next);
            next += 1;
        }
        let m = c.next_msg(deadline).await.map_err(|e| e.to_string())?;
        let Some(sseq) = pending.remove(&m.subject) else {
            continue;
        };
        if let Some(code) = m.status {
            return Err(format!("MSG.GET {sseq}: status {code} {}", m.status_text));
        }
        let v = m
            .json()
            .ok_or_else(|| format!("MSG.GET {sseq}: not JSON"))?;
        if let Some(e) = v.get("error") {
            if e["err_code"].as_u64() == Some(codes::NO_MESSAGE) {
                continue;
            }
            return Err(format!("MSG.GET {sseq}: {}", api_error_text(e)));
        }
        let subject = v["message"]["subject"].as_str().unwrap_or_default();
        let seq = names
            .seq_of(subject)
            .ok_or_else(|| format!("MSG.GET {sseq}: unexpected subject {subject:?}"))?;
        out.push(seq);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let n = Names::new("r1.x y");
        assert_eq!(n.stream, "FD_r1_x_y");
        assert_eq!(n.entry(42), "fd.r1_x_y.42");
        assert_eq!(n.seq_of("fd.r1_x_y.42"), Some(42));
        assert_eq!(n.seq_of("fd.r1_x_y2.42"), None);
        assert_eq!(n.api("STREAM.INFO"), "$JS.API.STREAM.INFO.FD_r1_x_y");
    }
}
