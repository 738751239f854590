//! Redis target: asynchronous replication with Sentinel failover.
//!
//! Each ledger entry is one write: `SET fd:<run_id>:<seq>` (default),
//! `RPUSH fd:<run_id>:list <seq>:<payload>` or `XADD fd:<run_id>:stream`.
//! The audit reads them back from the recovered master with SCAN, LRANGE
//! or XRANGE. The heartbeat is `fd:<run_id>:hb`, set on the master and
//! read on replicas. Sentinel's `+odown` / `+switch-master` events give the
//! `detected` phase.

mod client;
mod config;
mod watch;

pub use client::{Heartbeat, HeartbeatReader, WorkloadClient};
pub use config::{connect, info_field, parse_addr, RedisNode};

use crate::redis::config::RedisWrite;
use crate::redis::RedisOpener;
use async_trait::async_trait;
use config::query;
use firedrill_targets::{LiveRole, Target, TargetError, TargetNode};
use redis::aio::MultiplexedConnection;
use redis::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Batch size of SCAN, LRANGE and XRANGE during the audit.
const AUDIT_BATCH: usize = 10_000;

/// The key names of one run.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    pub list: String,
    pub stream: String,
    pub heartbeat: String,
}

impl Keys {
    pub fn new(run_id: &str) -> Keys {
        let prefix = format!("fd:{run_id}:");
        Keys {
            list: format!("{prefix}list"),
            stream: format!("{prefix}stream"),
            heartbeat: format!("{prefix}hb"),
            prefix,
        }
    }
    pub fn entry(&self, seq: u64) -> String {
        format!("{}{seq}", self.prefix)
    }
    /// The ledger id of an entry key; None for the run's other keys.
    pub fn seq_of(&self, key: &[u8]) -> Option<u64> {
        let rest = key.strip_prefix(self.prefix.as_bytes())?;
        std::str::from_utf8(rest).ok()?.parse().ok()
    }
}

/// What every workload client of a trial shares.
pub(crate) struct Shared {
    pub run_id: String,
    pub sentinels: Vec<String>,
    pub master_name: String,
    pub password: Option<String>,
    pub write: RedisWrite,
    pub wait: Option<(u32, Duration)>,
    pub nodes: Vec<RedisNode>,
}

impl Shared {
    /// The workload's address for the node Sentinel named by `announced`:
    /// its clients' path (the clients' proxy in a proxied lab), or the
    /// address itself for a node firedrill does not know.
    fn client_addr(&self, announced: &str) -> String {
        self.node_by_addr(announced)
            .map(|n| n.client.clone())
            .unwrap_or_else(|| announced.to_string())
    }
    fn node_by_addr(&self, addr: &str) -> Option<&RedisNode> {
        self.nodes
            .iter()
            .find(|n| n.announced == addr || n.control == addr || n.client == addr)
    }
}

/// The store as one trial sees it.
pub struct RedisStore {
    shared: Arc<Shared>,
    keys: Keys,
}

impl RedisStore {
    pub fn new(
        store: &RedisOpener,
        nodes: &[TargetNode],
        password: Option<&str>,
        run_id: &str,
    ) -> Result<RedisStore, TargetError> {
        let RedisOpener {
            sentinels,
            master_name,
            write,
            wait,
            announced,
        } = store;
        let nodes = nodes
            .iter()
            .map(|n| {
                let control = parse_addr(&n.name, &n.control)?;
                let announced = announced
                    .iter()
                    .find(|(name, _)| *name == n.name)
                    .map(|(_, a)| a.clone())
                    .unwrap_or_else(|| control.clone());
                Ok(RedisNode {
                    name: n.name.clone(),
                    client: parse_addr(&n.name, &n.client)?,
                    control,
                    announced,
                })
            })
            .collect::<Result<Vec<_>, TargetError>>()?;
        for s in sentinels {
            parse_addr("sentinel", s)?;
        }
        Ok(RedisStore {
            keys: Keys::new(run_id),
            shared: Arc::new(Shared {
                run_id: run_id.into(),
                sentinels: sentinels.clone(),
                master_name: master_name.clone(),
                password: password.map(str::to_string),
                write: *write,
                wait: *wait,
                nodes,
            }),
        })
    }

    fn node(&self, name: &str) -> Result<&RedisNode, TargetError> {
        self.shared
            .nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| TargetError::Other(format!("no node named {name}")))
    }

    async fn conn(
        &self,
        name: &str,
        limit: Duration,
    ) -> Result<MultiplexedConnection, TargetError> {
        let n = self.node(name)?;
        connect(&n.control, self.shared.password.as_deref(), limit)
            .await
            .map_err(|msg| node_err(name, msg))
    }

    async fn info(
        &self,
        name: &str,
        section: &str,
        limit: Duration,
    ) -> Result<String, TargetError> {
        let mut c = self.conn(name, limit).await?;
        let mut cmd = redis::cmd("INFO");
        cmd.arg(section);
        query(&mut c, &cmd, limit)
            .await
            .map_err(|e| node_err(name, e))
    }

    async fn audit_keys(
        &self,
        c: &mut MultiplexedConnection,
        name: &str,
    ) -> Result<Vec<u64>, TargetError> {
        let mut ids = Vec::new();
        let mut cursor: u64 = 0;
        let pattern = format!("fd:{}:*", self.shared.run_id);
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(AUDIT_BATCH);
            let (next, keys): (u64, Vec<Vec<u8>>) = query(c, &cmd, Duration::from_secs(10))
                .await
                .map_err(|e| node_err(name, e))?;
            ids.extend(keys.iter().filter_map(|k| self.keys.seq_of(k)));
            if next == 0 {
                return Ok(ids);
            }
            cursor = next;
        }
    }

    async fn audit_list(
        &self,
        c: &mut MultiplexedConnection,
        name: &str,
    ) -> Result<Vec<u64>, TargetError> {
        let mut ids = Vec::new();
        let mut start = 0usize;
        loop {
            let mut cmd = redis::cmd("LRANGE");
            cmd.arg(&self.keys.list)
                .arg(start)
                .arg(start + AUDIT_BATCH - 1);
            let items: Vec<Vec<u8>> = query(c, &cmd, Duration::from_secs(10))
                .await
                .map_err(|e| node_err(name, e))?;
            for it in &items {
                let head = it.split(|b| *b == b':').next().unwrap_or_default();
                match std::str::from_utf8(head).ok().and_then(|s| s.parse().ok()) {
                    Some(seq) => ids.push(seq),
                    // Not ours: a phantom the analysis must see.
                    None => ids.push(u64::MAX),
                }
            }
            if items.len() < AUDIT_BATCH {
                return Ok(ids);
            }
            start += AUDIT_BATCH;
        }
    }

    async fn audit_stream(
        &self,
        c: &mut MultiplexedConnection,
        name: &str,
    ) -> Result<Vec<u64>, TargetError> {
        let mut ids = Vec::new();
        let mut from = "-".to_string();
        loop {
            let mut cmd = redis::cmd("XRANGE");
            cmd.arg(&self.keys.stream)
                .arg(&from)
                .arg("+")
                .arg("COUNT")
                .arg(AUDIT_BATCH);
            let reply: redis::streams::StreamRangeReply = query(c, &cmd, Duration::from_secs(10))
                .await
                .map_err(|e| node_err(name, e))?;
            for e in &reply.ids {
                let seq = match e.map.get("seq") {
                    Some(Value::BulkString(b)) => {
                        std::str::from_utf8(b).ok().and_then(|s| s.parse().ok())
                    }
                    _ => None,
                };
                ids.push(seq.unwrap_or(u64::MAX));
            }
            match reply.ids.last() {
                Some(last) if reply.ids.len() == AUDIT_BATCH => from = format!("({}", last.id),
                _ => return Ok(ids),
            }
        }
    }
}

fn node_err(node: &str, msg: impl Into<String>) -> TargetError {
    TargetError::Node {
        node: node.into(),
        msg: msg.into(),
    }
}

#[async_trait]
impl Target for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }
    fn run_id(&self) -> &str {
        &self.shared.run_id
    }
    fn node_names(&self) -> Vec<String> {
        self.shared.nodes.iter().map(|n| n.name.clone()).collect()
    }

    async fn roles(&self, limit: Duration) -> Vec<(String, LiveRole)> {
        let futs = self.shared.nodes.iter().map(|n| async move {
            let role =
                match tokio::time::timeout(limit, self.info(&n.name, "replication", limit)).await {
                    Ok(Ok(info)) => match info_field(&info, "role") {
                        Some("master") => LiveRole::Primary,
                        Some("slave") => LiveRole::Standby,
                        _ => LiveRole::Unreachable,
                    },
                    _ => LiveRole::Unreachable,
                };
            (n.name.clone(), role)
        });
        futures_util::future::join_all(futs).await
    }

    async fn setup(&self, primary: &str) -> Result<(), TargetError> {
        let mut c = self.conn(primary, Duration::from_secs(5)).await?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(&self.keys.heartbeat).arg(0);
        query::<Value>(&mut c, &cmd, Duration::from_secs(5))
            .await
            .map_err(|e| node_err(primary, e))?;
        Ok(())
    }

    async fn wait_replicated(&self, node: &str, limit: Duration) -> Result<(), TargetError> {
        let end = Instant::now() + limit;
        let mut last = String::from("not reachable");
        while Instant::now() < end {
            match self.conn(node, Duration::from_secs(1)).await {
                Ok(mut c) => {
                    let mut cmd = redis::cmd("GET");
                    cmd.arg(&self.keys.heartbeat);
                    match query::<Option<i64>>(&mut c, &cmd, Duration::from_secs(1)).await {
                        Ok(Some(_)) => return Ok(()),
                        Ok(None) => last = "heartbeat key not replicated yet".into(),
                        Err(e) => last = e,
                    }
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(node_err(
            node,
            format!("replica did not catch up within {limit:?}: {last}"),
        ))
    }

    fn client(
        &self,
        _primary: &str,
        id: u64,
        payload_bytes: usize,
        _op_timeout: Duration,
    ) -> Result<Box<dyn firedrill_targets::WorkloadClient>, TargetError> {
        if self.shared.sentinels.is_empty() {
            return Err(TargetError::Other(
                "a Redis target needs sentinels: clients ask them for the master".into(),
            ));
        }
        Ok(Box::new(WorkloadClient::new(
            self.shared.clone(),
            payload_bytes,
            id,
        )))
    }

    fn heartbeat(
        &self,
        primary: &str,
    ) -> Result<Option<Box<dyn firedrill_targets::Heartbeat>>, TargetError> {
        Ok(Some(Box::new(Heartbeat {
            addr: self.node(primary)?.control.clone(),
            password: self.shared.password.clone(),
            key: self.keys.heartbeat.clone(),
            conn: None,
        })))
    }

    fn heartbeat_reader(
        &self,
        node: &str,
    ) -> Result<Option<Box<dyn firedrill_targets::HeartbeatReader>>, TargetError> {
        Ok(Some(Box::new(HeartbeatReader {
            addr: self.node(node)?.control.clone(),
            password: self.shared.password.clone(),
            key: self.keys.heartbeat.clone(),
            conn: None,
        })))
    }

    /// The replication offset the node holds: `master_repl_offset` on a
    /// master, `slave_repl_offset` on a replica.
    async fn position(&self, node: &str) -> Option<u64> {
        let info = self
            .info(node, "replication", Duration::from_secs(2))
            .await
            .ok()?;
        info_field(&info, "slave_repl_offset")
            .or_else(|| info_field(&info, "master_repl_offset"))
            .and_then(|v| v.parse().ok())
    }

    /// `REPLICAOF NO ONE`: what an operator does without Sentinel.
    async fn promote(&self, node: &str) -> Result<(), TargetError> {
        let mut c = self.conn(node, Duration::from_secs(2)).await?;
        let mut cmd = redis::cmd("REPLICAOF");
        cmd.arg("NO").arg("ONE");
        query::<Value>(&mut c, &cmd, Duration::from_secs(5))
            .await
            .map_err(|e| node_err(node, e))?;
        Ok(())
    }

    async fn audit(&self, node: &str) -> Result<Vec<u64>, TargetError> {
        let mut c = self.conn(node, Duration::from_secs(5)).await?;
        match self.shared.write {
            RedisWrite::Set => self.audit_keys(&mut c, node).await,
            RedisWrite::Rpush => self.audit_list(&mut c, node).await,
            RedisWrite::Xadd => self.audit_stream(&mut c, node).await,
        }
    }

    async fn cleanup(&self, node: &str) -> Result<(), TargetError> {
        let mut c = self.conn(node, Duration::from_secs(5)).await?;
        let mut keys: Vec<String> = self
            .audit_keys(&mut c, node)
            .await?
            .into_iter()
            .map(|s| self.keys.entry(s))
            .collect();
        keys.extend([
            self.keys.list.clone(),
            self.keys.stream.clone(),
            self.keys.heartbeat.clone(),
        ]);
        for chunk in keys.chunks(AUDIT_BATCH) {
            let mut cmd = redis::cmd("DEL");
            cmd.arg(chunk);
            query::<i64>(&mut c, &cmd, Duration::from_secs(10))
                .await
                .map_err(|e| node_err(node, e))?;
        }
        Ok(())
    }

    async fn server_version(&self, node: &str) -> Result<String, TargetError> {
        let info = self.info(node, "server", Duration::from_secs(2)).await?;
        info_field(&info, "redis_version")
            .map(|v| format!("Redis {v}"))
            .ok_or_else(|| node_err(node, "INFO server has no redis_version"))
    }

    async fn failover_watch(&self) -> Option<Box<dyn firedrill_targets::FailoverWatch>> {
        watch::SentinelWatch::open(self.shared.clone())
            .await
            .map(|w| Box::new(w) as Box<dyn firedrill_targets::FailoverWatch>)
    }
}

#[async_trait]
impl firedrill_targets::WorkloadClient for WorkloadClient {
    async fn ready(&mut self) {
        WorkloadClient::ready(self).await
    }
    async fn write(&mut self, seq: u64, deadline: Instant) -> firedrill_ledger::Outcome {
        WorkloadClient::write(self, seq, deadline).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let k = Keys::new("d-1-t1");
        assert_eq!(k.entry(42), "fd:d-1-t1:42");
        assert_eq!(k.seq_of(b"fd:d-1-t1:42"), Some(42));
        assert_eq!(k.seq_of(b"fd:d-1-t1:hb"), None);
        assert_eq!(k.seq_of(b"fd:d-1-t10:42"), None);
    }
}
