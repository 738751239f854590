//! etcd target (v3 API through etcd's JSON gRPC gateway, so no protoc).
//!
//! Each ledger entry is a put of its own key under the run's prefix; the
//! audit reads the prefix back with a linearizable range (keys only) from
//! the recovered cluster. The leader is the primary and followers are
//! standbys: a follower forwards a put to the leader, so clients only have
//! to find a member that answers.

mod config;
mod store;

pub use config::{parse_nodes, prefix_end, EtcdNode, Keys};
pub use store::EtcdStore;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use firedrill_ledger::Outcome;
use firedrill_targets::http::{request_once, HttpConn, HttpError};
use firedrill_targets::{FailoverSignal, Position, TargetError};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

fn b64(s: &[u8]) -> String {
    B64.encode(s)
}

fn unb64(v: &Value) -> Option<Vec<u8>> {
    B64.decode(v.as_str()?).ok()
}

/// etcd writes 64-bit ids and counters as JSON strings.
fn u64_of(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

fn node_err(node: &str, msg: impl std::fmt::Display) -> TargetError {
    TargetError::Node {
        node: node.into(),
        msg: msg.to_string(),
    }
}

/// The error message of a non-200 gateway answer.
fn error_of(status: u16, v: &Value) -> String {
    v.get("error")
        .or_else(|| v.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("HTTP {status}"))
}

/// Errors etcd returns before a proposal enters the Raft log: the write
/// was definitely not applied. Every other error (timeouts, leader
/// changes, lost connections) leaves it unknown.
fn rejected_before_proposal(msg: &str) -> bool {
    [
        "too many requests",
        "no leader",
        "raft proposal dropped",
        "not capable",
        "request is too large",
        "key is not provided",
    ]
    .iter()
    .any(|m| msg.contains(m))
}

/// One member's `/v3/maintenance/status`.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberStatus {
    pub member_id: u64,
    /// 0 when the member knows no leader.
    pub leader: u64,
    pub raft_term: u64,
    pub raft_index: u64,
    pub version: String,
}

impl MemberStatus {
    /// The gateway's answer. etcd omits zero fields, so a missing leader is
    /// "none known"; a running member's raft index is never 0, so a
    /// missing one is a malformed answer, not a zero that fakes a gap.
    pub fn parse(v: &Value) -> Option<MemberStatus> {
        Some(MemberStatus {
            member_id: u64_of(&v["header"]["member_id"])?,
            leader: u64_of(&v["leader"]).unwrap_or(0),
            raft_term: u64_of(&v["raftTerm"])
                .or_else(|| u64_of(&v["header"]["raft_term"]))
                .unwrap_or(0),
            raft_index: u64_of(&v["raftIndex"])?,
            version: v["version"].as_str().unwrap_or_default().to_string(),
        })
    }

    pub fn is_leader(&self) -> bool {
        self.leader != 0 && self.leader == self.member_id
    }
}

/// Asks one member for its status.
pub async fn member_status(authority: &str, limit: Duration) -> Result<MemberStatus, String> {
    match request_once(
        authority,
        "POST",
        "/v3/maintenance/status",
        Some(&json!({})),
        limit,
    )
    .await
    {
        Ok((200, v)) => {
            MemberStatus::parse(&v).ok_or_else(|| format!("unexpected status answer: {v}"))
        }
        Ok((s, v)) => Err(error_of(s, &v)),
        Err(e) => Err(e.to_string()),
    }
}

/// A put of an already base64-encoded value; on success, where the
/// cluster put it: its response header's (cluster id, revision).
async fn put(
    conn: &mut HttpConn,
    key: &str,
    value_b64: &str,
    deadline: Instant,
) -> Result<Position, (Outcome, String)> {
    let body = json!({ "key": b64(key.as_bytes()), "value": value_b64 });
    match conn
        .request("POST", "/v3/kv/put", Some(&body), deadline)
        .await
    {
        Ok((200, v)) => match ack_position(&v) {
            Some(p) => Ok(p),
            None => Err((Outcome::Unknown, format!("200 without a revision: {v}"))),
        },
        Ok((s, v)) => {
            let msg = error_of(s, &v);
            let o = if rejected_before_proposal(&msg) {
                Outcome::Fail
            } else {
                Outcome::Unknown
            };
            Err((o, msg))
        }
        Err(HttpError::NotSent(m)) => Err((Outcome::Fail, m)),
        Err(HttpError::Lost(m)) => Err((Outcome::Unknown, m)),
    }
}

/// A put's place in the store's order: a restored cluster reuses the
/// revisions after its snapshot, so the cluster id tells the histories
/// apart.
fn ack_position(v: &Value) -> Option<Position> {
    Some(Position {
        epoch: u64_of(&v["header"]["cluster_id"])?,
        index: u64_of(&v["header"]["revision"])?,
    })
}

/// Every key in `[key, range_end)`, paged. `serializable` reads the
/// member's local copy; otherwise the read is linearizable (the leader
/// confirms it is still the leader first).
pub async fn range_keys(
    authority: &str,
    key: &[u8],
    range_end: &[u8],
    serializable: bool,
    keys_only: bool,
    limit: Duration,
) -> Result<Vec<(Vec<u8>, Option<Vec<u8>>)>, String> {
    const PAGE: u64 = 10_000;
    let deadline = Instant::now() + limit;
    let mut conn = HttpConn::connect(authority, limit).await?;
    let mut from = key.to_vec();
    let mut out = Vec::new();
    loop {
        let body = json!({
            "key": b64(&from),
            "range_end": b64(range_end),
            "limit": PAGE,
            "keys_only": keys_only,
            "serializable": serializable,
        });
        let (status, v) = conn
            .request("POST", "/v3/kv/range", Some(&body), deadline)
            .await
            .map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(error_of(status, &v));
        }
        let kvs = v["kvs"].as_array().cloned().unwrap_or_default();
        for kv in &kvs {
            let k = unb64(&kv["key"]).ok_or("a key is not base64")?;
            out.push((k, unb64(&kv["value"])));
        }
        if v["more"].as_bool() != Some(true) || kvs.is_empty() {
            return Ok(out);
        }
        // Next page: just after the last key.
        from = out.last().map(|(k, _)| k.clone()).unwrap_or_default();
        from.push(0);
    }
}

/// A put on one member over a fresh connection (setup, cleanup).
async fn put_once(
    authority: &str,
    key: &str,
    value: &[u8],
    limit: Duration,
) -> Result<Position, String> {
    let deadline = Instant::now() + limit;
    let mut c = HttpConn::connect(authority, limit).await?;
    put(&mut c, key, &b64(value), deadline)
        .await
        .map_err(|(_, m)| m)
}

// Short backoff: the client should reach a live member within ~0.1 s, or
// the measured RTO would mostly be the client's own backoff.
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_millis(100);

/// One workload client: one connection to one member at a time; on an
/// error or timeout it moves to the next member, with a short backoff.
pub struct WorkloadClient {
    endpoints: Vec<String>,
    current: usize,
    keys: Keys,
    /// The payload, encoded once: every write sends the same bytes.
    payload_b64: String,
    conn: Option<HttpConn>,
    backoff: Duration,
    retry_at: Option<Instant>,
    /// Where the last acknowledged put went.
    acked: Option<Position>,
}

impl WorkloadClient {
    /// `endpoints` in the order to try them (the leader first).
    pub fn new(endpoints: Vec<String>, keys: Keys, payload_bytes: usize, salt: u64) -> Self {
        let payload = firedrill_targets::payload(salt, payload_bytes);
        WorkloadClient {
            endpoints,
            current: 0,
            keys,
            payload_b64: b64(&payload),
            conn: None,
            backoff: BACKOFF_MIN,
            retry_at: None,
            acked: None,
        }
    }

    /// The (cluster id, revision) of the put `write` last acknowledged.
    pub fn acked_position(&self) -> Option<Position> {
        self.acked
    }

    /// Waits out the backoff before an operation is invoked, so a client
    /// that is backing off issues nothing (its buckets stay empty).
    pub async fn ready(&mut self) {
        if self.conn.is_none() {
            if let Some(at) = self.retry_at {
                tokio::time::sleep_until(at).await;
            }
        }
    }

    fn next_member(&mut self) {
        self.conn = None;
        self.current = (self.current + 1) % self.endpoints.len().max(1);
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// - `Ok`: a 200 with a header revision: committed by a quorum.
    /// - `Fail`: nothing was sent (no connection), or etcd rejected it
    ///   before proposing it to Raft.
    /// - `Unknown`: sent, but no answer (timeout, reset), or an error that
    ///   may follow a proposal (timeout, leader changed).
    pub async fn write(&mut self, seq: u64, deadline: Instant) -> Outcome {
        self.acked = None;
        if self.conn.as_ref().is_some_and(|c| c.is_closed()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            let Some(ep) = self.endpoints.get(self.current).cloned() else {
                return Outcome::Fail;
            };
            let left = deadline.saturating_duration_since(Instant::now());
            match HttpConn::connect(&ep, left).await {
                Ok(c) => self.conn = Some(c),
                Err(_) => {
                    self.next_member();
                    return Outcome::Fail;
                }
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return Outcome::Fail;
        };
        let key = self.keys.entry(seq);
        match put(conn, &key, &self.payload_b64, deadline).await {
            Ok(p) => {
                self.backoff = BACKOFF_MIN;
                self.retry_at = None;
                self.acked = Some(p);
                Outcome::Ok
            }
            Err((outcome, _)) => {
                self.next_member();
                outcome
            }
        }
    }
}

/// Heartbeat writer for predicted RPO: puts the counter through any member.
pub struct Heartbeat {
    endpoints: Vec<String>,
    current: usize,
    key: String,
    conn: Option<HttpConn>,
}

impl Heartbeat {
    pub fn new(endpoints: Vec<String>, key: String) -> Self {
        Heartbeat {
            endpoints,
            current: 0,
            key,
            conn: None,
        }
    }

    pub async fn beat(&mut self, n: i64, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        if self.conn.as_ref().is_none_or(|c| c.is_closed()) {
            let Some(ep) = self.endpoints.get(self.current) else {
                return false;
            };
            self.conn = HttpConn::connect(ep, limit).await.ok();
        }
        let Some(c) = self.conn.as_mut() else {
            self.current = (self.current + 1) % self.endpoints.len().max(1);
            return false;
        };
        match put(c, &self.key, &b64(n.to_string().as_bytes()), deadline).await {
            Ok(_) => true,
            Err(_) => {
                self.conn = None;
                self.current = (self.current + 1) % self.endpoints.len().max(1);
                false
            }
        }
    }
}

/// Reads the heartbeat counter from one member's local copy (a
/// serializable read): what that member has applied.
pub struct HeartbeatReader {
    authority: String,
    key: String,
}

impl HeartbeatReader {
    pub fn new(authority: String, key: String) -> Self {
        HeartbeatReader { authority, key }
    }

    pub async fn read(&mut self, limit: Duration) -> Option<i64> {
        let end = prefix_end(self.key.as_bytes());
        let kvs = range_keys(
            &self.authority,
            self.key.as_bytes(),
            &end,
            true,
            false,
            limit,
        )
        .await
        .ok()?;
        let v = kvs.into_iter().find(|(k, _)| k == self.key.as_bytes())?.1?;
        std::str::from_utf8(&v).ok()?.parse().ok()
    }
}

/// Watches for a new Raft leader: polls every member's status every
/// `every`; a higher term with a known leader other than the last one is a
/// leader change.
pub struct LeaderWatch {
    members: Vec<(String, String)>,
    names: HashMap<u64, String>,
    leader: Option<u64>,
    term: u64,
    every: Duration,
    pending: std::collections::VecDeque<FailoverSignal>,
}

impl LeaderWatch {
    pub async fn new(members: Vec<(String, String)>, every: Duration) -> LeaderWatch {
        let mut w = LeaderWatch {
            members,
            names: HashMap::new(),
            leader: None,
            term: 0,
            every,
            pending: Default::default(),
        };
        // The leader before the fault, so the first change is news.
        w.poll().await;
        w.pending.clear();
        w
    }

    async fn poll(&mut self) {
        let limit = self.every.max(Duration::from_millis(200));
        let futs = self
            .members
            .iter()
            .map(|(name, a)| async move { (name.clone(), member_status(a, limit).await.ok()) });
        let all = futures_util::future::join_all(futs).await;
        for (name, st) in &all {
            if let Some(st) = st {
                self.names.insert(st.member_id, name.clone());
            }
        }
        // The newest term's leader among the answers.
        let best = all
            .iter()
            .filter_map(|(_, s)| s.as_ref())
            .filter(|s| s.leader != 0)
            .max_by_key(|s| s.raft_term);
        if let Some(s) = best {
            if s.raft_term >= self.term && Some(s.leader) != self.leader {
                let had = self.leader.is_some();
                self.leader = Some(s.leader);
                self.term = s.raft_term;
                if had {
                    let name = self.names.get(&s.leader).cloned();
                    self.pending.push_back(FailoverSignal {
                        how: format!(
                            "raft leader {} (term {})",
                            name.as_deref().unwrap_or("unknown member"),
                            s.raft_term
                        ),
                        new_primary: name,
                    });
                }
            } else if s.raft_term > self.term {
                self.term = s.raft_term;
            }
        }
    }

    pub async fn next(&mut self) -> Option<FailoverSignal> {
        loop {
            if let Some(s) = self.pending.pop_front() {
                return Some(s);
            }
            tokio::time::sleep(self.every).await;
            self.poll().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MemberStatus;

    fn parse(body: &str) -> Option<MemberStatus> {
        MemberStatus::parse(&serde_json::from_str(body).ok()?)
    }

    #[test]
    fn a_put_is_placed_by_cluster_and_revision() {
        // The gateway's answer to a put (etcd 3.4.23): 64-bit ids as strings.
        let v: serde_json::Value = serde_json::from_str(
            r#"{"header":{"cluster_id":"1676682598614605300","member_id":"1312414010156986581","revision":"7","raft_term":"2"}}"#,
        )
        .unwrap();
        assert_eq!(
            super::ack_position(&v),
            Some(super::Position {
                epoch: 1676682598614605300,
                index: 7
            })
        );
        assert_eq!(super::ack_position(&serde_json::json!({"header": {}})), None);
    }

    #[test]
    fn parses_gateway_status() {
        let body = r#"{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"1","raft_term":"2"},"version":"3.4.23","dbSize":"20480","leader":"10276657743932975437","raftIndex":"4","raftTerm":"2","raftAppliedIndex":"4","dbSizeInUse":"16384"}"#;
        let s = parse(body).unwrap();
        assert_eq!(s.member_id, 10276657743932975437);
        assert_eq!(s.leader, s.member_id);
        assert_eq!(s.raft_index, 4);
        assert!(parse("[]").is_none());
        // No leader known: etcd omits the zero field.
        let none = parse(r#"{"header":{"member_id":"7"},"raftIndex":"9"}"#).unwrap();
        assert_eq!((none.leader, none.raft_index), (0, 9));
        // No raft index: an error, not a zero that fakes a gap.
        assert!(parse(r#"{"header":{"member_id":"7"},"leader":"7"}"#).is_none());
        assert!(parse(r#"{"header":{},"raftIndex":"9"}"#).is_none());
    }
}
