//! etcd: `POST /v3/maintenance/status` on every member (the JSON gateway).
//! A write etcd acknowledged is on a quorum, so losing a minority loses
//! nothing: the `raft` exposure is 0 while a leader is seen by a quorum of
//! the declared members, and the probe fails (the exposure grows from its
//! last value, a breach) once no quorum answers with a leader. The raft
//! index gap per member is exported beside it.

use super::{labels, Round, SourceResult};
use crate::board::Extras;
use crate::plan::{EtcdStore, Settings, Source, WatchedDomain};
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;

pub struct EtcdProber {
    nodes: Vec<(String, String)>,
    timeout: Duration,
}

#[derive(Debug, Deserialize)]
struct Header {
    #[serde(default)]
    member_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    header: Header,
    #[serde(default)]
    leader: Option<String>,
    #[serde(default)]
    raft_index: Option<String>,
}

/// One member's answer: its id, the leader it follows (0 = none), its raft index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    pub member_id: u64,
    pub leader: u64,
    pub raft_index: u64,
}

/// etcd's gateway writes uint64 as JSON strings.
pub fn parse_status(body: &str) -> Result<MemberStatus, String> {
    let s: Status = serde_json::from_str(body).map_err(|e| format!("status JSON: {e}"))?;
    let num = |what: &str, v: Option<String>| {
        v.ok_or_else(|| format!("status has no {what}"))?
            .parse::<u64>()
            .map_err(|e| format!("status {what}: {e}"))
    };
    Ok(MemberStatus {
        member_id: num("member_id", s.header.member_id)?,
        // etcd omits a zero field: no leader known to this member.
        leader: s.leader.map_or(Ok(0), |l| num("leader", Some(l)))?,
        // A missing index would read as 0 and fake a gap (or hide one).
        raft_index: num("raftIndex", s.raft_index)?,
    })
}

impl EtcdProber {
    pub fn new(_dom: &WatchedDomain, s: &EtcdStore, settings: &Settings) -> Self {
        EtcdProber {
            nodes: s
                .nodes
                .iter()
                .map(|n| (n.name.clone(), n.addr.clone()))
                .collect(),
            timeout: settings.timeout,
        }
    }

    pub async fn round(&mut self, dom: &WatchedDomain) -> Round {
        let limit = self.timeout;
        let answers =
            futures_util::future::join_all(self.nodes.iter().map(|(_, addr)| async move {
                let (code, body) =
                    crate::http::post_json(addr, "/v3/maintenance/status", "{}", limit).await?;
                if code != 200 {
                    return Err(format!("HTTP {code}"));
                }
                parse_status(&body)
            }))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gateway_status() {
        let body = r#"{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"1","raft_term":"2"},"version":"3.4.23","dbSize":"20480","leader":"10276657743932975437","raftIndex":"4","raftTerm":"2","raftAppliedIndex":"4","dbSizeInUse":"16384"}"#;
        let s = parse_status(body).unwrap();
        assert_eq!(s.member_id, 10276657743932975437);
        assert_eq!(s.leader, s.member_id);
        assert_eq!(s.raft_index, 4);
        assert!(parse_status("[]").is_err());
        // No leader known: etcd omits the zero field.
        let none = parse_status(r#"{"header":{"member_id":"7"},"raftIndex":"9"}"#).unwrap();
        assert_eq!((none.leader, none.raft_index), (0, 9));
        // No raft index: an error, not a zero that fakes a gap.
        assert!(parse_status(r#"{"header":{"member_id":"7"},"leader":"7"}"#).is_err());
        assert!(parse_status(r#"{"header":{},"raftIndex":"9"}"#).is_err());
    }
}
