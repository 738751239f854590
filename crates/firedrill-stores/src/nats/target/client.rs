//! The workload side of the NATS target: what a PubAck means for the
//! ledger, the closed-loop client that publishes one message per entry,
//! and the watch that sees a new stream leader.

use super::Names;
use crate::nats::proto::{api_error_text, Conn, Msg, NatsError};
use async_trait::async_trait;
use firedrill_ledger::Outcome;
use firedrill_targets::FailoverSignal;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

// The same backoff as the etcd clients: a client should be back within
// ~0.1 s, or the measured RTO would mostly be the client's own backoff.
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_millis(100);

/// What a PubAck (or the status in its place) means for the ledger.
pub fn outcome_of_reply(m: &Msg, stream: &str) -> (Outcome, String) {
    match m.status {
        // No responders: no server holds the stream's subject subscription
        // (only the stream leader does), so nobody stored the message.
        Some(503) => return (Outcome::Fail, "503 no responders".into()),
        Some(c) => return (Outcome::Unknown, format!("status {c} {}", m.status_text)),
        None => {}
    }
    let Some(v) = m.json() else {
        return (Outcome::Unknown, "PubAck is not JSON".into());
    };
    if let Some(e) = v.get("error") {
        // The leader refused it (before proposing, or at apply time when
        // the stream rejected it): not stored.
        return (Outcome::Fail, api_error_text(e));
    }
    match (v["stream"].as_str(), v["seq"].as_u64()) {
        (Some(s), Some(n)) if s == stream && n > 0 => (Outcome::Ok, format!("seq {n}")),
        _ => (Outcome::Unknown, format!("unexpected PubAck {v}")),
    }
}

/// One workload client: one connection to one node at a time. An error
/// that breaks the connection moves it to the next node, with a short
/// backoff; a definite refusal (503, API error) keeps the connection and
/// backs off, so a leaderless stream is not hammered.
pub struct NatsClient {
    endpoints: Vec<String>,
    current: usize,
    names: Names,
    payload: Vec<u8>,
    conn: Option<Conn>,
    backoff: Duration,
    retry_at: Option<Instant>,
    /// The last refusal or error, for debugging.
    pub last_error: String,
}

impl NatsClient {
    pub fn new(endpoints: Vec<String>, names: Names, payload_bytes: usize, salt: u64) -> Self {
        NatsClient {
            endpoints,
            current: 0,
            names,
            payload: firedrill_targets::payload(salt, payload_bytes),
            conn: None,
            backoff: BACKOFF_MIN,
            retry_at: None,
            last_error: String::new(),
        }
    }

    pub async fn ready(&mut self) {
        if let Some(at) = self.retry_at {
            tokio::time::sleep_until(at).await;
        }
    }

    fn back_off(&mut self) {
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    fn next_node(&mut self) {
        self.conn = None;
        self.current = (self.current + 1) % self.endpoints.len().max(1);
        self.back_off();
    }

    /// - `Ok`: a PubAck naming our stream and a sequence: the leader
    ///   stored it after a quorum of the stream's Raft group had it.
    /// - `Fail`: not sent (no connection; frame not written whole), 503 no
    ///   responders, or a JetStream error in the PubAck.
    /// - `Unknown`: sent, then no answer before the deadline or the
    ///   connection broke; any other reply.
    pub async fn write(&mut self, seq: u64, deadline: Instant) -> Outcome {
        if self.conn.as_ref().is_some_and(|c| c.is_broken()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            let Some(ep) = self.endpoints.get(self.current).cloned() else {
                return Outcome::Fail;
            };
            match Conn::connect(&ep, deadline).await {
                Ok(c) => self.conn = Some(c),
                Err(e) => {
                    self.last_error = e;
                    self.next_node();
                    return Outcome::Fail;
                }
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return Outcome::Fail;
        };
        let subject = self.names.entry(seq);
        let id = seq.to_string();
        let headers = [
            ("Nats-Msg-Id", id.as_str()),
            ("Nats-Expected-Stream", self.names.stream.as_str()),
        ];
        match conn
            .request(&subject, &headers, &self.payload, deadline)
            .await
        {
            Ok(m) => {
                let (o, why) = outcome_of_reply(&m, &self.names.stream);
                if o == Outcome::Ok {
                    self.backoff = BACKOFF_MIN;
                    self.retry_at = None;
                } else {
                    self.last_error = why;
                    self.back_off();
                }
                o
            }
            Err(NatsError::NotSent(e)) => {
                self.last_error = e;
                self.next_node();
                Outcome::Fail
            }
            Err(NatsError::Lost(e)) => {
                self.last_error = e;
                if conn.is_broken() {
                    self.next_node();
                } else {
                    self.back_off();
                }
                Outcome::Unknown
            }
        }
    }
}

#[async_trait]
impl firedrill_targets::WorkloadClient for NatsClient {
    async fn ready(&mut self) {
        NatsClient::ready(self).await
    }
    async fn write(&mut self, seq: u64, deadline: Instant) -> Outcome {
        NatsClient::write(self, seq, deadline).await
    }
}

/// Watches the stream's leader: STREAM.INFO every `every` over one kept
/// connection (moving to the next node when it fails); a new non-empty
/// `cluster.leader` is a failover signal.
pub struct LeaderWatch {
    nodes: Vec<(String, String)>,
    names: Names,
    current: usize,
    conn: Option<Conn>,
    /// server_name → node name, learnt from each connection's INFO.
    server_names: HashMap<String, String>,
    leader: Option<String>,
    every: Duration,
    pending: VecDeque<FailoverSignal>,
}

impl LeaderWatch {
    pub async fn new(nodes: Vec<(String, String)>, names: Names, every: Duration) -> LeaderWatch {
        let mut w = LeaderWatch {
            nodes,
            names,
            current: 0,
            conn: None,
            server_names: HashMap::new(),
            leader: None,
            every,
            pending: VecDeque::new(),
        };
        // The leader before the fault, so the first change is news.
        w.poll().await;
        w.pending.clear();
        w
    }

    async fn poll(&mut self) {
        let limit = self.every.max(Duration::from_millis(300));
        let deadline = Instant::now() + limit;
        if self.conn.as_ref().is_none_or(|c| c.is_broken()) {
            self.conn = None;
            let Some((name, addr)) = self.nodes.get(self.current).cloned() else {
                return;
            };
            match Conn::connect(&addr, deadline).await {
                Ok(c) => {
                    self.server_names.insert(c.server_name().to_string(), name);
                    self.conn = Some(c);
                }
                Err(_) => {
                    self.current = (self.current + 1) % self.nodes.len().max(1);
                    return;
                }
            }
        }
        let Some(c) = self.conn.as_mut() else { return };
        let r = c
            .js_api(&self.names.api("STREAM.INFO"), &Value::Null, deadline)
            .await;
        let v = match r {
            Ok(Ok(v)) => v,
            Ok(Err(_)) => return, // no leader to answer yet (503), or an API error
            Err(_) => {
                if c.is_broken() {
                    self.conn = None;
                    self.current = (self.current + 1) % self.nodes.len().max(1);
                }
                return;
            }
        };
        let Some(l) = v["cluster"]["leader"].as_str().filter(|l| !l.is_empty()) else {
            return;
        };
        if self.leader.as_deref() != Some(l) {
            let had = self.leader.is_some();
            self.leader = Some(l.to_string());
            if had {
                let node = self
                    .server_names
                    .get(l)
                    .cloned()
                    .unwrap_or_else(|| l.to_string());
                self.pending.push_back(FailoverSignal {
                    how: format!("stream {} leader {node}", self.names.stream),
                    new_primary: Some(node),
                });
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

#[async_trait]
impl firedrill_targets::FailoverWatch for LeaderWatch {
    async fn next(&mut self) -> Option<FailoverSignal> {
        LeaderWatch::next(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: Option<u16>, body: &str) -> Msg {
        Msg {
            subject: "_INBOX.x.1".into(),
            sid: 1,
            reply: None,
            status,
            status_text: String::new(),
            headers: vec![],
            payload: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn outcomes() {
        let o = |s, b| outcome_of_reply(&reply(s, b), "FD_r").0;
        assert_eq!(o(None, r#"{"stream":"FD_r","seq":7}"#), Outcome::Ok);
        assert_eq!(
            o(None, r#"{"stream":"FD_r","seq":7,"duplicate":true}"#),
            Outcome::Ok
        );
        assert_eq!(o(Some(503), ""), Outcome::Fail);
        assert_eq!(
            o(
                None,
                r#"{"error":{"code":503,"err_code":10077,"description":"x"}}"#
            ),
            Outcome::Fail
        );
        assert_eq!(o(None, r#"{"stream":"OTHER","seq":7}"#), Outcome::Unknown);
        assert_eq!(o(Some(408), ""), Outcome::Unknown);
        assert_eq!(o(None, "garbage"), Outcome::Unknown);
    }
}
