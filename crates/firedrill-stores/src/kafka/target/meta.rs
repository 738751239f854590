//! Cluster metadata through librdkafka (a Metadata request to any broker
//! on firedrill's direct `FIREDRILL` listener), as plain values: live
//! brokers and, per partition, its leader, replicas and ISR. Blocking:
//! callers run it on a blocking thread.

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::BTreeMap;
use std::time::Duration;

/// One partition as the metadata tells it. Broker ids, -1 for no leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub id: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// The metadata of the cluster: live (registered, unfenced) brokers and
/// the partitions of each topic asked for.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub brokers: Vec<i32>,
    pub topics: BTreeMap<String, Vec<Part>>,
}

impl Meta {
    pub fn partition(&self, topic: &str, p: i32) -> Option<&Part> {
        self.topics.get(topic)?.iter().find(|x| x.id == p)
    }
}

/// A client config for the control path: short timeouts, no retries
/// worth waiting for, quiet logs.
pub fn base_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "2000")
        .set("socket.connection.setup.timeout.ms", "1000")
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "200")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("log_level", "3");
    c
}

/// A metadata client: a consumer never subscribed (metadata requests need
/// a client handle, nothing else).
pub fn meta_client(bootstrap: &str) -> Result<BaseConsumer, String> {
    base_config(bootstrap)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| e.to_string())
}

pub fn admin_client(bootstrap: &str) -> Result<AdminClient<DefaultClientContext>, String> {
    base_config(bootstrap).create().map_err(|e| e.to_string())
}

/// Metadata for `topic`, or every topic with None.
pub fn fetch(c: &BaseConsumer, topic: Option<&str>, limit: Duration) -> Result<Meta, String> {
    let md = c.fetch_metadata(topic, limit).map_err(|e| e.to_string())?;
    let mut m = Meta {
        brokers: md.brokers().iter().map(|b| b.id()).collect(),
        topics: BTreeMap::new(),
    };
    m.brokers.sort_unstable();
    for t in md.topics() {
        if t.error().is_some() {
            continue;
        }
        let mut parts: Vec<Part> = t
            .partitions()
            .iter()
            .map(|p| Part {
                id: p.id(),
                leader: p.leader(),
                replicas: p.replicas().to_vec(),
                isr: p.isr().to_vec(),
            })
            .collect();
        parts.sort_by_key(|p| p.id);
        m.topics.insert(t.name().to_string(), parts);
    }
    Ok(m)
}
