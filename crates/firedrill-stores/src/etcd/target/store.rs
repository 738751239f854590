//! [`Target`] for etcd: the adapter the engine drives.

use super::{
    member_status, parse_nodes, prefix_end, put_once, range_keys, EtcdNode, Heartbeat,
    HeartbeatReader, Keys, LeaderWatch, WorkloadClient,
};
use async_trait::async_trait;
use firedrill_targets::http::request_once;
use firedrill_targets::{LiveRole, Target, TargetError, TargetNode};
use serde_json::json;
use std::time::Duration;

/// How often the failover watch asks every member for its leader.
const WATCH_EVERY: Duration = Duration::from_millis(50);

/// The cluster as one trial sees it.
pub struct EtcdStore {
    nodes: Vec<EtcdNode>,
    keys: Keys,
    run_id: String,
}

impl EtcdStore {
    pub fn new(nodes: &[TargetNode], run_id: &str) -> Result<EtcdStore, TargetError> {
        Ok(EtcdStore {
            nodes: parse_nodes(nodes)?,
            keys: Keys::new(run_id),
            run_id: run_id.into(),
        })
    }

    fn node(&self, name: &str) -> Result<&EtcdNode, TargetError> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| TargetError::Other(format!("no member named {name}")))
    }

    /// `first` first, then the others in order.
    fn ordered(&self, first: &str, client: bool) -> Vec<String> {
        let pick = |n: &EtcdNode| {
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
}

#[async_trait]
impl Target for EtcdStore {
    fn kind(&self) -> &'static str {
        "etcd"
    }
    fn run_id(&self) -> &str {
        &self.run_id
    }
    fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    async fn roles(&self, limit: Duration) -> Vec<(String, LiveRole)> {
        let futs = self.nodes.iter().map(|n| async move {
            let role = match member_status(&n.control, limit).await {
                Ok(s) if s.is_leader() => LiveRole::Primary,
                Ok(_) => LiveRole::Standby,
                Err(_) => LiveRole::Unreachable,
            };
            (n.name.clone(), role)
        });
        futures_util::future::join_all(futs).await
    }

    async fn setup(&self, primary: &str) -> Result<(), TargetError> {
        let n = self.node(primary)?;
        put_once(
            &n.control,
            &self.keys.heartbeat,
            b"0",
            Duration::from_secs(5),
        )
        .await
        .map(|_| ())
        .map_err(|e| super::node_err(primary, e))
    }

    /// The member has applied the heartbeat key `setup` wrote.
    async fn wait_replicated(&self, node: &str, limit: Duration) -> Result<(), TargetError> {
        let n = self.node(node)?;
        let end = tokio::time::Instant::now() + limit;
        let key = self.keys.heartbeat.as_bytes();
        let mut last = String::from("not reachable");
        while tokio::time::Instant::now() < end {
            match range_keys(
                &n.control,
                key,
                &prefix_end(key),
                true,
                true,
                Duration::from_secs(1),
            )
            .await
            {
                Ok(kvs) if !kvs.is_empty() => return Ok(()),
                Ok(_) => last = "heartbeat key not applied yet".into(),
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(super::node_err(
            node,
            format!("member did not catch up within {limit:?}: {last}"),
        ))
    }

    fn client(
        &self,
        primary: &str,
        id: u64,
        payload_bytes: usize,
        _op_timeout: Duration,
    ) -> Result<Box<dyn firedrill_targets::WorkloadClient>, TargetError> {
        let eps = self.ordered(primary, true);
        if eps.is_empty() {
            return Err(TargetError::Other("no members".into()));
        }
        Ok(Box::new(WorkloadClient::new(
            eps,
            self.keys.clone(),
            payload_bytes,
            id,
        )))
    }

    fn heartbeat(
        &self,
        primary: &str,
    ) -> Result<Option<Box<dyn firedrill_targets::Heartbeat>>, TargetError> {
        Ok(Some(Box::new(Heartbeat::new(
            self.ordered(primary, false),
            self.keys.heartbeat.clone(),
        ))))
    }

    fn heartbeat_reader(
        &self,
        node: &str,
    ) -> Result<Option<Box<dyn firedrill_targets::HeartbeatReader>>, TargetError> {
        let n = self.node(node)?;
        Ok(Some(Box::new(HeartbeatReader::new(
            n.control.clone(),
            self.keys.heartbeat.clone(),
        ))))
    }

    /// The member's Raft index: how much of the log it holds.
    async fn position(&self, node: &str) -> Option<u64> {
        let n = self.node(node).ok()?;
        member_status(&n.control, Duration::from_secs(1))
            .await
            .ok()
            .map(|s| s.raft_index)
    }

    /// A linearizable range over the run's prefix, through `node`.
    async fn audit(&self, node: &str) -> Result<Vec<u64>, TargetError> {
        let n = self.node(node)?;
        let p = self.keys.prefix.as_bytes();
        let kvs = range_keys(
            &n.control,
            p,
            &prefix_end(p),
            false,
            true,
            Duration::from_secs(30),
        )
        .await
        .map_err(|e| super::node_err(node, e))?;
        kvs.iter()
            .map(|(k, _)| {
                self.keys.seq_of(k).ok_or_else(|| {
                    super::node_err(
                        node,
                        format!(
                            "unexpected key {:?} under the run's prefix",
                            String::from_utf8_lossy(k)
                        ),
                    )
                })
            })
            .collect()
    }

    async fn cleanup(&self, node: &str) -> Result<(), TargetError> {
        let n = self.node(node)?;
        let limit = Duration::from_secs(10);
        for (k, end) in [
            (
                self.keys.prefix.as_bytes(),
                prefix_end(self.keys.prefix.as_bytes()),
            ),
            (
                self.keys.heartbeat.as_bytes(),
                prefix_end(self.keys.heartbeat.as_bytes()),
            ),
        ] {
            let body = json!({ "key": super::b64(k), "range_end": super::b64(&end) });
            match request_once(&n.control, "POST", "/v3/kv/deleterange", Some(&body), limit).await {
                Ok((200, _)) => {}
                Ok((s, v)) => return Err(super::node_err(node, super::error_of(s, &v))),
                Err(e) => return Err(super::node_err(node, e)),
            }
        }
        Ok(())
    }

    async fn server_version(&self, node: &str) -> Result<String, TargetError> {
        let n = self.node(node)?;
        match request_once(&n.control, "GET", "/version", None, Duration::from_secs(2)).await {
            Ok((200, v)) => Ok(format!(
                "etcd {}",
                v["etcdserver"].as_str().unwrap_or("(unknown)")
            )),
            Ok((s, v)) => Err(super::node_err(node, super::error_of(s, &v))),
            Err(e) => Err(super::node_err(node, e)),
        }
    }

    /// A new Raft leader, seen by polling every member's status.
    async fn failover_watch(&self) -> Option<Box<dyn firedrill_targets::FailoverWatch>> {
        let members = self
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.control.clone()))
            .collect();
        Some(Box::new(LeaderWatch::new(members, WATCH_EVERY).await))
    }
}

#[async_trait]
impl firedrill_targets::WorkloadClient for WorkloadClient {
    async fn ready(&mut self) {
        WorkloadClient::ready(self).await
    }
    async fn write(
        &mut self,
        seq: u64,
        deadline: tokio::time::Instant,
    ) -> firedrill_ledger::Outcome {
        WorkloadClient::write(self, seq, deadline).await
    }
    fn acked_position(&self) -> Option<firedrill_targets::Position> {
        WorkloadClient::acked_position(self)
    }
}

#[async_trait]
impl firedrill_targets::Heartbeat for Heartbeat {
    async fn beat(&mut self, n: i64, limit: Duration) -> bool {
        Heartbeat::beat(self, n, limit).await
    }
}

#[async_trait]
impl firedrill_targets::HeartbeatReader for HeartbeatReader {
    async fn read(&mut self, limit: Duration) -> Option<i64> {
        HeartbeatReader::read(self, limit).await
    }
}

#[async_trait]
impl firedrill_targets::FailoverWatch for LeaderWatch {
    async fn next(&mut self) -> Option<firedrill_targets::FailoverSignal> {
        LeaderWatch::next(self).await
    }
}
