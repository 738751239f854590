//! The workload client, the heartbeat and its reader.
//!
//! A client finds the master the way Sentinel-aware applications do: it
//! asks a sentinel (`SENTINEL get-master-addr-by-name`), connects to that
//! address, confirms with `ROLE`, and only asks again after an error. So a
//! partitioned old master that still answers keeps its clients: the zombie
//! loss this target exists to measure.

use super::config::{connect, query};
use super::{Keys, Shared};
use crate::redis::config::RedisWrite;
use firedrill_ledger::Outcome;
use redis::aio::MultiplexedConnection;
use redis::{ErrorKind, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{timeout_at, Instant};

// Short backoff, as for PostgreSQL: the client should reach the new master
// within ~0.1 s of Sentinel naming it, or RTO would measure the client.
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_millis(100);
/// Per sentinel question; a dead sentinel must not eat the op's deadline.
const SENTINEL_LIMIT: Duration = Duration::from_millis(300);

pub struct WorkloadClient {
    shared: Arc<Shared>,
    keys: Keys,
    payload: Vec<u8>,
    conn: Option<MultiplexedConnection>,
    /// Which sentinel to ask first: the last one that answered.
    sentinel: usize,
    backoff: Duration,
    retry_at: Option<Instant>,
}

impl WorkloadClient {
    pub(super) fn new(shared: Arc<Shared>, payload_bytes: usize, salt: u64) -> Self {
        // Printable, so a list element `<seq>:<payload>` stays readable.
        let payload = firedrill_targets::payload(salt, payload_bytes)
            .into_iter()
            .map(|b| b'a' + b % 26)
            .collect();
        WorkloadClient {
            keys: Keys::new(&shared.run_id),
            shared,
            payload,
            conn: None,
            sentinel: 0,
            backoff: BACKOFF_MIN,
            retry_at: None,
        }
    }

    /// Asks the sentinels, in turn, where the master is; returns the
    /// workload's address for it.
    async fn discover(&mut self) -> Result<String, String> {
        let n = self.shared.sentinels.len();
        let mut last = String::from("no sentinels");
        for i in 0..n {
            let k = (self.sentinel + i) % n;
            let addr = &self.shared.sentinels[k];
            let mut c = match connect(addr, None, SENTINEL_LIMIT).await {
                Ok(c) => c,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            let mut cmd = redis::cmd("SENTINEL");
            cmd.arg("get-master-addr-by-name")
                .arg(&self.shared.master_name);
            match query::<Option<(String, String)>>(&mut c, &cmd, SENTINEL_LIMIT).await {
                Ok(Some((host, port))) => {
                    self.sentinel = k;
                    return Ok(self.shared.client_addr(&format!("{host}:{port}")));
                }
                Ok(None) => last = format!("sentinel {addr} does not know the master"),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn open(&mut self, deadline: Instant) -> Result<MultiplexedConnection, String> {
        let addr = self.discover().await?;
        let left = deadline.saturating_duration_since(Instant::now());
        let mut c = connect(&addr, self.shared.password.as_deref(), left).await?;
        let left = deadline.saturating_duration_since(Instant::now());
        let role: Vec<Value> = query(&mut c, &redis::cmd("ROLE"), left).await?;
        match role.first() {
            Some(Value::BulkString(b)) if b == b"master" => Ok(c),
            _ => Err(format!("{addr} is not a master (yet)")),
        }
    }

    pub async fn ready(&mut self) {
        if self.conn.is_none() {
            if let Some(at) = self.retry_at {
                tokio::time::sleep_until(at).await;
            }
        }
    }

    /// Writes ledger entry `seq`, giving up at `deadline`.
    ///
    /// - `Ok`: the master answered the write and, with `redis_wait`, WAIT
    ///   counted at least that many replicas.
    /// - `Fail`: definitely not applied: no master could be found or
    ///   connected to, or the server refused the command with an error
    ///   reply (READONLY from a demoted master, NOREPLICAS under
    ///   min-replicas-to-write, …).
    /// - `Unknown`: sent but not answered (timeout, reset), or applied on
    ///   the master but WAIT reached fewer replicas than required: such a
    ///   write may survive a failover or not.
    pub async fn write(&mut self, seq: u64, deadline: Instant) -> Outcome {
        if self.conn.is_none() {
            match timeout_at(deadline, self.open(deadline)).await {
                Ok(Ok(c)) => {
                    self.conn = Some(c);
                    self.backoff = BACKOFF_MIN;
                    self.retry_at = None;
                }
                _ => {
                    self.retry_at = Some(Instant::now() + self.backoff);
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                    return Outcome::Fail;
                }
            }
        }
        let Some(c) = self.conn.as_mut() else {
            return Outcome::Fail;
        };
        let mut cmd = match self.shared.write {
            RedisWrite::Set => {
                let mut c = redis::cmd("SET");
                c.arg(self.keys.entry(seq)).arg(&self.payload);
                c
            }
            RedisWrite::Rpush => {
                let mut el = format!("{seq}:").into_bytes();
                el.extend_from_slice(&self.payload);
                let mut c = redis::cmd("RPUSH");
                c.arg(&self.keys.list).arg(el);
                c
            }
            RedisWrite::Xadd => {
                let mut c = redis::cmd("XADD");
                c.arg(&self.keys.stream)
                    .arg("*")
                    .arg("seq")
                    .arg(seq)
                    .arg("p")
                    .arg(&self.payload);
                c
            }
        };
        let written = timeout_at(deadline, cmd.query_async::<Value>(c)).await;
        let outcome = match written {
            Ok(Ok(_)) => match self.shared.wait {
                None => Outcome::Ok,
                Some((n, t)) => {
                    cmd = redis::cmd("WAIT");
                    cmd.arg(n).arg(t.as_millis() as u64);
                    match timeout_at(deadline, cmd.query_async::<i64>(c)).await {
                        Ok(Ok(acked)) if acked >= n as i64 => Outcome::Ok,
                        Ok(Ok(_)) => Outcome::Unknown,
                        // The write itself was applied; whether it survives is open.
                        _ => {
                            self.conn = None;
                            Outcome::Unknown
                        }
                    }
                }
            },
            Ok(Err(e)) if matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension) => {
                // A refusal. Ask Sentinel again: this node may no longer be
                // (or may not be allowed to act as) the master.
                self.conn = None;
                Outcome::Fail
            }
            Ok(Err(_)) | Err(_) => {
                self.conn = None;
                Outcome::Unknown
            }
        };
        if self.conn.is_none() {
            self.retry_at = Some(Instant::now() + self.backoff);
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        }
        outcome
    }
}

/// Heartbeat writer for predicted RPO: sets this run's counter on the
/// master, over firedrill's own path.
pub struct Heartbeat {
    pub(super) addr: String,
    pub(super) password: Option<String>,
    pub(super) key: String,
    pub(super) conn: Option<MultiplexedConnection>,
}

impl Heartbeat {
    pub async fn beat(&mut self, n: i64, limit: Duration) -> bool {
        if self.conn.is_none() {
            self.conn = connect(&self.addr, self.password.as_deref(), limit)
                .await
                .ok();
        }
        let Some(c) = self.conn.as_mut() else {
            return false;
        };
        let mut cmd = redis::cmd("SET");
        cmd.arg(&self.key).arg(n);
        match query::<Value>(c, &cmd, limit).await {
            Ok(_) => true,
            Err(_) => {
                self.conn = None;
                false
            }
        }
    }
}

/// Reads the heartbeat counter on one replica (replicas serve reads).
pub struct HeartbeatReader {
    pub(super) addr: String,
    pub(super) password: Option<String>,
    pub(super) key: String,
    pub(super) conn: Option<MultiplexedConnection>,
}

impl HeartbeatReader {
    pub async fn read(&mut self, limit: Duration) -> Option<i64> {
        if self.conn.is_none() {
            self.conn = connect(&self.addr, self.password.as_deref(), limit)
                .await
                .ok();
        }
        let c = self.conn.as_mut()?;
        let mut cmd = redis::cmd("GET");
        cmd.arg(&self.key);
        match query::<Option<i64>>(c, &cmd, limit).await {
            Ok(v) => v,
            Err(_) => {
                self.conn = None;
                None
            }
        }
    }
}
