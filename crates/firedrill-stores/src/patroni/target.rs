//! Patroni-managed PostgreSQL: the nodes are plain PostgreSQL to the
//! workload and the audit; what Patroni adds is the failover itself, which
//! firedrill observes on Patroni's REST API (`GET /cluster`): a leader
//! change is the `detected` phase, and a change of synchronous standbys
//! (synchronous_mode falling back to async) is reported on the timeline.

use firedrill_targets::http::{authority, request_once};
use firedrill_targets::{FailoverSignal, TargetError};
use serde_json::Value;
use std::collections::VecDeque;
use std::time::Duration;

/// How often the watch asks Patroni for the cluster.
pub const WATCH_EVERY: Duration = Duration::from_millis(100);

/// What `/cluster` says about leadership.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterView {
    pub leader: Option<String>,
    pub sync_standbys: Vec<String>,
}

impl ClusterView {
    /// Parses Patroni's `/cluster` answer.
    pub fn parse(v: &Value) -> Option<ClusterView> {
        let members = v["members"].as_array()?;
        let mut view = ClusterView::default();
        for m in members {
            let name = m["name"].as_str().unwrap_or_default().to_string();
            match m["role"].as_str() {
                Some("leader") | Some("master") | Some("primary") => view.leader = Some(name),
                Some("sync_standby") => view.sync_standbys.push(name),
                _ => {}
            }
        }
        view.sync_standbys.sort();
        Some(view)
    }
}

/// Asks the members' REST APIs in turn; the first that answers wins.
pub async fn cluster_view(apis: &[(String, String)], limit: Duration) -> Option<ClusterView> {
    for (_, api) in apis {
        if let Ok((200, v)) = request_once(api, "GET", "/cluster", None, limit).await {
            if let Some(view) = ClusterView::parse(&v) {
                return Some(view);
            }
        }
    }
    None
}

/// Polls `/cluster` and turns changes into failover signals.
pub struct PatroniWatch {
    apis: Vec<(String, String)>,
    last: ClusterView,
    pending: VecDeque<FailoverSignal>,
}

impl PatroniWatch {
    /// `apis`: (node, `http://host:port`) of every member's REST API.
    pub async fn new(apis: &[(String, String)]) -> Result<PatroniWatch, TargetError> {
        let apis = apis
            .iter()
            .map(|(n, a)| {
                authority(a)
                    .map(|a| (n.clone(), a))
                    .map_err(|msg| TargetError::Config {
                        node: n.clone(),
                        msg,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let last = cluster_view(&apis, Duration::from_secs(2))
            .await
            .unwrap_or_default();
        Ok(PatroniWatch {
            apis,
            last,
            pending: VecDeque::new(),
        })
    }

    fn compare(&mut self, now: ClusterView) {
        if now.leader != self.last.leader {
            if let Some(l) = &now.leader {
                self.pending.push_back(FailoverSignal {
                    how: format!("patroni leader {l}"),
                    new_primary: Some(l.clone()),
                });
            }
        }
        if now.sync_standbys != self.last.sync_standbys && now.leader.is_some() {
            let list = |v: &[String]| {
                if v.is_empty() {
                    "none (async)".to_string()
                } else {
                    v.join(", ")
                }
            };
            self.pending.push_back(FailoverSignal {
                how: format!(
                    "patroni synchronous standby {} -> {}",
                    list(&self.last.sync_standbys),
                    list(&now.sync_standbys)
                ),
                new_primary: None,
            });
        }
        // A view without a leader (the key expired) is remembered only for
        // the leader, so the next leader counts as a change.
        self.last = now;
    }

    pub async fn next(&mut self) -> Option<FailoverSignal> {
        loop {
            if let Some(s) = self.pending.pop_front() {
                return Some(s);
            }
            tokio::time::sleep(WATCH_EVERY).await;
            if let Some(v) = cluster_view(&self.apis, Duration::from_millis(500)).await {
                self.compare(v);
            }
        }
    }
}

#[async_trait::async_trait]
impl firedrill_targets::FailoverWatch for PatroniWatch {
    async fn next(&mut self) -> Option<FailoverSignal> {
        PatroniWatch::next(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cluster_and_reports_changes() {
        let v: Value = serde_json::from_str(
            r#"{"members":[{"name":"n1","role":"leader","state":"running"},
                {"name":"n2","role":"sync_standby","state":"streaming","lag":0}]}"#,
        )
        .unwrap();
        let view = ClusterView::parse(&v).unwrap();
        assert_eq!(view.leader.as_deref(), Some("n1"));
        assert_eq!(view.sync_standbys, vec!["n2".to_string()]);
        let mut w = PatroniWatch {
            apis: vec![],
            last: view,
            pending: VecDeque::new(),
        };
        w.compare(ClusterView {
            leader: Some("n1".into()),
            sync_standbys: vec![],
        });
        assert_eq!(w.pending.len(), 1);
        assert!(w.pending[0].how.contains("none (async)"));
        w.compare(ClusterView::default());
        assert_eq!(w.pending.len(), 1, "no leader is not a signal");
        w.compare(ClusterView {
            leader: Some("n2".into()),
            sync_standbys: vec![],
        });
        assert_eq!(w.pending[1].new_primary.as_deref(), Some("n2"));
    }
}
