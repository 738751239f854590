//! etcd as `firedrill watch` sees it (`kind = "etcd"`: members by the
//! `addr` of their client URL) and its probe: `POST /v3/maintenance/status` on every member (the JSON gateway).
//! A write etcd acknowledged is on a quorum, so losing a minority loses
//! nothing: the `raft` exposure is 0 while a leader is seen by a quorum of
//! the declared members, and the probe fails (the exposure grows from its
//! last value, a breach) once no quorum answers with a leader. The raft
//! index gap per member is exported beside it.

use crate::watch::{addr_store, AddrNode};
use async_trait::async_trait;
use firedrill_spec::Diagnostic;
use firedrill_watch::board::Extras;
use firedrill_watch::config::Loaded;
use firedrill_watch::plan::{Settings, Source, WatchedDomain};
use firedrill_watch::{labels, Probe, Round, SourceResult, WatchKind, WatchStore};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// `kind = "etcd"` in an objectives file.
pub struct EtcdWatch;

impl WatchKind for EtcdWatch {
    fn kind(&self) -> &'static str {
        "etcd"
    }
    fn sources(&self) -> &'static [Source] {
        &[Source::Raft]
    }
    fn store_keys(&self) -> &'static [&'static str] {
        &[]
    }
    fn node_keys(&self) -> &'static [&'static str] {
        &["addr"]
    }
    fn plan(
        &self,
        file: &Loaded,
        domain: usize,
        out: &mut Vec<Diagnostic>,
    ) -> Option<Arc<dyn WatchStore>> {
        // `user` is accepted and unused, as it always was.
        let (nodes, _user) = addr_store(file, domain, out)?;
        Some(Arc::new(EtcdWatchStore { nodes }))
    }
}

/// A validated etcd store.
#[derive(Debug, Clone)]
pub struct EtcdWatchStore {
    pub nodes: Vec<AddrNode>,
}

impl WatchStore for EtcdWatchStore {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn prober(&self, dom: &WatchedDomain, settings: &Settings) -> Box<dyn Probe> {
        Box::new(EtcdProber::new(dom, self, settings))
    }
}

pub struct EtcdProber {
    nodes: Vec<(String, String)>,
    timeout: Duration,
}

impl EtcdProber {
    pub fn new(_dom: &WatchedDomain, s: &EtcdWatchStore, settings: &Settings) -> Self {
        EtcdProber {
            nodes: s
                .nodes
                .iter()
                .map(|n| (n.name.clone(), n.addr.clone()))
                .collect(),
            timeout: settings.timeout,
        }
    }
}

#[async_trait]
impl Probe for EtcdProber {
    async fn round(&mut self, dom: &WatchedDomain) -> Round {
        let limit = self.timeout;
        let answers = futures_util::future::join_all(
            self.nodes
                .iter()
                .map(|(_, addr)| async move { super::target::member_status(addr, limit).await }),
        )
        .await;
        let mut extras = Extras::new();
        let mut ok = Vec::new();
        let mut errors = Vec::new();
        for ((name, _), a) in self.nodes.iter().zip(answers) {
            match a {
                Ok(s) => ok.push((name.clone(), s)),
                Err(e) => errors.push(format!("{name}: {e}")),
            }
        }
        let max_index = ok.iter().map(|(_, s)| s.raft_index).max().unwrap_or(0);
        for (name, s) in &ok {
            extras.insert(
                (
                    "firedrill_etcd_raft_index".into(),
                    labels(dom, &[("node", name)]),
                ),
                s.raft_index as f64,
            );
            extras.insert(
                (
                    "firedrill_etcd_raft_index_gap".into(),
                    labels(dom, &[("node", name)]),
                ),
                (max_index - s.raft_index) as f64,
            );
        }
        let mut votes: HashMap<u64, usize> = HashMap::new();
        for (_, s) in &ok {
            if s.leader != 0 {
                *votes.entry(s.leader).or_default() += 1;
            }
        }
        let quorum = self.nodes.len() / 2 + 1;
        let leader = votes
            .iter()
            .filter(|(id, n)| **n >= quorum && ok.iter().any(|(_, s)| s.member_id == **id))
            .map(|(id, _)| *id)
            .next();
        extras.insert(
            ("firedrill_etcd_has_leader".into(), labels(dom, &[])),
            if leader.is_some() { 1.0 } else { 0.0 },
        );
        let missing: Vec<String> = self
            .nodes
            .iter()
            .filter(|(n, _)| !ok.iter().any(|(m, _)| m == n))
            .map(|(n, _)| n.clone())
            .collect();
        let result = match leader {
            Some(_) => SourceResult {
                source: Source::Raft,
                observed: vec![(String::new(), 0.0)],
                missing: Vec::new(),
                // A member down is worth a probe-down, not an exposure.
                error: (!errors.is_empty()).then(|| errors.join("; ")),
                ages: false,
            },
            None => SourceResult::failed(
                Source::Raft,
                format!(
                    "no leader seen by a quorum ({} of {} answered{}{})",
                    ok.len(),
                    self.nodes.len(),
                    if missing.is_empty() { "" } else { "; " },
                    errors.join("; ")
                ),
            ),
        };
        Round {
            results: vec![result],
            extras: Some(extras),
            extra_updates: Extras::new(),
        }
    }
}
