//! Sentinel's own events as failover signals: `+odown` (a quorum of
//! sentinels agrees the master is down) is the `detected` phase;
//! `+switch-master` names the new master; `+convert-to-slave` shows when a
//! returning old master was turned into a replica (the end of a zombie
//! window).

use super::Shared;
use async_trait::async_trait;
use firedrill_targets::{FailoverSignal, FailoverWatch};
use futures_util::stream::SelectAll;
use futures_util::StreamExt;
use redis::aio::PubSubStream;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

const CHANNELS: [&str; 3] = ["+odown", "+switch-master", "+convert-to-slave"];

/// Listens to every sentinel: `+convert-to-slave` is announced only by the
/// sentinel that sent it, while `+odown` and `+switch-master` come from
/// each of them, so repeats are dropped.
pub struct SentinelWatch {
    shared: Arc<Shared>,
    stream: SelectAll<PubSubStream>,
    seen: HashSet<String>,
}

impl SentinelWatch {
    /// Subscribes on every sentinel that answers; None when none does
    /// (then automatic recovery alone marks detection).
    pub(crate) async fn open(shared: Arc<Shared>) -> Option<SentinelWatch> {
        let mut stream = SelectAll::new();
        for addr in &shared.sentinels {
            let Ok(client) = redis::Client::open(format!("redis://{addr}/")) else {
                continue;
            };
            let sub = async {
                let mut ps = client.get_async_pubsub().await?;
                for ch in CHANNELS {
                    ps.subscribe(ch).await?;
                }
                Ok::<_, redis::RedisError>(ps)
            };
            if let Ok(Ok(ps)) = tokio::time::timeout(Duration::from_secs(2), sub).await {
                stream.push(ps.into_on_message());
            }
        }
        if stream.is_empty() {
            return None;
        }
        Some(SentinelWatch {
            shared,
            stream,
            seen: HashSet::new(),
        })
    }

    fn name_of(&self, host: &str, port: &str) -> String {
        let addr = format!("{host}:{port}");
        self.shared
            .node_by_addr(&addr)
            .map(|n| n.name.clone())
            .unwrap_or(addr)
    }
}

#[async_trait]
impl FailoverWatch for SentinelWatch {
    async fn next(&mut self) -> Option<FailoverSignal> {
        loop {
            let sig = self.read().await?;
            if self.seen.insert(sig.how.clone()) {
                return Some(sig);
            }
        }
    }
}

impl SentinelWatch {
    async fn read(&mut self) -> Option<FailoverSignal> {
        let msg = self.stream.next().await?;
        let channel = msg.get_channel_name().to_string();
        let payload: String = msg.get_payload().unwrap_or_default();
        let w: Vec<&str> = payload.split_whitespace().collect();
        Some(match channel.as_str() {
            // "<master-name> <old-ip> <old-port> <new-ip> <new-port>"
            "+switch-master" if w.len() >= 5 => {
                let new = self.name_of(w[3], w[4]);
                FailoverSignal {
                    how: format!(
                        "sentinel +switch-master {} -> {new}",
                        self.name_of(w[1], w[2])
                    ),
                    new_primary: Some(new),
                }
            }
            // "master <name> <ip> <port> #quorum k/n"
            "+odown" if w.len() >= 4 => FailoverSignal {
                how: format!("sentinel +odown {}", self.name_of(w[2], w[3])),
                new_primary: None,
            },
            // "slave <ip:port> <ip> <port> @ <name> <master-ip> <master-port>"
            "+convert-to-slave" if w.len() >= 4 => FailoverSignal {
                how: format!("sentinel +convert-to-slave {}", self.name_of(w[2], w[3])),
                new_primary: None,
            },
            _ => FailoverSignal {
                how: format!("sentinel {channel} {payload}"),
                new_primary: None,
            },
        })
    }
}
